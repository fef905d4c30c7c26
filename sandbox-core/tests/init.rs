//! The built-in init reaps orphaned grandchildren (no zombie remains while the sandbox
//! runs), forwards SIGTERM (and every other forwarded signal) to the program, reports the
//! program's own status, death by a signal included, and ends the sandbox when the program
//! ends, even with processes left in the background.
mod common;
use sandbox_core::{Ending, NamespaceIds, Sandbox, Stdio};
use std::time::Duration;

/// Host pids of every process in the PID namespace with inode `pidns`.
fn processes_in(pidns: u64) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| std::fs::metadata(format!("/proc/{p}/ns/pid")).is_ok_and(|m| m.ino() == pidns))
        .collect()
}

#[tokio::test]
async fn orphans_are_reaped_while_the_sandbox_runs() {
    common::require_root();
    // Each `( sh -c 'sleep 0.05' & )` leaves an orphan that the init inherits and must reap.
    let (mut child, mut lines) = common::shell(
        &Sandbox::new(),
        "for i in 1 2 3 4 5; do ( /bin/sh -c 'sleep 0.05' & ); done; \
         echo started; read x || true",
    )
    .await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "started");
    let pidns = child.namespace_ids().unwrap().pid;
    // The orphans run, end, and are reaped: eventually only init and the shell remain, and
    // at no point after that is there a zombie.
    assert!(
        common::eventually(Duration::from_secs(5), || processes_in(pidns).len() == 2),
        "left: {:?}",
        processes_in(pidns)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = processes_in(pidns);
    assert_eq!(left.len(), 2, "{left:?}");
    for p in left {
        assert_ne!(common::state(p), Some('Z'), "zombie {p}");
    }
    drop(child.stdin.take());
    assert!(child.wait().await.unwrap().success());
    assert_ne!(pidns, NamespaceIds::of_self().unwrap().pid);
}

#[tokio::test]
async fn sigterm_sent_to_the_sandbox_reaches_the_program() {
    common::require_root();
    let (mut child, mut lines) = common::shell(
        &Sandbox::new(),
        "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.02; done",
    )
    .await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "ready");
    child.signal(libc::SIGTERM).unwrap();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "got-term");
    let o = child.wait().await.unwrap();
    assert_eq!(o.ending, Ending::Exited(7));
}

#[tokio::test]
async fn every_forwarded_signal_arrives() {
    common::require_root();
    for (sig, name) in [
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
    ] {
        let script = format!(
            "trap 'echo got-{name}; exit 3' {name}; echo ready; while :; do sleep 0.02; done"
        );
        let (mut child, mut lines) = common::shell(&Sandbox::new(), &script).await;
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "ready");
        child.signal(sig).unwrap();
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            format!("got-{name}")
        );
        assert_eq!(child.wait().await.unwrap().ending, Ending::Exited(3));
    }
}

#[tokio::test]
async fn the_programs_death_by_signal_is_reported() {
    common::require_root();
    let o = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg("kill -SEGV $$")
        .status()
        .await
        .unwrap();
    assert_eq!(o.ending, Ending::Signaled(libc::SIGSEGV));
    assert_eq!(o.shell_code(), 128 + libc::SIGSEGV);
    // Without init the program is PID 1, which cannot be killed by its own signal; the
    // exit code says what the shell did instead.
    let o = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg("exit 42")
        .status()
        .await
        .unwrap();
    assert_eq!(o.ending, Ending::Exited(42));
}

#[tokio::test]
async fn sandbox_ends_when_the_program_ends_even_with_background_processes() {
    common::require_root();
    let o = tokio::time::timeout(
        Duration::from_secs(10),
        Sandbox::new()
            .command("/bin/sh")
            .arg("-c")
            .arg("sleep 1000 & exit 5")
            .stdout(Stdio::null())
            .status(),
    )
    .await
    .expect("the init must end the sandbox when the program exits")
    .unwrap();
    assert_eq!(o.ending, Ending::Exited(5));
}
