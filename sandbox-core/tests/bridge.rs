//! Bridged networks (issue 4): sandboxes on a bridge reach each other by address and by
//! name, get distinct addresses, and leave no veth behind. Every test runs in a network
//! namespace of its own (the test binary re-runs itself under `unshare -n`): no bridge,
//! veth or packet ever touches the machine's own network.
mod common;
use sandbox_core::sandbox_net::{Bridge, Error as NetError};
use sandbox_core::{Error, Network, Rootfs, Sandbox};
use std::net::Ipv4Addr;
use std::time::Duration;

/// An echo server on TCP port 7000, then `ready`.
const ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100)); c.close()
"#;

/// Sends its argument to `HOST:7000`, prints the reply.
const ECHO_CLIENT: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=5)
c.sendall(sys.argv[2].encode()); print(c.recv(100).decode(), flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_on_a_bridge_talk_by_address_and_by_name() {
    if common::in_private_network_namespace("two_sandboxes_on_a_bridge_talk_by_address_and_by_name")
    {
        return;
    }
    common::require_root();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sandboxes_get_distinct_addresses_and_leave_nothing() {
    if common::in_private_network_namespace(
        "fifty_sandboxes_get_distinct_addresses_and_leave_nothing",
    ) {
        return;
    }
    common::require_root();
    let before = common::links();
    let br = Bridge::create("sbt1", "10.78.0.0/24").await.unwrap();
    let sandbox = Sandbox::new().network(Network::bridge(&br));
    let mut children = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        // Each prints the address it sees on eth0, then waits for its stdin to close.
        let (child, mut lines) = common::shell(
            &sandbox,
            "ip -4 -o addr show eth0 | awk '{print $4}'; read x || true",
        )
        .await;
        let inside = lines.next_line().await.unwrap().unwrap();
        let addr = child.address().unwrap();
        assert_eq!(inside, format!("{addr}/24"));
        assert!(seen.insert(addr), "{addr} given twice");
        children.push(child);
    }
    assert_eq!(br.leased().len(), 50);
    assert_eq!(
        common::links().len(),
        before.len() + 1 + 50,
        "{:?}",
        common::links()
    );
    for mut c in children {
        drop(c.stdin.take());
        assert!(c.wait().await.unwrap().success());
    }
    let want: Vec<String> = {
        let mut v = before.clone();
        v.push("sbt1".into());
        v.sort();
        v
    };
    assert!(
        common::eventually(Duration::from_secs(20), || common::links() == want),
        "veths left: {:?}",
        common::links()
    );
    assert!(br.leased().is_empty(), "{:?}", br.leased());
    // Every address is free again: a fixed one that was handed out before can be taken.
    let first = *seen.iter().next().unwrap();
    let lease = br.lease(Some(first), None).unwrap();
    assert_eq!(lease.address(), first);
    drop(lease);
    br.remove().await.unwrap();
    assert_eq!(common::links(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bridge_input_is_refused_before_any_link_exists() {
    if common::in_private_network_namespace("bad_bridge_input_is_refused_before_any_link_exists") {
        return;
    }
    common::require_root();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_adds_a_reachable_interface_on_a_second_bridge() {
    if common::in_private_network_namespace("attach_adds_a_reachable_interface_on_a_second_bridge")
    {
        return;
    }
    common::require_root();
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
    let out = server
        .exec(
            sandbox_core::Command::new("/bin/sh")
                .arg("-c")
                .arg("ip -4 -o addr show eth1 | awk '{print $4}'")
                .stdout(sandbox_core::Stdio::piped()),
        )
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{addr}/24\n"));
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
    let out = server
        .exec(
            sandbox_core::Command::new("/bin/sh")
                .arg("-c")
                .arg("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1")
                .stdout(sandbox_core::Stdio::piped()),
        )
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lo\neth0\n");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_netns_outlives_its_sandbox_until_its_owner_removes_it() {
    if common::in_private_network_and_mount_namespaces(
        "a_named_netns_outlives_its_sandbox_until_its_owner_removes_it",
    ) {
        return;
    }
    common::require_root();
    use sandbox_core::sandbox_net::Netns;
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::create_in(dir.path(), "sbt-ns").await.unwrap();
    let ino = std::fs::metadata(ns.path()).unwrap().ino();
    assert_ne!(ino, std::fs::metadata("/proc/self/ns/net").unwrap().ino());
    // A sandbox joins it: it is in that namespace (its inode), and lo is up there.
    let out = Sandbox::new()
        .network(Network::join(&ns))
        .command("/bin/sh")
        .arg("-c")
        .arg("stat -L -c %i /proc/self/ns/net; ip -o link show lo | grep -c UP")
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{ino}\n1\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The sandbox is gone; the namespace is not.
    assert_eq!(std::fs::metadata(ns.path()).unwrap().ino(), ino);
    let again = Netns::open(ns.path()).unwrap();
    assert_eq!(again.path(), ns.path());
    assert!(Netns::open("/etc/hostname").is_err());
    let path = ns.path().to_path_buf();
    ns.remove().unwrap();
    assert!(!path.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("sbt-ns"), "{mounts}");
    // Creations abandoned at any point (the future dropped by a timeout) leave no file and
    // no mount; those that finished are removed by their owner.
    let abandon = tempfile::tempdir().unwrap();
    let mut finished = 0;
    for i in 0..60u64 {
        let made = tokio::time::timeout(
            Duration::from_micros(i * 25),
            Netns::create_in(abandon.path(), &format!("ns{i}")),
        )
        .await;
        if let Ok(ns) = made {
            ns.unwrap().remove().unwrap();
            finished += 1;
        }
    }
    let gone = || {
        std::fs::read_dir(abandon.path()).unwrap().count() == 0
            && !std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(abandon.path().to_str().unwrap())
    };
    assert!(
        common::eventually(Duration::from_secs(5), gone),
        "left: {:?}",
        std::fs::read_dir(abandon.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(
        finished < 60,
        "no creation was abandoned: the test proved nothing"
    );
}

/// The directory of this network namespace's address claims (see `LEASE_DIR`).
fn claims_of_this_namespace() -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
    std::path::Path::new(sandbox_core::sandbox_net::LEASE_DIR).join(format!(
        "{}-{}",
        ns.dev(),
        ns.ino()
    ))
}

/// The `nameserver` addresses of a resolv.conf.
fn name_servers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(|a| a.trim().to_string())
        .collect()
}

/// Replies with the address the connection came from.
const WHO_SERVER: &str = r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.1", 7000)); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode()); c.close()
"#;

const WHO_CLIENT: &str = r#"
import socket
try:
    c = socket.create_connection(("192.0.2.1", 7000), timeout=2)
    print(c.recv(100).decode(), flush=True)
except OSError as e:
    print("unreachable", flush=True)
"#;

/// Egress NAT: a sandbox on a NATed bridge reaches a server outside (in a second network
/// namespace the test made, behind a veth "uplink"), which sees the uplink's address, not
/// the sandbox's; without NAT the server cannot answer the sandbox's private address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_masquerades_the_bridge_subnet() {
    if common::in_private_network_and_mount_namespaces("nat_masquerades_the_bridge_subnet") {
        return;
    }
    common::require_root();
    use sandbox_core::sandbox_net::Netns;
    let dir = tempfile::tempdir().unwrap();
    let outside = Netns::create_in(dir.path(), "outside").await.unwrap();
    let out_path = outside.path().to_str().unwrap().to_string();
    let sh = |script: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh(&format!(
        "ip link add up0 type veth peer name up1 && ip link set up1 netns {out_path} && \
         ip addr add 192.0.2.2/24 dev up0 && ip link set up0 up && \
         nsenter --net={out_path} ip addr add 192.0.2.1/24 dev up1 && \
         nsenter --net={out_path} ip link set up1 up"
    ));
    let mut server = tokio::process::Command::new("nsenter")
        .arg(format!("--net={out_path}"))
        .args(["python3", "-c", WHO_SERVER])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "ready");
    }
    let br = Bridge::create("sbtn", "10.83.0.0/24").await.unwrap();
    let client = || async {
        let out = Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .network(Network::bridge(&br))
            .command("/usr/bin/python3")
            .arg("-c")
            .arg(WHO_CLIENT)
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(client().await, "unreachable", "no NAT yet");
    let resolv = || async {
        let out = Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .network(Network::bridge(&br))
            .command("/bin/cat")
            .arg("/etc/resolv.conf")
            .output()
            .await
            .unwrap();
        name_servers(&String::from_utf8_lossy(&out.stdout))
    };
    assert_eq!(
        resolv().await,
        Vec::<String>::new(),
        "no way out: no server"
    );
    br.enable_nat().await.unwrap();
    assert!(br.nat());
    // With a way out, the host's name servers, but not those on its loopback (or IPv6).
    let host: Vec<String> = name_servers(&std::fs::read_to_string("/etc/resolv.conf").unwrap())
        .into_iter()
        .filter(|a| {
            let a: std::net::IpAddr = a.parse().unwrap();
            a.is_ipv4() && !a.is_loopback()
        })
        .collect();
    assert_eq!(resolv().await, host);
    assert_eq!(
        client().await,
        "192.0.2.2",
        "masqueraded to the uplink's address"
    );
    br.disable_nat().await.unwrap();
    assert_eq!(client().await, "unreachable", "NAT off again");
    br.enable_nat().await.unwrap();
    br.remove().await.unwrap();
    server.kill().await.unwrap();
    outside.remove().unwrap();
}

/// A fixed MAC address and MTU reach eth0; the host end shares the MTU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_and_mtu_are_set() {
    if common::in_private_network_namespace("mac_and_mtu_are_set") {
        return;
    }
    common::require_root();
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

/// A sandbox left running (dropped without kill-on-drop) keeps its address until it ends;
/// attach is refused for a sandbox without a network namespace of its own; a bridged
/// sandbox's network namespace cannot be kept past its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_held_as_long_as_the_sandbox_runs() {
    if common::in_private_network_namespace("addresses_are_held_as_long_as_the_sandbox_runs") {
        return;
    }
    common::require_root();
    let br = Bridge::create("sbth", "10.85.0.0/24").await.unwrap();
    let mut cmd = Sandbox::new()
        .network(Network::bridge(&br))
        .command("/bin/sleep");
    cmd.arg("1").kill_on_drop(false);
    let child = cmd.spawn().await.unwrap();
    let addr = child.address().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = child
        .keep_namespace(sandbox_core::Namespace::Net, dir.path().join("net"))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    drop(child);
    // Still running: still its address.
    assert_eq!(br.leased(), vec![addr]);
    let e = br.lease(Some(addr), None).unwrap_err();
    assert!(matches!(e, NetError::AddressTaken { .. }), "{e}");
    assert!(
        common::eventually(Duration::from_secs(10), || br.leased().is_empty()),
        "the address was not given back after the sandbox ended"
    );
    let (mut host_net, _lines) =
        common::shell(&Sandbox::new().network(Network::host()), "read x || true").await;
    let e = host_net.attach(&Network::bridge(&br)).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    // No pair was made for it (the first sandbox's goes with its namespace, in time).
    assert!(common::eventually(Duration::from_secs(10), || {
        !common::links().iter().any(|l| l.starts_with("sbx-sandbo"))
    }));
    drop(host_net.stdin.take());
    host_net.wait().await.unwrap();
    br.remove().await.unwrap();
}

/// Addresses are unique between processes, not only within one: a `run` command on the
/// same bridge does not get an address this process holds, two at once get different
/// ones, and the address of one killed with SIGKILL is free again at once (its claim is
/// the kernel's, released with the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_unique_across_processes_and_freed_when_a_holder_dies() {
    if common::in_private_network_namespace(
        "addresses_are_unique_across_processes_and_freed_when_a_holder_dies",
    ) {
        return;
    }
    common::require_root();
    let br = Bridge::create("sbtx", "10.86.0.0/24").await.unwrap();
    let held = br.lease(Some(Ipv4Addr::new(10, 86, 0, 2)), None).unwrap();
    let run = |args: &[&str]| {
        let mut c = tokio::process::Command::new(common::example("run"));
        c.args(["--net", "bridge:sbtx"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    // The address this process holds is refused to another.
    let out = run(&["--ip", "10.86.0.2", "--", "/bin/true"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10.86.0.2 is taken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two at once: each prints its address, then waits.
    let show = "ip -4 -o addr show eth0 | awk '{print $4}'; exec sleep 60";
    let mut procs = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut p = run(&["--", "/bin/sh", "-c", show]).spawn().unwrap();
        let mut lines = {
            use tokio::io::AsyncBufReadExt;
            tokio::io::BufReader::new(p.stdout.take().unwrap()).lines()
        };
        let line = lines.next_line().await.unwrap().unwrap();
        seen.push(line.trim_end_matches("/24").parse::<Ipv4Addr>().unwrap());
        procs.push(p);
    }
    assert_ne!(seen[0], seen[1], "{seen:?}");
    assert!(!seen.contains(&held.address()), "{seen:?}");
    // This process cannot take them either, while they run.
    for a in &seen {
        let e = br.lease(Some(*a), None).unwrap_err();
        assert!(matches!(e, NetError::AddressTaken { .. }), "{a}: {e}");
    }
    // SIGKILL the first: its address is free once it is gone.
    let mut first = procs.remove(0);
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let again = br.lease(Some(seen[0]), None).unwrap();
    assert_eq!(again.address(), seen[0]);
    for mut p in procs {
        p.start_kill().unwrap();
        p.wait().await.unwrap();
    }
    // A killed holder's claim file is taken over, and removed when that lease ends.
    let other = br.lease(Some(seen[1]), None).unwrap();
    drop((again, held, other));
    let mine = claims_of_this_namespace();
    assert!(!mine.exists(), "{} is left", mine.display());
    br.remove().await.unwrap();
}

/// A bridged spawn that fails after its veth pair was made (the program does not exist)
/// leaves no link and no lease; bad `/etc/hosts` names and a root without a generated
/// `/etc` are refused before any link exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_bridged_spawns_leave_no_link_and_no_lease() {
    if common::in_private_network_namespace("failed_bridged_spawns_leave_no_link_and_no_lease") {
        return;
    }
    common::require_root();
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

/// An unprivileged process cannot block a bridge's addresses: it can neither write the
/// claim files (root's directory) nor does binding the names of the abstract sockets a
/// non-root claimant would use matter to a root caller. All five addresses of a /29 are
/// still handed out while such a squatter runs, and the claim files go with the leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_process_cannot_block_addresses() {
    if common::in_private_network_namespace("an_unprivileged_process_cannot_block_addresses") {
        return;
    }
    common::require_root();
    let br = Bridge::create("sbtq", "10.90.0.0/29").await.unwrap();
    // The index as this namespace's netlink sees it (sysfs may be the host's).
    let index = {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg("ip -o link show sbtq | cut -d: -f1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert!(!index.is_empty());
    let squat = format!(
        r#"
import os, socket, sys
held = []
for i in range(2, 7):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0sandbox-net/lease/sbtq/{index}/10.90.0.%d" % i)
    held.append(s)
    try:
        os.makedirs("{dir}/x", exist_ok=True)
        print("wrote the lease directory", flush=True)
    except OSError:
        pass
print("squatting", flush=True)
sys.stdin.read()
"#,
        dir = sandbox_core::sandbox_net::LEASE_DIR
    );
    let mut squatter = tokio::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &squat,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(squatter.stdout.take().unwrap()).lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "squatting");
    }
    // A claim file a dead caller left (in a namespace long gone) is swept by the first
    // claim of this process.
    let stale = std::path::Path::new(sandbox_core::sandbox_net::LEASE_DIR)
        .join(format!("0-{}", std::process::id()));
    std::fs::create_dir_all(stale.join("gone-1")).unwrap();
    std::fs::write(stale.join("gone-1/10.0.0.2"), "").unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        let (child, _lines) = common::shell(
            &Sandbox::new().network(Network::bridge(&br)),
            "read x || true",
        )
        .await;
        held.push(child);
    }
    assert!(!stale.exists(), "the stale claim was not swept");
    let mut addrs: Vec<Ipv4Addr> = held.iter().map(|c| c.address().unwrap()).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        (2..7)
            .map(|i| Ipv4Addr::new(10, 90, 0, i))
            .collect::<Vec<_>>()
    );
    for mut c in held {
        drop(c.stdin.take());
        c.wait().await.unwrap();
    }
    drop(squatter.stdin.take());
    squatter.wait().await.unwrap();
    // The claim files and their directories went with the leases.
    let mine = claims_of_this_namespace();
    assert!(!mine.exists(), "{} is left", mine.display());
    br.remove().await.unwrap();
}
