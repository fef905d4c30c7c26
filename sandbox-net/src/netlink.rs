//! A thin wrapper over `rtnetlink`: the only module that names its types, so that a bump
//! of that crate (its API changes between minor versions) touches this file alone.
//!
//! A netlink socket belongs to the network namespace it was created in. To configure the
//! inside of a sandbox, [`Netlink::connect_in`] creates the socket on a throwaway thread
//! that joined the sandbox's namespace (never a tokio worker, whose namespace must not
//! change), then drives it from the runtime like any other.

use crate::Error;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// A netlink connection (route family) in one network namespace.
#[derive(Clone, Debug)]
pub(crate) struct Netlink {
    handle: Handle,
}

fn nl_err(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |e| {
        let errno = match &e {
            rtnetlink::Error::NetlinkError(m) => m.raw_code().abs(),
            _ => 0,
        };
        Error::Netlink {
            what,
            errno,
            reason: e.to_string(),
        }
    }
}

/// The errno of a netlink error, 0 for others.
pub(crate) fn errno_of(e: &Error) -> i32 {
    match e {
        Error::Netlink { errno, .. } => *errno,
        _ => 0,
    }
}

impl Netlink {
    /// A connection in the caller's network namespace.
    pub(crate) fn connect() -> Result<Netlink, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::Io {
            what: "open a netlink socket".into(),
            source: e,
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// A connection in the network namespace `netns` (a `/proc/<pid>/ns/net` fd).
    pub(crate) async fn connect_in(netns: OwnedFd) -> Result<Netlink, Error> {
        let rt = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("sandbox-netns".into())
            .spawn(move || {
                let r = (|| {
                    let _enter = rt.enter();
                    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |e| Error::Io {
                            what: "join the sandbox's network namespace".into(),
                            source: e.into(),
                        },
                    )?;
                    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::Io {
                        what: "open a netlink socket in the sandbox".into(),
                        source: e,
                    })?;
                    rt.spawn(conn);
                    Ok(Netlink { handle })
                })();
                let _ = tx.send(r);
            })
            .map_err(|e| Error::Io {
                what: "start a thread for the sandbox's namespace".into(),
                source: e,
            })?;
        rx.await.map_err(|_| Error::Io {
            what: "open a netlink socket in the sandbox".into(),
            source: std::io::Error::other("the thread died"),
        })?
    }

    /// The index of the link called `name`, if there is one.
    pub(crate) async fn index(&self, name: &str) -> Result<Option<u32>, Error> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(m.header.index)),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == libc::ENODEV => {
                Ok(None)
            }
            Err(e) => Err(nl_err(format!("look up link {name}"))(e)),
        }
    }

    /// Whether the link at `index` is a bridge.
    pub(crate) async fn is_bridge(&self, index: u32) -> Result<bool, Error> {
        use rtnetlink::packet_route::link::{InfoKind, LinkInfo};
        let mut s = self.handle.link().get().match_index(index).execute();
        let m = s
            .try_next()
            .await
            .map_err(nl_err(format!("look up link {index}")))?;
        Ok(m.is_some_and(|m| {
            m.attributes.iter().any(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
                _ => false,
            })
        }))
    }

    /// Creates a bridge, up.
    pub(crate) async fn add_bridge(&self, name: &str) -> Result<u32, Error> {
        self.handle
            .link()
            .add(LinkBridge::new(name).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("create bridge {name}")))?;
        self.index(name).await?.ok_or_else(|| Error::Netlink {
            what: format!("create bridge {name}"),
            errno: libc::ENODEV,
            reason: "it vanished".into(),
        })
    }

    /// Adds an IPv4 address to a link.
    pub(crate) async fn add_address(
        &self,
        index: u32,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), Error> {
        self.handle
            .address()
            .add(index, IpAddr::V4(addr), prefix)
            .execute()
            .await
            .map_err(nl_err(format!("add address {addr}/{prefix}")))
    }

    /// The IPv4 addresses of a link, with their prefixes.
    pub(crate) async fn addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, Error> {
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(m) = s
            .try_next()
            .await
            .map_err(nl_err(format!("list the addresses of link {index}")))?
        {
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V4(v4)) = a {
                    out.push((*v4, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Brings a link up.
    pub(crate) async fn up(&self, index: u32) -> Result<(), Error> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("bring link {index} up")))
    }

    /// Creates a veth pair in one request: `host` attached to `bridge` and up, `peer`
    /// created directly inside the network namespace `netns` under its final name (no
    /// move, no rename: each of those costs the kernel an RCU grace period).
    pub(crate) async fn add_veth_into(
        &self,
        host: &str,
        bridge: u32,
        peer: &str,
        netns: BorrowedFd<'_>,
        mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> Result<(), Error> {
        use rtnetlink::packet_route::link::{InfoData, InfoVeth};
        let mut p = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(netns.as_raw_fd());
        if let Some(mac) = mac {
            p = p.address(mac.to_vec());
        }
        if let Some(mtu) = mtu {
            p = p.mtu(mtu);
        }
        let mut m = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())))
            .controller(bridge)
            .up();
        if let Some(mtu) = mtu {
            m = m.mtu(mtu);
        }
        self.handle
            .link()
            .add(m.build())
            .execute()
            .await
            .map_err(nl_err(format!("create veth pair {host}/{peer}")))
    }

    /// Deletes a link (a veth: both ends).
    pub(crate) async fn delete(&self, index: u32) -> Result<(), Error> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(nl_err(format!("delete link {index}")))
    }
}
