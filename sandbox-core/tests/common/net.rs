//! Helpers of the bridged-network tests (`bridge_*.rs`, `netns.rs`): how each starts (in
//! namespaces of its own, so that no bridge, veth or packet ever touches the machine's own
//! network), and the echo server and client their sandboxes run.

/// How each of these tests starts: asserts root, then re-runs the test (`test`: its name)
/// in a network namespace of its own (`unshare -n`, with `lo` up). `false` in the outer
/// copy, which has only checked that the re-run passed: the test returns at once. `true` in
/// the re-run, where the test's body goes on.
pub fn in_own_network(test: &str) -> bool {
    super::require_root();
    !super::in_private_network_namespace(test)
}

/// [`in_own_network`], in a mount namespace of its own too (for tests that bind namespace
/// files).
pub fn in_own_network_and_mounts(test: &str) -> bool {
    super::require_root();
    !super::in_private_network_and_mount_namespaces(test)
}

/// An echo server on TCP port 7000, then `ready`.
pub const ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(c.recv(100)); c.close()
"#;

/// Sends its argument to `HOST:7000`, prints the reply.
pub const ECHO_CLIENT: &str = r#"
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=5)
c.sendall(sys.argv[2].encode()); print(c.recv(100).decode(), flush=True)
"#;
