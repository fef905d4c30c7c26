//! `none` has only `lo`, down; `loopback` has `lo` up and serves 127.0.0.1 inside, not to
//! the host; `host` shares the caller's namespace.
mod common;
use sandbox_core::{Namespace, NamespaceIds, Network, Sandbox};

/// Whether `script` succeeded in `sandbox`, its standard output and its standard error.
async fn sh(sandbox: &Sandbox, script: &str) -> (bool, String, String) {
    let out = common::shell_output(sandbox, script).await;
    let (stdout, stderr) = (common::text(&out.stdout), common::text(&out.stderr));
    (out.status.success(), stdout, stderr)
}

/// `name flags` of every interface, read from /sys/class/net is not fresh inside (sysfs is
/// the host's until the filesystem work), so ask the kernel: /proc/net/dev lists the
/// namespace's interfaces and `ip` reports their state.
const LINKS: &str = "ip -o link show | awk '{print $2, $3}'";

#[tokio::test]
async fn none_has_only_lo_and_it_is_down() {
    common::require_root();
    let (ok, out, err) = sh(&Sandbox::new().network(Network::none()), LINKS).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("lo: "), "{out}");
    assert!(!lines[0].contains("UP"), "{out}");
}

#[tokio::test]
async fn loopback_is_up_and_serves_inside_only() {
    // The "not from the host" half connects to 127.0.0.1 outside the sandbox: the test's
    // own network namespace, never the machine's.
    if common::in_private_network_namespace("loopback_is_up_and_serves_inside_only") {
        return;
    }
    common::require_root();
    let sandbox = Sandbox::new().network(Network::loopback());
    let (ok, out, err) = sh(&sandbox, LINKS).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("lo: <LOOPBACK,UP,LOWER_UP>"), "{out}");
    // A TCP server on 127.0.0.1 inside, reached by a second process in the same sandbox.
    let script = "python3 -c '
import socket, subprocess, sys
s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(1)
port = s.getsockname()[1]
print(port, flush=True)
c = subprocess.Popen([sys.executable, \"-c\", \"import socket,sys; c=socket.create_connection((\\\"127.0.0.1\\\", int(sys.argv[1]))); c.sendall(b\\\"ping\\\")\", str(port)])
conn, _ = s.accept(); print(conn.recv(4).decode(), flush=True); c.wait()
'";
    let (ok, out, err) = sh(&sandbox, script).await;
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let port: u16 = lines.next().unwrap().parse().unwrap();
    assert_eq!(lines.next(), Some("ping"));
    // The host cannot reach it (the server is gone, but more to the point the namespace
    // is another one: nothing listens on the host's 127.0.0.1 at that port from inside).
    let mut child = sandbox
        .command("/bin/sh")
        .arg("-c")
        .arg(format!(
            "exec python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", {port})); s.listen(1); print(\"up\", flush=True); time.sleep(30)'"
        ))
        .stdout(sandbox_core::Stdio::piped())
        .spawn()
        .await
        .unwrap();
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut l = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(l.next_line().await.unwrap().as_deref(), Some("up"));
    let from_host = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(
        from_host.is_err(),
        "the host reached a server inside the sandbox"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn host_network_is_shared() {
    common::require_root();
    let host = Sandbox::new().network(Network::host());
    let ids = common::while_running(&host, |c| c.namespace_ids().unwrap()).await;
    assert_eq!(ids.net, NamespaceIds::of_self().unwrap().net);
    let e = Sandbox::new()
        .share(Namespace::Net)
        .network(Network::loopback())
        .command("/bin/true")
        .status()
        .await;
    // Choosing a network after sharing the namespace takes the namespace back.
    assert!(e.unwrap().success());
}
