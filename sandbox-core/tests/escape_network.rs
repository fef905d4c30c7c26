//! Nothing listening in the host's network namespace is reachable from a `loopback`
//! sandbox: neither a TCP listener on 127.0.0.1 nor an abstract unix socket, though both
//! are from the host (the control runs, see `common/escape.rs`). The test runs in a network
//! namespace it makes, standing in for the host's.
mod common;

use common::escape::{blocked_in, escapes_without_sandbox, sandbox, SERIAL};

/// Nothing listening in the host's network namespace is reachable from a `loopback`
/// sandbox: neither a TCP listener on 127.0.0.1 nor an abstract unix socket. (Run in a
/// network namespace this test makes, standing in for the host's.)
#[tokio::test]
async fn the_hosts_loopback_services_are_out_of_reach() {
    common::require_root();
    if common::in_private_network_namespace("the_hosts_loopback_services_are_out_of_reach") {
        return;
    }
    let _serial = SERIAL.lock().await;
    // This namespace's own lo is down: bring it up, as a host's is.
    let st = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let name = format!("sandbox-escape-{}", common::random_hex(8));
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let unix = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let lo = sandbox().network(sandbox_core::Network::loopback());
    blocked_in(&lo, &["tcp-connect", &port], &["ECONNREFUSED"]).await;
    escapes_without_sandbox(&[], &["tcp-connect", &port]);
    blocked_in(&lo, &["abstract-connect", &name], &["ECONNREFUSED"]).await;
    escapes_without_sandbox(&[], &["abstract-connect", &name]);
    drop((tcp, unix));
}
