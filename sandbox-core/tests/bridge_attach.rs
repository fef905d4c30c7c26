//! `Child::attach` gives a running sandbox one more interface, on a second bridge, that a
//! sandbox on that bridge reaches; it is configured without moving any thread of the caller
//! into the sandbox's namespace. `detach` takes it away again, inside and on the host,
//! with its address. The network namespace of a sandbox with an attached interface cannot
//! be kept (it would keep the pair past the address's lease).
//!
//! The test runs in a network namespace of its own (the test binary re-runs itself under
//! `unshare -n`): no bridge, veth or packet ever touches the machine's own network.
mod common;

use common::net::{ECHO_CLIENT, ECHO_SERVER};
use sandbox_core::net::Bridge;
use sandbox_core::{Child, Error, Network, Rootfs, Sandbox};

/// What `/bin/sh -c script`, exec'd into the running sandbox `child`, writes to its standard
/// output.
async fn exec_stdout(child: &Child, script: &str) -> String {
    let mut sh = sandbox_core::Command::new("/bin/sh");
    sh.arg("-c")
        .arg(script)
        .stdout(sandbox_core::Stdio::piped());
    let out = child
        .exec(&sh)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    common::text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_adds_a_reachable_interface_on_a_second_bridge() {
    if !common::net::in_own_network("attach_adds_a_reachable_interface_on_a_second_bridge") {
        return;
    }
    let a = Bridge::create("sbta", "10.81.0.0/24").await.unwrap();
    let b = Bridge::create("sbtb", "10.82.0.0/24").await.unwrap();
    let base = Sandbox::new().rootfs(Rootfs::host_readonly());
    let (mut server, mut lines) = common::shell(
        &base.clone().network(Network::bridge(&a)),
        &format!("exec python3 -c '{ECHO_SERVER}'"),
    )
    .await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "ready");
    let links_before_attach = common::links();
    let netns_of_threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_link(t.ok()?.path().join("ns/net")).ok())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let own_netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let (ifname, addr) = server.attach(&Network::bridge(&b)).await.unwrap();
    assert_eq!(ifname, "eth1");
    // The inside was configured over a netlink socket opened in the sandbox's namespace,
    // by a thread of its own: every thread of this process is still in the test's.
    let threads = netns_of_threads();
    assert!(
        threads.iter().all(|n| *n == own_netns),
        "{threads:?} vs {own_netns:?}"
    );
    assert!(b.cidr().assignable(addr), "{addr}");
    // Seen from inside: eth1 with the address.
    let eth1 = exec_stdout(&server, "ip -4 -o addr show eth1 | awk '{print $4}'").await;
    assert_eq!(eth1, format!("{addr}/24\n"));
    // A sandbox only on the second bridge reaches the server there.
    let out = base
        .clone()
        .network(Network::bridge(&b))
        .command("/usr/bin/python3")
        .arg("-c")
        .arg(ECHO_CLIENT)
        .arg(addr.to_string())
        .arg("via-eth1")
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via-eth1\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Detach: the interface and its address are gone, inside and on the host.
    server.detach("eth1").await.unwrap();
    assert!(b.leased().is_empty(), "{:?}", b.leased());
    assert_eq!(common::links(), links_before_attach);
    let links_inside = "ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1";
    assert_eq!(exec_stdout(&server, links_inside).await, "lo\neth0\n");
    assert!(server.detach("eth1").await.is_err());
    server.kill().await.unwrap();
    assert!(a.leased().is_empty());
    // A sandbox with only loopback and an attached interface: its network namespace
    // cannot be kept (it would keep the pair past the address's lease).
    let (mut lo_only, _lines) = common::shell(
        &Sandbox::new().network(Network::loopback()),
        "read x || true",
    )
    .await;
    lo_only.attach(&Network::bridge(&b)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = lo_only
        .keep_namespace(sandbox_core::Namespace::Net, dir.path().join("net"))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    drop(lo_only.stdin.take());
    lo_only.wait().await.unwrap();
    assert!(b.leased().is_empty());
    a.remove().await.unwrap();
    b.remove().await.unwrap();
}
