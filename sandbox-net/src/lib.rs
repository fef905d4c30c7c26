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
//!
//! Bridged networking (a veth pair on a Linux bridge, configured over netlink) is planned
//! but not part of this crate yet.
//!
//! ```
//! use sandbox_net::Network;
//! let net: Network = "loopback".parse().unwrap();
//! assert_eq!(net, Network::loopback());
//! assert!(net.new_namespace() && net.loopback_up());
//! assert!("bridge0".parse::<Network>().is_err());
//! ```
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A network name given as text (for example on a command line) is not one we know.
    #[error("unknown network {name:?}: expected one of none, loopback, host")]
    UnknownNetwork {
        /// The text that was given.
        name: String,
    },
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

    /// Whether this plan needs a network namespace of its own.
    pub fn new_namespace(&self) -> bool {
        !matches!(self, Network::Host)
    }

    /// Whether `lo` is brought up inside the sandbox's namespace.
    pub fn loopback_up(&self) -> bool {
        matches!(self, Network::Loopback)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::None => "none",
            Network::Loopback => "loopback",
            Network::Host => "host",
        })
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(s: &str) -> Result<Network, Error> {
        match s {
            "none" => Ok(Network::None),
            "loopback" | "lo" => Ok(Network::Loopback),
            "host" => Ok(Network::Host),
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
        for n in [Network::none(), Network::loopback(), Network::host()] {
            assert_eq!(n.to_string().parse::<Network>().unwrap(), n);
        }
    }

    #[test]
    fn unknown_name_is_a_typed_error() {
        let e = "wifi".parse::<Network>().unwrap_err();
        assert!(matches!(e, Error::UnknownNetwork { ref name } if name == "wifi"));
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
