//! Network plans for sandboxes.
//!
//! This crate describes *which* network a sandbox gets; it knows nothing of how a sandbox is
//! spawned (that is `sandbox-core`'s job). A [`Network`] is plain, serialisable data:
//!
//! | plan                   | network namespace      | inside                                   |
//! |------------------------|------------------------|------------------------------------------|
//! | [`Network::none()`]    | new                    | only `lo`, down: no traffic at all       |
//! | [`Network::loopback()`]| new                    | `lo` up: 127.0.0.1 works, nothing else   |
//! | [`Network::host()`]    | the caller's (shared)  | every interface of the host              |
//! | [`Network::bridge(&b)`](Network::bridge) | new | `lo` up, `eth0` on bridge `b`: an address of its subnet, a default route through it |
//! | [`Network::join(&ns)`](Network::join) | an existing one ([`Netns`]) | whatever it holds |
//!
//! Bridges ([`Bridge`]) and the veth pairs that attach sandboxes to them ([`Attachment`])
//! are made over netlink (`rtnetlink`, confined to one module), never by running `ip`.
//! Creating them needs `CAP_NET_ADMIN` in the caller's network namespace (in practice:
//! root). A bridge hands out the addresses of its subnet ([`Bridge::lease`]) and takes
//! them back when a sandbox ends.
//!
//! Egress NAT for a bridge ([`Bridge::enable_nat`]) is an nftables masquerade rule made
//! over netlink. Addresses are unique machine-wide, not only per process: each lease also
//! holds an `flock` on a file named after the bridge and the address under [`LEASE_DIR`]
//! (root's only), which the kernel releases when its holder dies. What it does not do
//! (yet): IPv6 addresses on bridges, port publishing.
//!
//! ```
//! use sandbox_net::Network;
//! let net: Network = "loopback".parse().unwrap();
//! assert_eq!(net, Network::loopback());
//! assert!(net.new_namespace() && net.loopback_up());
//! assert!("bridge0".parse::<Network>().is_err());
//! let b: Network = "bridge:sbx0".parse().unwrap();
//! assert_eq!(b, Network::bridge_named("sbx0"));
//! ```
#![deny(missing_docs)]

mod bridge;
mod cidr;
mod claim;
mod netlink;
mod netns;
mod nft;

pub use bridge::{check_ifname, Attachment, Bridge, InnerEnd, Lease, MAX_IFNAME};
pub use cidr::Ipv4Cidr;
pub use claim::LEASE_DIR;
pub use netns::{Netns, NETNS_DIR};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network name given as text (for example on a command line) is not one we know.
    #[error("unknown network {name:?}: expected one of none, loopback, host, bridge:NAME")]
    UnknownNetwork {
        /// The text that was given.
        name: String,
    },
    /// A subnet that does not parse or has no room.
    #[error("subnet {cidr}: {reason}")]
    Cidr {
        /// The text given (or the bridge it was read from).
        cidr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An interface name the kernel would refuse.
    #[error("interface name {name:?}: {reason}")]
    InterfaceName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Bridge::create`] found a link of that name.
    #[error("bridge {name}: a link of that name exists already (use Bridge::open to adopt it)")]
    BridgeExists {
        /// The name.
        name: String,
    },
    /// No link of that name exists.
    #[error("bridge {name}: no such link")]
    NoSuchBridge {
        /// The name.
        name: String,
    },
    /// The link exists but is not a bridge.
    #[error("{name}: not a bridge")]
    NotABridge {
        /// The name.
        name: String,
    },
    /// A requested address is not one the subnet can give.
    #[error("address {address} is not assignable in {cidr} (outside it, or its network, broadcast or gateway address)")]
    AddressOutside {
        /// The address.
        address: Ipv4Addr,
        /// The bridge's subnet.
        cidr: Ipv4Cidr,
    },
    /// A requested address is held by another sandbox.
    #[error("address {address} is taken by another sandbox")]
    AddressTaken {
        /// The address.
        address: Ipv4Addr,
    },
    /// Every address of the subnet is taken.
    #[error("subnet {cidr} has no free address")]
    SubnetFull {
        /// The subnet.
        cidr: Ipv4Cidr,
    },
    /// A name for `/etc/hosts` that is not a host name.
    #[error("host name {name:?}: {reason}")]
    HostName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A netlink request failed.
    #[error("{what}: {reason}")]
    Netlink {
        /// What was asked.
        what: String,
        /// The kernel's errno (0 when the failure was not the kernel's).
        errno: i32,
        /// The error as rtnetlink words it.
        reason: String,
    },
    /// A system call around the netlink requests failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Checks a name for `/etc/hosts`: 1 to 253 bytes of letters, digits, `-`, `_` and `.`,
/// not starting with `-` or `.` (so it can neither break the file's lines nor be taken
/// for an option).
pub fn check_host_name(name: &str) -> Result<(), Error> {
    let bad = |reason| Error::HostName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 253 {
        return Err(bad("longer than 253 bytes"));
    }
    if name.starts_with(['-', '.']) {
        return Err(bad("starts with '-' or '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad("may hold only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// A name and an address for the sandbox's `/etc/hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// The host name.
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
}

/// How a sandbox attaches to a bridge. Built by [`Network::bridge`] and the setters of
/// [`Network`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeNet {
    /// The bridge's name (created or opened with [`Bridge`]; opened at spawn if this
    /// process has not).
    pub bridge: String,
    /// A fixed address (the next free one when `None`).
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// A fixed MAC address of `eth0`.
    #[serde(default)]
    pub mac: Option<[u8; 6]>,
    /// The MTU of the pair.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Extra `/etc/hosts` entries.
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
    /// List the other sandboxes on the bridge (their hostnames) in `/etc/hosts`, and
    /// register this one's for those started later.
    #[serde(default)]
    pub peers: bool,
}

/// The network a sandbox gets. See the [crate documentation](crate) for the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Network {
    /// A new network namespace with nothing in it: `lo` exists but is down.
    None,
    /// A new network namespace with `lo` up (127.0.0.1 and ::1 work, nothing else).
    #[default]
    Loopback,
    /// The caller's own network namespace, shared: no network isolation.
    Host,
    /// A new network namespace with `lo` up and `eth0` on a bridge.
    Bridge(BridgeNet),
    /// An existing network namespace (a file such as `/run/netns/NAME`), joined.
    Join {
        /// The namespace file.
        path: std::path::PathBuf,
    },
}

impl Network {
    /// A new, empty network namespace (`lo` down).
    pub fn none() -> Network {
        Network::None
    }

    /// A new network namespace with the loopback interface up.
    pub fn loopback() -> Network {
        Network::Loopback
    }

    /// The caller's network namespace, shared with the sandbox.
    pub fn host() -> Network {
        Network::Host
    }

    /// `eth0` on `bridge` (and `lo` up): the next free address of its subnet, a default
    /// route through the bridge. See [`Network::address`], [`Network::mac`],
    /// [`Network::mtu`], [`Network::add_host`], [`Network::peers`].
    pub fn bridge(bridge: &Bridge) -> Network {
        Network::bridge_named(bridge.name())
    }

    /// Joins the persistent namespace `netns` (see [`Netns`]).
    pub fn join(netns: &Netns) -> Network {
        Network::Join {
            path: netns.path().to_path_buf(),
        }
    }

    /// [`Network::bridge`] by the bridge's name.
    pub fn bridge_named(name: impl Into<String>) -> Network {
        Network::Bridge(BridgeNet {
            bridge: name.into(),
            address: None,
            mac: None,
            mtu: None,
            hosts: Vec::new(),
            peers: false,
        })
    }

    fn bridge_mut(&mut self) -> Option<&mut BridgeNet> {
        match self {
            Network::Bridge(b) => Some(b),
            _ => None,
        }
    }

    /// A fixed address on the bridge (no effect on other kinds).
    pub fn address(mut self, address: Ipv4Addr) -> Network {
        if let Some(b) = self.bridge_mut() {
            b.address = Some(address);
        }
        self
    }

    /// A fixed MAC address of `eth0` (no effect on other kinds).
    pub fn mac(mut self, mac: [u8; 6]) -> Network {
        if let Some(b) = self.bridge_mut() {
            b.mac = Some(mac);
        }
        self
    }

    /// The MTU of the veth pair (no effect on other kinds).
    pub fn mtu(mut self, mtu: u32) -> Network {
        if let Some(b) = self.bridge_mut() {
            b.mtu = Some(mtu);
        }
        self
    }

    /// An extra `/etc/hosts` entry (no effect on other kinds).
    pub fn add_host(mut self, name: impl Into<String>, address: Ipv4Addr) -> Network {
        if let Some(b) = self.bridge_mut() {
            b.hosts.push(HostEntry {
                name: name.into(),
                address,
            });
        }
        self
    }

    /// Lists the other sandboxes on the bridge by hostname in `/etc/hosts`, and registers
    /// this one's name for those started after it (no effect on other kinds).
    pub fn peers(mut self) -> Network {
        if let Some(b) = self.bridge_mut() {
            b.peers = true;
        }
        self
    }

    /// Whether this plan needs a network namespace of its own.
    pub fn new_namespace(&self) -> bool {
        !matches!(self, Network::Host | Network::Join { .. })
    }

    /// Whether `lo` is brought up inside the sandbox's namespace.
    pub fn loopback_up(&self) -> bool {
        matches!(self, Network::Loopback | Network::Bridge(_))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::None => f.write_str("none"),
            Network::Loopback => f.write_str("loopback"),
            Network::Host => f.write_str("host"),
            Network::Bridge(b) => write!(f, "bridge:{}", b.bridge),
            Network::Join { path } => write!(f, "join:{}", path.display()),
        }
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(s: &str) -> Result<Network, Error> {
        match s {
            "none" => Ok(Network::None),
            "loopback" | "lo" => Ok(Network::Loopback),
            "host" => Ok(Network::Host),
            other if other.starts_with("join:") => Ok(Network::Join {
                path: other["join:".len()..].into(),
            }),
            other if other.starts_with("bridge:") => {
                let name = &other["bridge:".len()..];
                check_ifname(name)?;
                Ok(Network::bridge_named(name))
            }
            other => Err(Error::UnknownNetwork {
                name: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for n in [
            Network::none(),
            Network::loopback(),
            Network::host(),
            Network::bridge_named("br0"),
        ] {
            assert_eq!(n.to_string().parse::<Network>().unwrap(), n);
        }
    }

    #[test]
    fn unknown_name_is_a_typed_error() {
        let e = "wifi".parse::<Network>().unwrap_err();
        assert!(matches!(e, Error::UnknownNetwork { ref name } if name == "wifi"));
        for ok in ["db", "web-1.local", "a_b", "x"] {
            assert!(check_host_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a\nevil", "-x", ".x", "a\tb", "é"] {
            assert!(
                matches!(check_host_name(bad), Err(Error::HostName { ref name, .. }) if name == bad),
                "{bad:?}"
            );
        }
        assert!(check_host_name(&"a".repeat(254)).is_err());
        assert!(e.to_string().contains("wifi"));
    }

    #[test]
    fn serde_form_is_tagged() {
        let j = serde_json::to_string(&Network::loopback()).unwrap();
        assert_eq!(j, r#"{"kind":"loopback"}"#);
        let back: Network = serde_json::from_str(&j).unwrap();
        assert_eq!(back, Network::Loopback);
    }

    #[test]
    fn only_host_shares_the_namespace() {
        assert!(Network::none().new_namespace());
        assert!(!Network::none().loopback_up());
        assert!(!Network::host().new_namespace());
    }
}
