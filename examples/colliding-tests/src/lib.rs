//! Tests that disturb each other unless each runs in a sandbox of its own.

/// The port both network tests want.
pub const PORT: u16 = 48123;
/// The file both /tmp tests want for themselves.
pub const SHARED: &str = "/tmp/colliding-tests.lock";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Holds 127.0.0.1:PORT for a while, as a test server does.
    fn serve_on_the_port() {
        let l = std::net::TcpListener::bind(("127.0.0.1", PORT))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{PORT}: {e}"));
        std::thread::sleep(Duration::from_millis(800));
        drop(l);
    }

    /// Takes /tmp's shared file for itself (create-exclusive), works, removes it.
    fn use_the_tmp_file() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(SHARED)
            .unwrap_or_else(|e| panic!("create {SHARED}: {e}"));
        std::thread::sleep(Duration::from_millis(800));
        drop(f);
        std::fs::remove_file(SHARED).unwrap();
    }

    #[test]
    fn server_a_binds_the_port() {
        serve_on_the_port();
    }

    #[test]
    fn server_b_binds_the_port() {
        serve_on_the_port();
    }

    #[test]
    fn job_a_uses_the_tmp_file() {
        use_the_tmp_file();
    }

    #[test]
    fn job_b_uses_the_tmp_file() {
        use_the_tmp_file();
    }

    #[test]
    fn leaves_a_process_behind() {
        // A background process the test never waits for: it outlives the test run unless
        // something ends it (a sandbox's PID namespace does).
        std::process::Command::new("/bin/sleep")
            .arg("4242.5")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    }

    #[test]
    fn reads_its_crate() {
        // Tests often read files of their crate; the runner binds it in with --bind.
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let text = std::fs::read_to_string(manifest)
            .unwrap_or_else(|e| panic!("read {manifest}: {e}"));
        assert!(text.contains("colliding-tests"));
    }

    #[test]
    fn sees_only_itself() {
        // In a sandbox of its own it is PID 2 (its init is 1) and has its own hostname.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert!(!host.trim().is_empty());
    }
}
