//! Sandboxes on a bridge reach each other by address and by name (from the `/etc/hosts` a
//! new root gets generated), each through a veth named after it, whose host end is on the
//! bridge and goes away with the sandbox; a fixed MAC address and MTU reach the sandbox's
//! `eth0`, and its host end shares the MTU.
//!
//! Every test runs in a network namespace of its own (the test binary re-runs itself under
//! `unshare -n`): no bridge, veth or packet ever touches the machine's own network.
mod common;

use common::net::{ECHO_CLIENT, ECHO_SERVER};
use sandbox_core::net::Bridge;
use sandbox_core::{Network, Rootfs, Sandbox};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_on_a_bridge_talk_by_address_and_by_name() {
    if !common::net::in_own_network("two_sandboxes_on_a_bridge_talk_by_address_and_by_name") {
        return;
    }
    let br = Bridge::create("sbt0", "10.77.0.0/24").await.unwrap();
    assert!(common::links().contains(&"sbt0".to_string()));
    // Names come from /etc/hosts, which a new root gets generated.
    let base = Sandbox::new().rootfs(Rootfs::host_readonly());
    let (mut server, mut lines) = common::shell(
        &base
            .clone()
            .hostname("server")
            .network(Network::bridge(&br).peers()),
        &format!("exec python3 -c '{ECHO_SERVER}'"),
    )
    .await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "ready");
    let addr = server.address().expect("the server has an address");
    assert!(br.cidr().assignable(addr), "{addr}");
    // From the host side: its veth is on the bridge.
    let host_if = server.host_interface().unwrap().to_string();
    assert!(common::links().contains(&host_if), "{host_if}");
    // Named after the sandbox.
    assert!(host_if.starts_with("sbx-server-"), "{host_if}");
    let master = std::process::Command::new("ip")
        .args(["-o", "link", "show", &host_if])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&master.stdout).contains("master sbt0"));
    for (target, word) in [
        (addr.to_string(), "by-address"),
        ("server".into(), "by-name"),
    ] {
        let out = base
            .clone()
            .hostname("client")
            .network(Network::bridge(&br).peers())
            .command("/usr/bin/python3")
            .arg("-c")
            .arg(ECHO_CLIENT)
            .arg(&target)
            .arg(word)
            .output()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{word}\n"),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.kill().await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || !common::links()
            .contains(&host_if)),
        "the server's veth is still there"
    );
    assert!(br.leased().is_empty(), "{:?}", br.leased());
    br.remove().await.unwrap();
    assert!(!common::links().contains(&"sbt0".to_string()));
}

/// A fixed MAC address and MTU reach eth0; the host end shares the MTU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_and_mtu_are_set() {
    if !common::net::in_own_network("mac_and_mtu_are_set") {
        return;
    }
    let br = Bridge::create("sbtm", "10.84.0.0/24").await.unwrap();
    let net = Network::bridge(&br)
        .mac([0x02, 0x42, 0xac, 0x11, 0x00, 0x09])
        .mtu(1400);
    let (mut child, mut lines) = common::shell(
        &Sandbox::new().network(net),
        // (/sys is the host's with the host's root: ask the kernel through netlink.)
        "ip -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; \
         ip -o link show eth0 | grep -o 'mtu [0-9]*' | cut -d' ' -f2; read x || true",
    )
    .await;
    assert_eq!(
        lines.next_line().await.unwrap().unwrap(),
        "02:42:ac:11:00:09"
    );
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "1400");
    let host_if = child.host_interface().unwrap().to_string();
    let o = std::process::Command::new("ip")
        .args(["-o", "link", "show", &host_if])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("mtu 1400"));
    drop(child.stdin.take());
    child.wait().await.unwrap();
    br.remove().await.unwrap();
}
