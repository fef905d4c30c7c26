//! The host's side of `--net bridge:NAME[:CIDR]`: the flags that need a bridge checked,
//! the bridge created when missing (or opened), NAT turned on.

use crate::args::Args;
use sandbox_core::net::{Bridge, Error as NetError};
use sandbox_core::{Error, Network, Sandbox};

/// Refuses `--nat`, `--ip` and `--add-host` without a bridge to apply them to.
pub(crate) fn check(args: &Args, sandbox: &Sandbox) -> Result<(), Error> {
    if args.nat && !matches!(args.net.network, Network::Bridge(_)) {
        return Err(Error::Invalid {
            what: "--nat",
            reason: "needs --net bridge:NAME".into(),
        });
    }
    if (args.ip.is_some() || !args.add_host.is_empty())
        && !matches!(sandbox.get_network(), Network::Bridge(_))
    {
        return Err(Error::Invalid {
            what: if args.ip.is_some() {
                "--ip"
            } else {
                "--add-host"
            },
            reason: "needs --net bridge:NAME".into(),
        });
    }
    Ok(())
}

/// The bridge of `--net` when this run creates it or turns NAT on for it (`--nat`), with
/// NAT on. A bridge named with a subnet is created when missing (and left in place, as
/// `docker network create` leaves it); otherwise the spawn opens it.
pub(crate) async fn bridge(args: &Args) -> Result<Option<Bridge>, Error> {
    let bridge = match (&args.net.create, &args.net.network) {
        (Some((name, cidr)), _) => Some(open_or_create(name, cidr).await?),
        (None, Network::Bridge(b)) if args.nat => Some(Bridge::open(&b.bridge).await?),
        _ => None,
    };
    if args.nat {
        match &bridge {
            Some(b) => b.enable_nat().await?,
            None => {
                return Err(Error::Invalid {
                    what: "--nat",
                    reason: "needs --net bridge:NAME".into(),
                })
            }
        }
    }
    Ok(bridge)
}

/// The bridge `name`, created with the subnet `cidr` when missing.
async fn open_or_create(name: &str, cidr: &str) -> Result<Bridge, Error> {
    match Bridge::open(name).await {
        Ok(b) => {
            // An existing bridge keeps its subnet: a different one asked for is a
            // mistake, not something to ignore.
            let want: sandbox_core::net::Ipv4Cidr = cidr.parse()?;
            if b.cidr() != want {
                return Err(Error::Invalid {
                    what: "--net",
                    reason: format!(
                        "bridge {name} exists with subnet {}, not {want} (leave the subnet \
                         out to use it as it is)",
                        b.cidr()
                    ),
                });
            }
            Ok(b)
        }
        Err(NetError::NoSuchBridge { .. }) => Ok(Bridge::create(name, cidr).await?),
        Err(e) => Err(e.into()),
    }
}
