//! The test runner example, run as a user runs it, on the bundled crate whose tests collide
//! without isolation (two bind one port, two take one /tmp file): side by side in one
//! process they fail; each in its own sandbox they pass.
mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled crate's directory.
fn crate_dir() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/colliding-tests"))
        .unwrap()
}

/// Builds the bundled crate's tests; the test binary's path.
fn colliding_tests(target: &Path) -> PathBuf {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/colliding-tests/Cargo.toml");
    let messages = common::stdout_of(
        Command::new(env!("CARGO"))
            .args([
                "test",
                "--no-run",
                "--offline",
                "--message-format",
                "json",
                "--manifest-path",
            ])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target),
    );
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .expect("the test binary")
}

/// Pids of `sleep 4242.5` processes (what the bundled crate's leaking test starts).
fn leaked() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c == b"/bin/sleep\x004242.5\x00")
        })
        .collect()
}

#[test]
fn colliding_tests_pass_each_in_its_own_sandbox() {
    common::require_root();
    // In a network namespace of its own: the port collisions below happen there, not on
    // the machine.
    if common::in_private_network_namespace("colliding_tests_pass_each_in_its_own_sandbox") {
        return;
    }
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
    let target = tempfile::tempdir_in("/var/tmp").unwrap();
    let bin = colliding_tests(target.path());
    // Side by side in one process: they collide (over a /tmp of their own, in a mount
    // namespace of their own, so the host's /tmp is not touched).
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        // (Not the test that reads its crate: a checkout under /tmp is hidden here.)
        .arg("mount -t tmpfs none /tmp && exec \"$0\" --test-threads 6 --skip reads_its_crate")
        .arg(&bin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("2 failed"), "one of each pair fails: {text}");
    // ... and one leaves a process behind.
    assert!(
        !leaked().is_empty(),
        "the unsandboxed run leaves its sleep behind"
    );
    for pid in leaked() {
        // SAFETY: kill(2) of the `sleep 4242.5` the bundled test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(common::eventually(
        std::time::Duration::from_secs(5),
        || leaked().is_empty()
    ));
    // Each in its own sandbox, five at a time: they all pass, and nothing is left.
    let text = common::stdout_of(
        Command::new(common::example("test_runner"))
            .arg(&bin)
            .args(["--jobs", "7", "--bind"])
            .arg(crate_dir()),
    );
    assert!(
        text.contains("running 7 tests, each in a sandbox of its own, 7 at a time"),
        "{text}"
    );
    assert!(
        leaked().is_empty(),
        "a sandboxed test left a process: {:?}",
        leaked()
    );
    for t in [
        "server_a_binds_the_port",
        "server_b_binds_the_port",
        "job_a_uses_the_tmp_file",
        "job_b_uses_the_tmp_file",
        "sees_only_itself",
        "leaves_a_process_behind",
        "reads_its_crate",
    ] {
        assert!(text.contains(&format!("test tests::{t} ... ok")), "{text}");
    }
    assert!(text.contains("[7/7]"), "{text}");
    assert!(
        text.contains("test result: ok. 7 passed; 0 failed"),
        "{text}"
    );
    // The same from a warm pool of sandboxes made ahead: each test still in one of its own.
    let text = common::stdout_of(
        Command::new(common::example("test_runner"))
            .arg(&bin)
            .args(["--jobs", "3", "--pool", "--bind"])
            .arg(crate_dir()),
    );
    assert!(
        text.contains("test result: ok. 7 passed; 0 failed"),
        "{text}"
    );
    assert!(leaked().is_empty(), "{:?}", leaked());
    // Without --bind the crate is not there: a failure, reported like cargo test's.
    let out = Command::new(common::example("test_runner"))
        .arg(&bin)
        .args(["--filter", "reads_its_crate"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{text}");
    assert!(text.contains("---- tests::reads_its_crate ----"), "{text}");
    assert!(
        text.contains("test result: FAILED. 0 passed; 1 failed"),
        "{text}"
    );
    // A filter.
    let out = Command::new(common::example("test_runner"))
        .arg(&bin)
        .args(["--filter", "server_a"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("test result: ok. 1 passed; 0 failed"),
        "{text}"
    );
    let out = Command::new(common::example("test_runner"))
        .arg("/no/such/binary")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/binary"));
}
