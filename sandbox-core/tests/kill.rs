//! A sandbox never outlives what owns it: `kill()` makes `wait()` report SIGKILL, dropping
//! the `Child` leaves no process behind, and SIGKILL of the process that spawned it leaves
//! no sandbox behind.
mod common;
use sandbox_core::{Ending, Sandbox, Stdio};
use std::io::{BufRead, BufReader};
use std::time::Duration;

/// Spawns `/bin/sh -c script` in a new sandbox, its output discarded.
async fn spawn_sh(script: &str) -> sandbox_core::Child {
    Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::null())
        .spawn()
        .await
        .unwrap()
}

#[tokio::test]
async fn kill_reports_sigkill() {
    common::require_root();
    let mut child = Sandbox::new()
        .command("/bin/sleep")
        .arg("1000")
        .spawn()
        .await
        .unwrap();
    child.kill().await.unwrap();
    let o = child.wait().await.unwrap();
    assert_eq!(o.ending, Ending::Signaled(libc::SIGKILL));
    assert_eq!(child.id(), None);
    // Killing again is not an error.
    child.start_kill().unwrap();
}

#[tokio::test]
async fn dropping_the_child_leaves_no_process() {
    common::require_root();
    let child = spawn_sh("sleep 1000 & sleep 1000").await;
    let init = child.id().unwrap();
    // Wait until the shell has started its two sleeps.
    assert!(common::eventually(Duration::from_secs(5), || {
        common::children_of(init)
            .first()
            .is_some_and(|sh| common::children_of(*sh).len() == 2)
    }));
    let sh = common::children_of(init)[0];
    let mut all = vec![init, sh];
    all.extend(common::children_of(sh));
    let fds: Vec<_> = all.iter().map(|p| common::pidfd_open(*p)).collect();
    drop(child);
    for (pid, fd) in all.iter().zip(&fds) {
        assert!(
            common::pidfd_ended(fd, Duration::from_secs(5)),
            "{pid} still runs"
        );
    }
    // And reaped: no zombie left among our children.
    assert!(common::eventually(Duration::from_secs(5), || {
        !common::children().contains(&init)
    }));
}

#[tokio::test]
async fn sandbox_dies_with_the_process_that_spawned_it() {
    common::require_root();
    if common::inner() {
        // The helper: spawn a sandbox, tell the parent its pids, then wait to be killed.
        let child = spawn_sh("sleep 1000").await;
        let init = child.id().unwrap();
        assert!(common::eventually(Duration::from_secs(5), || {
            !common::children_of(init).is_empty()
        }));
        println!("PIDS {init} {}", common::children_of(init)[0]);
        std::mem::forget(child);
        tokio::time::sleep(Duration::from_secs(1000)).await;
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut helper = std::process::Command::new(exe)
        .args([
            "--exact",
            "sandbox_dies_with_the_process_that_spawned_it",
            "--nocapture",
        ])
        .env("SANDBOX_TEST_INNER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("PIDS ")))
        .expect("helper reported its sandbox");
    let pids: Vec<u32> = line[5..]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let fds: Vec<_> = pids.iter().map(|p| common::pidfd_open(*p)).collect();
    // Nothing happens while the helper lives.
    assert!(!common::pidfd_ended(&fds[0], Duration::from_millis(200)));
    helper.kill().unwrap(); // SIGKILL, by its own pid
    helper.wait().unwrap();
    for (pid, fd) in pids.iter().zip(&fds) {
        assert!(
            common::pidfd_ended(fd, Duration::from_secs(5)),
            "sandbox process {pid} survived its spawner"
        );
    }
}
