//! A bridged sandbox's network, decided before the clone: its address on the bridge, its
//! `/etc/hosts` names and, behind NAT, the name servers it can reach.

use super::prepare;
use crate::{Error, Result};

/// Takes an address on the sandbox's bridge (opening the bridge if this process has not)
/// and works out its `/etc/hosts` entries.
pub(super) async fn bridge_lease(
    sandbox: &crate::Sandbox,
    b: &sandbox_net::BridgeNet,
) -> Result<(prepare::NetPrep, sandbox_net::Lease)> {
    let bridge = match sandbox_net::Bridge::lookup(&b.bridge) {
        Some(br) => br,
        None => sandbox_net::Bridge::open(&b.bridge).await?,
    };
    let hostname = sandbox
        .hostname
        .clone()
        .unwrap_or_else(|| crate::DEFAULT_HOSTNAME.to_string());
    // Names for /etc/hosts are checked before any address or link is taken; a root that
    // gets no generated /etc (the caller's own tree) could not show them.
    if b.peers || !b.hosts.is_empty() {
        if matches!(sandbox.rootfs, sandbox_fs::Rootfs::Host) {
            return Err(Error::Conflict(
                "/etc/hosts entries (peers, add_host) need a root of the sandbox's own; \
                 Rootfs::host() shows the caller's /etc"
                    .into(),
            ));
        }
        if b.peers {
            sandbox_net::check_host_name(&hostname)?;
        }
        for h in &b.hosts {
            sandbox_net::check_host_name(&h.name)?;
        }
    }
    let mut hosts: Vec<(String, std::net::IpAddr)> = Vec::new();
    if b.peers {
        for (name, addr) in bridge.names() {
            if name != hostname {
                hosts.push((name, addr.into()));
            }
        }
    }
    for h in &b.hosts {
        hosts.push((h.name.clone(), h.address.into()));
    }
    let lease = bridge.lease(b.address, b.peers.then_some(hostname.as_str()))?;
    let cidr = bridge.cidr();
    let net = prepare::NetPrep {
        own_address: Some(lease.address().into()),
        hosts,
        bridged: true,
        eth0: Some((lease.address(), cidr.prefix(), cidr.gateway())),
        resolv_conf: bridge.nat().then(resolv_conf_with_a_way_out),
    };
    Ok((net, lease))
}

/// Connects the sandbox whose first process is `pid` (its network namespace made, its
/// processes waiting for GO) to its bridge: a veth pair, `eth0` inside.
pub(super) async fn connect(
    pid: i32,
    lease: sandbox_net::Lease,
    bridge: &sandbox_net::BridgeNet,
    sandbox: &crate::Sandbox,
) -> Result<sandbox_net::Attachment> {
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| Error::os("open the sandbox's network namespace", e))?;
    let name = sandbox
        .hostname
        .as_deref()
        .unwrap_or(crate::DEFAULT_HOSTNAME);
    let inner = sandbox_net::InnerEnd::LeftToSandbox;
    sandbox_net::Attachment::connect(netns.into(), lease, bridge, "eth0", name, inner)
        .await
        .map_err(Error::from)
}

/// The `/etc/resolv.conf` of a sandbox whose bridge masquerades its traffic: the host's,
/// without the name servers the sandbox cannot reach (on the host's loopback, or IPv6:
/// bridges are IPv4), as Docker does; when that leaves none and systemd-resolved runs
/// (its stub at 127.0.0.53), the servers it forwards to.
fn resolv_conf_with_a_way_out() -> Vec<u8> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (text, servers) = reachable_name_servers(&host);
    if servers == 0 {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            let (up, n) = reachable_name_servers(&upstream);
            if n > 0 {
                return up.into_bytes();
            }
        }
    }
    text.into_bytes()
}

/// A resolv.conf with only the name servers a bridged sandbox can reach, and how many.
fn reachable_name_servers(host: &str) -> (String, usize) {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok());
            let why = match addr {
                Some(a) if a.is_loopback() => Some("on the host's loopback"),
                Some(std::net::IpAddr::V6(_)) => Some("IPv6: the bridge is IPv4"),
                None => Some("not an address"),
                Some(_) => None,
            };
            if let Some(why) = why {
                out.push_str(&format!("# {line} ({why}: unreachable)\n"));
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("# no name server of the host's is reachable from this sandbox\n");
    }
    (out, servers)
}

#[cfg(test)]
mod tests {
    use super::reachable_name_servers;

    #[test]
    fn resolv_conf_keeps_only_reachable_servers() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n\
                    nameserver ::1\nnameserver 2001:db8::1\noptions edns0\n";
        let (got, n) = reachable_name_servers(host);
        assert_eq!(n, 1);
        assert_eq!(
            got,
            "search example.org\n\
             # nameserver 127.0.0.53 (on the host's loopback: unreachable)\n\
             nameserver 10.1.2.3\n\
             # nameserver ::1 (on the host's loopback: unreachable)\n\
             # nameserver 2001:db8::1 (IPv6: the bridge is IPv4: unreachable)\n\
             options edns0\n"
        );
        let (only_local, n) = reachable_name_servers("nameserver 127.0.0.53\n");
        assert_eq!(n, 0);
        assert!(
            only_local.ends_with("# no name server of the host's is reachable from this sandbox\n")
        );
        assert!(!only_local.lines().any(|l| l.starts_with("nameserver")));
    }
}
