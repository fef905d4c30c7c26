//! A sandboxed program can neither see, signal nor trace the host's processes (nor the
//! test's own), nor trace a process of its own sandbox: it sees only its init and itself.
//! Each attack also runs as a control on the host, where it works (see `common/escape.rs`).
mod common;

use common::escape::{attacks, blocked, escapes_without_sandbox, run_in, sandbox, SERIAL};

#[tokio::test]
async fn host_processes_can_be_neither_seen_nor_signalled_nor_traced() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    blocked(&["kill", &pid], &["ESRCH"]).await;
    blocked(&["kill", &std::process::id().to_string()], &["ESRCH"]).await;
    // (The control probes with signal 0: the sleeper must live on.)
    escapes_without_sandbox(&[], &["kill", &pid, "0"]);
    blocked(&["ptrace-attach", &pid], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["ptrace-attach", &pid]);
    // Not even a process of the sandbox's own can be traced.
    blocked(&["ptrace-child"], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["ptrace-child"]);
    let (_, text) = run_in(&sandbox(), &["count-processes"]).await;
    // The init and the attack program.
    assert_eq!(text.trim(), "visible 2", "{text}");
    let out = std::process::Command::new(attacks())
        .arg("count-processes")
        .output()
        .unwrap();
    let n: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("visible ")
        .parse()
        .unwrap();
    assert!(n > 10, "the host shows its processes: {n}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the host's sleep died"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}
