//! Limits (issue 5, first part): wall time enforced by the parent on the whole sandbox,
//! output cut at the limit without the parent's memory growing, rlimits (CPU time, file
//! size, open files), typed errors for bad or not-yet-enforceable limits.
mod common;
use sandbox_core::{Ending, Error, Limits, Sandbox};
use std::time::{Duration, Instant};

/// The tests look at this process's children: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sh(limits: Limits, script: &str) -> sandbox_core::Command {
    let mut c = Sandbox::new().limits(limits).command("/bin/sh");
    c.arg("-c").arg(script);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_time_kills_the_whole_sandbox_on_time() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let limit = Duration::from_millis(300);
    // A busy loop, and a background process that would outlive it.
    let t = Instant::now();
    let out = sh(
        Limits::new().wall_time(limit),
        "sleep 1000 & while :; do :; done",
    )
    .output()
    .await
    .unwrap();
    let took = t.elapsed();
    assert_eq!(out.status.ending, Ending::WallTimeExceeded, "{out:?}");
    assert!(!out.status.success());
    assert!(
        out.status.wall_time >= limit && out.status.wall_time <= limit + Duration::from_millis(100),
        "ended after {:?}",
        out.status.wall_time
    );
    assert!(
        took <= limit + Duration::from_millis(200),
        "output() took {took:?}"
    );
    // Nothing of it is left: no process of ours remains.
    assert!(
        common::eventually(Duration::from_secs(5), || common::children().is_empty()),
        "{:?}",
        common::children()
    );
    // A run that ends in time is not touched.
    let out = sh(Limits::new().wall_time(Duration::from_secs(5)), "exit 3")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.ending, Ending::Exited(3));
}

fn rss_kib() -> u64 {
    common::status_field(std::process::id(), "VmRSS")
        .and_then(|v| v.first().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_cut_at_the_limit() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let limit = 1u64 << 20;
    // 1 GiB, if nothing stopped it.
    let out = sh(
        Limits::new()
            .output(limit)
            .wall_time(Duration::from_secs(30)),
        "head -c 1073741824 /dev/zero",
    )
    .output()
    .await
    .unwrap();
    assert_eq!(
        out.status.ending,
        Ending::OutputLimitExceeded,
        "{:?}",
        out.status
    );
    assert_eq!(out.stdout.len() as u64, limit);
    assert!(out.stderr.is_empty());
    assert!(
        rss_kib() < 64 * 1024,
        "the parent's RSS is {} KiB",
        rss_kib()
    );
    // Exactly at the limit is fine.
    let out = sh(Limits::new().output(4), "printf abcd")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.ending, Ending::Exited(0));
    assert_eq!(out.stdout, b"abcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlimits_reach_the_program() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let out = sh(
        Limits::new().open_files(64).file_size(4096),
        "ulimit -n; ulimit -c; dd if=/dev/zero of=/tmp/sbx-fsize-$$ bs=1024 count=8 2>&1; rm -f /tmp/sbx-fsize-$$",
    )
    .output()
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("64"), "{text}");
    assert_eq!(lines.next(), Some("0"), "core dumps are off: {text}");
    // dd is stopped at 4 KiB: SIGXFSZ (the shell reports it), or EFBIG where ignored.
    assert!(
        text.contains("File size limit exceeded") || text.contains("File too large"),
        "{text}"
    );
    // CPU time: a process that burns it is ended, and the run says why.
    let t = Instant::now();
    let out = sh(
        Limits::new().cpu_time(Duration::from_secs(1)),
        "exec sh -c 'while :; do :; done'",
    )
    .output()
    .await
    .unwrap();
    assert_eq!(
        out.status.ending,
        Ending::CpuTimeExceeded,
        "{:?}",
        out.status
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn bad_limits_are_typed_errors_before_spawning() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for l in [
        Limits::new().wall_time(Duration::ZERO),
        Limits::new().output(0),
        Limits::new().open_files(1 << 30),
    ] {
        let e = Sandbox::new()
            .limits(l.clone())
            .command("/bin/true")
            .status()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{l:?}: {e}");
    }
    let e = Sandbox::new()
        .limits(Limits::new().memory(256 << 20))
        .command("/bin/true")
        .status()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(common::children().is_empty());
}
