//! Two hundred sandboxes spawned at once from one runtime, each echoing its own input back
//! through piped stdin and stdout, all answer correctly, and leave no descriptor, process
//! or zombie behind.
mod common;
use sandbox_core::{Sandbox, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sandboxes_echo_their_input() {
    common::require_root();
    let sandbox = Sandbox::new().network(sandbox_core::Network::none());
    // Warm up: the spawner and reaper threads, tokio's own fds.
    sandbox.command("/bin/true").status().await.unwrap();
    let fds = common::open_fds();
    let kids = common::children();
    // SAFETY: PR_GET_DUMPABLE takes no argument.
    let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
    assert_eq!(dumpable, 1);

    let mut tasks = Vec::new();
    for i in 0..200 {
        let sandbox = sandbox.clone();
        tasks.push(tokio::spawn(async move {
            let mut child = sandbox
                .command("/bin/cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .await
                .unwrap();
            let msg = format!("sandbox {i} says hello\n").repeat(100);
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            let writer = tokio::spawn(async move {
                stdin.write_all(msg.as_bytes()).await.unwrap();
                msg
            });
            let mut got = String::new();
            stdout.read_to_string(&mut got).await.unwrap();
            let sent = writer.await.unwrap();
            let o = child.wait().await.unwrap();
            assert!(o.success());
            assert_eq!(got, sent);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(common::open_fds(), fds, "fds left open");
    // Each child shares our memory and changes ids, which flips the memory's dumpable flag;
    // each puts our setting back.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, dumpable);
    assert!(
        common::eventually(Duration::from_secs(5), || common::children() == kids),
        "processes left: {:?}",
        common::children()
    );
}
