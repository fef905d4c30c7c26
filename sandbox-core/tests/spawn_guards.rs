//! A spawn cleans up after itself whenever it is cut short: a spawn future dropped after the
//! spawner answered, or while a failed spawn is being cleaned up, leaves nothing; the
//! caller's dumpable setting survives a failing id switch; and `try_wait` reports the
//! program's own status.
mod common;
use sandbox_core::test_hooks::reaper_pending;
use sandbox_core::{Ending, IdMap, Namespace, Sandbox};
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

fn settled(kids: &std::collections::BTreeSet<u32>) -> bool {
    common::eventually(Duration::from_secs(10), || {
        common::children() == *kids && reaper_pending() == 0
    })
}

/// The per-process checks (children, dumpable) of this file's tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_after_the_spawner_answered() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let sandbox = Sandbox::new().share(Namespace::User).init(false);
    sandbox.command("/bin/true").status().await.unwrap();
    let kids = common::children();
    for _ in 0..5 {
        let mut cmd = sandbox.command("/bin/sleep");
        cmd.arg("30");
        let mut fut = Box::pin(cmd.spawn());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
        // The spawner clones and answers meanwhile; nobody polls the future again.
        std::thread::sleep(Duration::from_millis(100));
        drop(fut);
    }
    assert!(settled(&kids), "left: {:?}", common::children());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_during_failing_and_relayed_spawns() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let plain = Sandbox::new().share(Namespace::User).init(false);
    // Joining a namespace and creating a PID namespace after it: the relayed path.
    let relayed = plain.clone().join(Namespace::Uts, "/proc/self/ns/uts");
    for sandbox in [plain, relayed] {
        let _ = sandbox.command("/no/such").status().await;
        let kids = common::children();
        for i in 0..300u64 {
            let program = if i % 2 == 0 { "/no/such" } else { "/bin/sleep" };
            let mut cmd = sandbox.command(program);
            cmd.arg("30");
            let limit = Duration::from_micros(100 + (i % 150) * 10);
            let _ = tokio::time::timeout(limit, async { cmd.spawn().await.map(drop) }).await;
        }
        if !settled(&kids) {
            let mut pidfds = Vec::new();
            for e in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
                let info = std::fs::read_to_string(e.path()).unwrap_or_default();
                if let Some(p) = info.lines().find(|l| l.starts_with("Pid:")) {
                    pidfds.push(format!("fd {:?} {p}", e.file_name()));
                }
            }
            panic!(
                "left: children {:?}, reaper pending {}, pidfds {pidfds:?}",
                common::children(),
                reaper_pending()
            );
        }
    }
}

fn dumpable() -> i32 {
    // SAFETY: PR_GET_DUMPABLE takes no argument.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_id_switch_leaves_the_caller_dumpable() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    assert_eq!(dumpable(), 1);
    // Nothing maps to 0 inside: setresgid(0) fails after the maps are written.
    let e = Sandbox::new()
        .uid_map(IdMap::new(1, 0x80000, 10))
        .gid_map(IdMap::new(0, 0x80000, 10))
        .command("/bin/true")
        .status()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("setuid 0"), "{e}");
    assert_eq!(dumpable(), 1, "caller left non-dumpable");
}

#[tokio::test(flavor = "current_thread")]
async fn try_wait_reports_the_programs_own_status() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut child = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg("kill -9 $$")
        .spawn()
        .await
        .unwrap();
    // Never yield to the reactor: only try_wait.
    let o = loop {
        if let Some(o) = child.try_wait().unwrap() {
            break o;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(o.ending, Ending::Signaled(libc::SIGKILL));
}
