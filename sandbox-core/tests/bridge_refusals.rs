//! What a bridge cannot do is refused before any link or lease exists: a bad name or
//! subnet, a missing bridge, a link that is no bridge, a second bridge of one name, a
//! bridge made elsewhere whose address is not its subnet's gateway (one whose address is,
//! is adopted with its subnet), an address outside the subnet, the gateway's, a taken one
//! or none left, a bad `/etc/hosts` name, a root without a generated `/etc`. A bridged
//! spawn that fails after its veth pair was made leaves no link and no lease.
//!
//! Every test runs in a network namespace of its own (the test binary re-runs itself under
//! `unshare -n`): no bridge, veth or packet ever touches the machine's own network.
mod common;

use sandbox_core::net::{Bridge, Error as NetError};
use sandbox_core::{Error, Network, Rootfs, Sandbox};
use std::net::Ipv4Addr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bridge_input_is_refused_before_any_link_exists() {
    if !common::net::in_own_network("bad_bridge_input_is_refused_before_any_link_exists") {
        return;
    }
    let before = common::links();
    for (name, cidr) in [
        ("averyveryverylongname", "10.1.0.0/24"),
        ("sbt2", "10.1.0.0"),
        ("sbt2", "10.1.0.0/31"),
        ("sbt2", "ten/24"),
    ] {
        let e = Bridge::create(name, cidr).await.unwrap_err();
        assert!(
            matches!(e, NetError::InterfaceName { .. } | NetError::Cidr { .. }),
            "{name} {cidr}: {e}"
        );
        assert_eq!(common::links(), before, "{name} {cidr}");
    }
    let e = Bridge::open("nosuchbridge").await.unwrap_err();
    assert!(matches!(e, NetError::NoSuchBridge { .. }), "{e}");
    // A bridge made by someone else is adopted with its subnet; one whose address is not
    // its subnet's first (the sandboxes' gateway) is refused.
    let ip = |args: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ip {args}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "ip {args}: {o:?}");
    };
    ip("link add sbto type bridge && ip addr add 10.89.0.1/24 dev sbto");
    let adopted = Bridge::open("sbto").await.unwrap();
    assert_eq!(adopted.cidr().to_string(), "10.89.0.0/24");
    let out = Sandbox::new()
        .network(Network::bridge(&adopted))
        .command("/bin/sh")
        .arg("-c")
        .arg(
            "ip -4 -o addr show eth0 | awk '{print $4}'; ip route | grep default; \
             ip -o link show lo | grep -o LOOPBACK,UP",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "10.89.0.2/24\ndefault via 10.89.0.1 dev eth0 \nLOOPBACK,UP\n",
        "{out:?}"
    );
    adopted.remove().await.unwrap();
    // (The sandbox's pair goes with its namespace, in time.)
    assert!(
        common::eventually(Duration::from_secs(10), || common::links() == before),
        "{:?}",
        common::links()
    );
    ip("link add sbto type bridge && ip addr add 10.89.0.5/24 dev sbto");
    let e = Bridge::open("sbto").await.unwrap_err();
    assert!(matches!(e, NetError::Cidr { .. }), "{e}");
    ip("link del sbto");
    let e = Bridge::open("lo").await.unwrap_err();
    assert!(matches!(e, NetError::NotABridge { .. }), "{e}");
    let br = Bridge::create("sbt2", "10.79.0.0/29").await.unwrap();
    let e = Bridge::create("sbt2", "10.79.0.0/29").await.unwrap_err();
    assert!(matches!(e, NetError::BridgeExists { .. }), "{e}");
    // Addresses: outside the subnet, the gateway, taken, none left.
    let spawn = |net: Network| async move {
        Sandbox::new()
            .network(net)
            .command("/bin/true")
            .status()
            .await
    };
    for bad in [Ipv4Addr::new(10, 80, 0, 2), br.gateway()] {
        let e = spawn(Network::bridge(&br).address(bad)).await.unwrap_err();
        assert!(
            matches!(e, Error::Net(NetError::AddressOutside { .. })),
            "{bad}: {e}"
        );
    }
    let held = br.lease(Some(Ipv4Addr::new(10, 79, 0, 2)), None).unwrap();
    let e = spawn(Network::bridge(&br).address(held.address()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Net(NetError::AddressTaken { .. })),
        "{e}"
    );
    // A /29 has room for 5 sandboxes: hold them all.
    let rest: Vec<_> = (0..4).map(|_| br.lease(None, None).unwrap()).collect();
    let e = spawn(Network::bridge(&br)).await.unwrap_err();
    assert!(matches!(e, Error::Net(NetError::SubnetFull { .. })), "{e}");
    drop(rest);
    drop(held);
    // No veth was made for any of the refused spawns.
    assert_eq!(common::links().len(), before.len() + 1);
    assert!(spawn(Network::bridge(&br)).await.unwrap().success());
    br.remove().await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || common::links() == before),
        "{:?}",
        common::links()
    );
}

/// A bridged spawn that fails after its veth pair was made (the program does not exist)
/// leaves no link and no lease; bad `/etc/hosts` names and a root without a generated
/// `/etc` are refused before any link exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_bridged_spawns_leave_no_link_and_no_lease() {
    if !common::net::in_own_network("failed_bridged_spawns_leave_no_link_and_no_lease") {
        return;
    }
    let br = Bridge::create("sbtf", "10.88.0.0/24").await.unwrap();
    let with_bridge = common::links();
    for _ in 0..5 {
        let e = Sandbox::new()
            .network(Network::bridge(&br))
            .command("/no/such")
            .spawn()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/no/such"), "{e}");
        assert!(br.leased().is_empty(), "{:?}", br.leased());
    }
    assert!(
        common::eventually(Duration::from_secs(10), || common::links() == with_bridge),
        "{:?}",
        common::links()
    );
    let spawn = |sandbox: Sandbox| async move { sandbox.command("/bin/true").status().await };
    for bad in ["a b", "db\n10.0.0.1 evil", "-x"] {
        let e = spawn(
            Sandbox::new()
                .rootfs(Rootfs::host_readonly())
                .network(Network::bridge(&br).add_host(bad, Ipv4Addr::new(10, 88, 0, 9))),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, Error::Net(NetError::HostName { ref name, .. }) if name == bad),
            "{bad:?}: {e}"
        );
    }
    let e = spawn(
        Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .hostname("my host")
            .network(Network::bridge(&br).peers()),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Net(NetError::HostName { .. })), "{e}");
    let e = spawn(
        Sandbox::new()
            .rootfs(Rootfs::host())
            .network(Network::bridge(&br).add_host("db", Ipv4Addr::new(10, 88, 0, 9))),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert_eq!(common::links(), with_bridge);
    assert!(br.leased().is_empty());
    br.remove().await.unwrap();
}
