//! A running sandbox's network: its address, and interfaces attached to it or detached
//! from it while it runs (as `docker network connect` does).

use super::Child;
use crate::{Error, Result};

impl Child {
    /// The sandbox's address on its bridge ([`Network::bridge`](crate::Network::bridge)),
    /// while it runs.
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.network.as_ref().and_then(|a| a.address())
    }

    /// Adds an interface on a bridge to the running sandbox, as `docker network connect`
    /// does: a veth pair whose inner end is named `ethN` (the first free N), with an
    /// address of `network`'s bridge (which must be a [`Network::bridge`](crate::Network::bridge)).
    /// Returns the interface's name and address. The default route stays on `eth0`.
    pub async fn attach(
        &mut self,
        network: &crate::Network,
    ) -> Result<(String, std::net::Ipv4Addr)> {
        let crate::Network::Bridge(plan) = network else {
            return Err(Error::Invalid {
                what: "network to attach",
                reason: format!("{network} is not a bridge"),
            });
        };
        if self.outcome.is_some() || self.pidfd.is_none() {
            return Err(Error::Reaped);
        }
        if !self.own_netns {
            // The pair would land in the host's (or a joined) namespace and outlive the
            // sandbox.
            return Err(Error::Conflict(
                "attach needs a sandbox with a network namespace of its own".into(),
            ));
        }
        let bridge = match sandbox_net::Bridge::lookup(&plan.bridge) {
            Some(b) => b,
            None => sandbox_net::Bridge::open(&plan.bridge).await?,
        };
        let taken: Vec<&str> = self
            .network
            .iter()
            .chain(&self.attached)
            .map(|a| a.interface())
            .collect();
        let name = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !taken.contains(&n.as_str()))
            .unwrap_or_default();
        let lease = bridge.lease(plan.address, None)?;
        let netns = {
            let (pid, _held) = self.live_pid()?;
            std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| Error::os("open the sandbox's network namespace", e))?
        };
        // The host end is named like the first one's (after the sandbox).
        let sandbox = self
            .network
            .as_ref()
            .map_or("", |a| a.sandbox())
            .to_string();
        let inner = sandbox_net::InnerEnd::ConfiguredNow;
        let a = sandbox_net::Attachment::connect(netns.into(), lease, plan, &name, &sandbox, inner)
            .await?;
        let addr = a.address().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        self.attached.push(a);
        Ok((name, addr))
    }

    /// Removes an interface [`Child::attach`] added (by its name inside, e.g. `eth1`).
    pub async fn detach(&mut self, interface: &str) -> Result<()> {
        let Some(i) = self
            .attached
            .iter()
            .position(|a| a.interface() == interface)
        else {
            return Err(Error::Invalid {
                what: "interface to detach",
                reason: format!("{interface} was not attached with Child::attach"),
            });
        };
        // Only a pair that is gone leaves the list: a failed removal keeps the interface,
        // and its address, with the sandbox.
        if let Some(a) = self.attached.get_mut(i) {
            a.detach().await?;
            self.attached.remove(i);
        }
        Ok(())
    }

    /// The host end of the sandbox's veth pair, while it runs.
    pub fn host_interface(&self) -> Option<&str> {
        self.network.as_ref().map(|a| a.host_interface())
    }
}
