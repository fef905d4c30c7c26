//! Limits hold and are reported: wall time is enforced by the parent on the whole sandbox
//! (whether anyone waits or not), CPU time counts every thread of every process, output is
//! cut at the limit without the parent's memory growing, memory and process-count limits
//! stop a hog and a fork bomb, rlimits (CPU time, file size, open files) reach the program,
//! a process exec'd into the sandbox is held by them too, no cgroup is left behind, the
//! cgroup v2 code works on a live mount; bad or not-yet-enforceable limits are typed
//! errors.
mod common;
use common::cgroups::{default_parent, sandboxes_cgroups};
use sandbox_core::{Ending, Error, Limits, Sandbox};
use std::time::{Duration, Instant};

/// The tests look at this process's children: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sh(limits: Limits, script: &str) -> sandbox_core::Command {
    let mut c = Sandbox::new().limits(limits).command("/bin/sh");
    c.arg("-c").arg(script);
    c
}

/// [`sh`] run to its end, its output collected.
async fn output(limits: Limits, script: &str) -> sandbox_core::Output {
    sh(limits, script).output().await.unwrap()
}

/// Asserts that the run of `out` ended as `want` (else the message shows how it ended).
fn assert_ended(out: &sandbox_core::Output, want: Ending) {
    assert_eq!(
        out.status.ending,
        want,
        "{:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The error of a spawn of `/bin/true` under `limits`, which must be refused.
async fn refused(limits: Limits) -> Error {
    Sandbox::new()
        .limits(limits)
        .command("/bin/true")
        .status()
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_time_kills_the_whole_sandbox_on_time() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let limit = Duration::from_millis(300);
    // A busy loop, and a background process that would outlive it.
    let t = Instant::now();
    let out = output(
        Limits::new().wall_time(limit),
        "sleep 1000 & while :; do :; done",
    )
    .await;
    let took = t.elapsed();
    assert_ended(&out, Ending::WallTimeExceeded);
    assert!(!out.status.success());
    // Ended at the deadline (within 100 ms of it), not when the busy loop or `sleep 1000`
    // would have.
    assert!(
        out.status.wall_time >= limit && out.status.wall_time <= limit + Duration::from_millis(100),
        "ended after {:?}",
        out.status.wall_time
    );
    // (The caller's own view includes collecting the output: looser.)
    assert!(
        took <= limit + Duration::from_secs(1),
        "output() took {took:?}"
    );
    // Nothing of it is left: no process of ours remains.
    assert!(
        common::eventually(Duration::from_secs(5), || common::children().is_empty()),
        "{:?}",
        common::children()
    );
    // A run that ends in time is not touched.
    let out = output(Limits::new().wall_time(Duration::from_secs(5)), "exit 3").await;
    assert_ended(&out, Ending::Exited(3));
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
    // (The test binary's other tests share this process: measure what this one adds.)
    let rss_before = rss_kib();
    // 1 GiB, if nothing stopped it.
    let out = output(
        Limits::new()
            .output(limit)
            .wall_time(Duration::from_secs(30)),
        "head -c 1073741824 /dev/zero",
    )
    .await;
    assert_ended(&out, Ending::OutputLimitExceeded);
    assert_eq!(out.stdout.len() as u64, limit);
    assert!(out.status.output_truncated);
    assert!(out.stderr.is_empty());
    let grew = rss_kib().saturating_sub(rss_before);
    assert!(grew < 64 * 1024, "the parent's RSS grew by {grew} KiB");
    // Exactly at the limit is fine.
    let out = output(Limits::new().output(4), "printf abcd").await;
    assert_ended(&out, Ending::Exited(0));
    assert!(!out.status.output_truncated);
    assert_eq!(out.stdout, b"abcd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rlimits_reach_the_program() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let out = output(
        Limits::new().open_files(64).file_size(4096),
        "ulimit -n; ulimit -c; dd if=/dev/zero of=/tmp/sbx-fsize-$$ bs=1024 count=8 2>&1; rm -f /tmp/sbx-fsize-$$",
    ).await;
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
    let out = output(
        Limits::new().cpu_time(Duration::from_secs(1)),
        "exec sh -c 'while :; do :; done'",
    )
    .await;
    assert_ended(&out, Ending::CpuTimeExceeded);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
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
        let e = refused(l.clone()).await;
        assert!(matches!(e, Error::Invalid { .. }), "{l:?}: {e}");
    }
    let e = refused(Limits::new().cpus(1.0).rlimits_only()).await;
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    // A named cgroup parent that does not exist, or is a file of the hierarchy.
    let e = refused(Limits::new().pids(10).cgroup_parent("sbx-no-such-parent")).await;
    assert!(matches!(e, Error::Cgroup { .. }), "{e}");
    assert!(e.to_string().contains("sbx-no-such-parent"), "{e}");
    let e = refused(Limits::new().pids(10).cgroup_parent("cgroup.procs/x")).await;
    assert!(matches!(e, Error::Cgroup { .. }), "{e}");
    assert!(e.to_string().contains("cgroup.procs/x"), "{e}");
    assert!(common::children().is_empty());
}

/// No sandbox's cgroup of ours is left under any controller (within `limit`: they are
/// removed in the background once their sandbox has ended); cgroups made ahead for the
/// next sandboxes do not count.
fn assert_no_cgroup_left(limit: Duration) {
    assert!(
        common::eventually(limit, || sandboxes_cgroups().is_empty()),
        "left: {:?}",
        sandboxes_cgroups()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_ends_out_of_memory_near_its_limit() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let limit = 64u64 << 20;
    let out = output(
        Limits::new()
            .memory(limit)
            .wall_time(Duration::from_secs(20)),
        "exec python3 -c 'x = []\nwhile True: x.append(bytearray(1 << 20))'",
    )
    .await;
    assert_ended(&out, Ending::OutOfMemory);
    let peak = out.status.peak_memory.unwrap();
    assert!(
        peak > limit * 8 / 10 && peak <= limit + (1 << 20),
        "peak {peak} for a limit of {limit}"
    );
    assert_no_cgroup_left(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_stops_at_the_pid_limit() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let before = std::fs::read_dir("/proc").unwrap().count();
    let out = output(
        Limits::new().pids(32).wall_time(Duration::from_secs(2)),
        "bomb() { bomb | bomb & }; bomb; sleep 5",
    )
    .await;
    assert!(
        matches!(
            out.status.ending,
            Ending::WallTimeExceeded | Ending::Exited(_)
        ),
        "{:?}",
        out.status
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fork")
            || String::from_utf8_lossy(&out.stderr).contains("Resource temporarily unavailable"),
        "the pid limit was hit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The host's process count is back where it was.
    assert!(
        common::eventually(Duration::from_secs(10), || {
            std::fs::read_dir("/proc").unwrap().count() <= before + 2
        }),
        "{} processes before, {} after",
        before,
        std::fs::read_dir("/proc").unwrap().count()
    );
    assert_no_cgroup_left(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_time_counts_every_thread_of_every_process() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    // Two busy processes: each alone stays under its own rlimit; together they pass the
    // sandbox's 1 s.
    let out = output(
        Limits::new()
            .cpu_time(Duration::from_secs(1))
            .wall_time(Duration::from_secs(20)),
        "(while :; do :; done) & (while :; do :; done) & wait",
    )
    .await;
    assert_ended(&out, Ending::CpuTimeExceeded);
    let used = out.status.cpu_user.unwrap() + out.status.cpu_system.unwrap();
    // Counted per process, the two would have spent 2 s together before either's limit.
    assert!(
        used >= Duration::from_secs(1) && used < Duration::from_millis(1500),
        "used {used:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cgroup_is_left_after_200_runs() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let limits = Limits::new().memory(128 << 20).pids(64);
    for i in 0..200u32 {
        let l = limits.clone().wall_time(Duration::from_millis(200));
        match i % 4 {
            // Exits.
            0 => {
                sh(l, "true").status().await.unwrap();
            }
            // Times out.
            1 => {
                sh(l, "sleep 10").status().await.unwrap();
            }
            // Killed.
            2 => {
                let mut c = sh(l, "sleep 10").spawn().await.unwrap();
                c.kill().await.unwrap();
            }
            // Dropped while running.
            _ => drop(sh(l, "sleep 10").spawn().await.unwrap()),
        }
    }
    assert_no_cgroup_left(Duration::from_secs(10));
    // Nor the parent directory the library made.
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        let p = default_parent(c);
        assert!(
            common::eventually(Duration::from_secs(5), || !p.exists()),
            "{} is left",
            p.display()
        );
    }
}

/// A process started in a running sandbox with `Child::exec` is inside the sandbox's
/// cgroup: its limits hold it, its CPU time counts, and it ends with the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_joins_the_sandboxs_cgroup() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let limits = Limits::new()
        .memory(64 << 20)
        .pids(16)
        .wall_time(Duration::from_secs(60));
    let (mut child, mut lines) =
        common::shell(&Sandbox::new().limits(limits), "echo up; read x || true").await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "up");
    let init = child.id().unwrap();
    let cgroup_of = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let theirs = cgroup_of(init);
    assert!(theirs.contains("/sandbox/"), "{theirs}");
    // A long-lived exec'd process: in the same cgroup as the sandbox (every hierarchy).
    let mut cmd = sandbox_core::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo spent; sleep 1000")
        .stdout(sandbox_core::Stdio::piped());
    let mut execd = tokio::time::timeout(Duration::from_secs(10), child.exec(&cmd))
        .await
        .expect("exec in time")
        .unwrap();
    let pid = execd.id().unwrap();
    assert_eq!(cgroup_of(pid), theirs, "the exec'd process's cgroups");
    // Its CPU time is the sandbox's.
    let mut out = tokio::io::BufReader::new(execd.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line),
    )
    .await
    .expect("the busy loop ends")
    .unwrap();
    assert_eq!(line, "spent\n");
    // Killing the sandbox ends it too, and the cgroup goes.
    child.start_kill().unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the sandbox ends")
        .unwrap();
    let cpu = outcome.cpu_user.unwrap() + outcome.cpu_system.unwrap();
    assert!(cpu >= Duration::from_millis(50), "cpu {cpu:?}: {outcome:?}");
    let e = tokio::time::timeout(Duration::from_secs(10), execd.wait())
        .await
        .expect("the exec'd process ends with its sandbox")
        .unwrap();
    assert_eq!(e.ending, Ending::Signaled(libc::SIGKILL));
    assert_no_cgroup_left(Duration::from_secs(5));
}

/// Wall and CPU time hold whether anyone waits or not: polled with `try_wait`, or dropped
/// without kill-on-drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limits_hold_without_a_waiter() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for (limits, script, want) in [
        (
            Limits::new().wall_time(Duration::from_millis(300)),
            "sleep 1000",
            Ending::WallTimeExceeded,
        ),
        (
            Limits::new().cpu_time(Duration::from_millis(300)),
            "while :; do :; done",
            Ending::CpuTimeExceeded,
        ),
    ] {
        let mut child = sh(limits.clone(), script).spawn().await.unwrap();
        let outcome = loop {
            if let Some(o) = child.try_wait().unwrap() {
                break o;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(outcome.ending, want, "{outcome:?}");
        // Dropped at once, and not killed on drop: the limit still ends it.
        let child = sh(limits, script)
            .kill_on_drop(false)
            .spawn()
            .await
            .unwrap();
        let pidfd = common::pidfd_open(child.id().unwrap());
        drop(child);
        assert!(
            common::pidfd_ended(&pidfd, Duration::from_secs(20)),
            "{want:?}: the dropped sandbox outlived its limit"
        );
    }
    assert_no_cgroup_left(Duration::from_secs(5));
}

/// The cgroup v2 code, live: this machine's controllers are all in v1 hierarchies, but its
/// controller-less cgroup2 mount (`/sys/fs/cgroup/unified`) accounts CPU time. A sandbox
/// with a CPU-time limit there is born in its v2 cgroup (`CLONE_INTO_CGROUP`), stopped at
/// the limit, and its cgroup removed; limits that need a controller the mount lacks are a
/// typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_v2_runs_live_on_the_unified_mount() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let unified = common::cgroups::unified();
    let limits = Limits::new()
        .cgroup_mount(unified)
        .cpu_time(Duration::from_millis(300));
    let mut child = sh(limits.clone(), "while :; do :; done")
        .spawn()
        .await
        .unwrap();
    let pid = child.id().unwrap();
    let line = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap()
        .to_string();
    let name = format!("sbx-{}-", std::process::id());
    assert!(
        line.starts_with("0::/sandbox/") && line.contains(&name),
        "{line}"
    );
    let dir = unified.join(line.trim_start_matches("0::/"));
    assert!(dir.is_dir());
    let outcome = child.wait().await.unwrap();
    assert_eq!(outcome.ending, Ending::CpuTimeExceeded, "{outcome:?}");
    let cpu = outcome.cpu_user.unwrap() + outcome.cpu_system.unwrap();
    assert!(cpu >= Duration::from_millis(300), "{cpu:?}");
    assert_eq!(outcome.peak_memory, None, "no memory controller, no peak");
    // Removed in the background once the sandbox has ended; the default parent goes with
    // the last cgroup in it, once the spares made for the next sandboxes have idled out.
    assert!(
        common::eventually(Duration::from_secs(5), || !dir.exists()),
        "{} is left",
        dir.display()
    );
    assert!(
        common::eventually(Duration::from_secs(10), || !unified
            .join("sandbox")
            .exists()),
        "the default parent is left"
    );
    // A memory limit needs the memory controller, which this mount lacks.
    match sh(limits.memory(64 << 20), "true").output().await {
        Err(Error::Unsupported(why)) => assert!(why.contains("memory"), "{why}"),
        other => panic!("{other:?}"),
    }
}
