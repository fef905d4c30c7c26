//! Egress NAT: a sandbox on a NATed bridge reaches a server outside (in a second network
//! namespace the test made, behind a veth "uplink"), which sees the uplink's address, not
//! the sandbox's; without NAT the server cannot answer the sandbox's private address. A
//! sandbox gets the host's name servers only while its bridge has a way out, and never
//! those on the host's loopback.
//!
//! The test runs in network and mount namespaces of its own (the test binary re-runs
//! itself under `unshare -n -m`): no bridge, veth or packet ever touches the machine's own
//! network.
mod common;

use sandbox_core::net::Bridge;
use sandbox_core::{Network, Rootfs, Sandbox};

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
    if !common::net::in_own_network_and_mounts("nat_masquerades_the_bridge_subnet") {
        return;
    }
    use sandbox_core::net::Netns;
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
