//! `spawn()` is cancel-safe: a spawn future dropped at any point kills and reaps the
//! half-started sandbox; nothing (process, zombie, fd) is left behind.
mod common;
use sandbox_core::test_hooks::reaper_pending;
use sandbox_core::{Sandbox, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_spawn_futures_leave_nothing_behind() {
    common::require_root();
    let sandbox = Sandbox::new().hostname("cancel");
    // Warm up the library's threads (spawner, reaper) and their fds.
    sandbox.command("/bin/true").status().await.unwrap();
    drop(
        sandbox
            .command("/bin/sleep")
            .arg("1000")
            .spawn()
            .await
            .unwrap(),
    );
    assert!(common::eventually(
        Duration::from_secs(5),
        || reaper_pending() == 0
    ));
    let fds = common::open_fds();
    let (mut cancelled, mut finished) = (0, 0);
    for i in 0..120u64 {
        // Cut the spawn short after 0..~1.2 ms: some futures are dropped before the clone,
        // some during the handshake, some after the exec.
        let mut cmd = sandbox.command("/bin/sleep");
        cmd.arg("1000").stdout(Stdio::piped());
        match tokio::time::timeout(Duration::from_micros(i * 10), cmd.spawn()).await {
            Err(_) => cancelled += 1,
            Ok(child) => {
                finished += 1;
                drop(child.unwrap());
            }
        }
    }
    assert!(cancelled > 0, "no spawn was cut short");
    assert!(
        common::eventually(Duration::from_secs(10), || common::children().is_empty()
            && reaper_pending() == 0),
        "left behind: children {:?}, reaper still waiting for {}",
        common::children(),
        reaper_pending()
    );
    assert_eq!(common::open_fds(), fds, "fds left open");
    eprintln!("{cancelled} cancelled, {finished} finished");
}
