//! Helpers of the bridge tests (`bridge_*.rs`): the echo server and client their sandboxes
//! run.

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
