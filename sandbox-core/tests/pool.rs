//! The warm pool: sandboxes made ahead (namespaces, root, cgroup, hardening, the init
//! waiting), each used once. Checked from the host where it can be: the inits the pool
//! holds are this process's children, their namespaces and cgroups are visible here.
//! The tests take one lock: they count this process's children and cgroups.

mod common;

use common::{children, eventually, status_field};
use sandbox_core::test_hooks::reaper_pending;
use sandbox_core::{
    Command, Ending, Error, Limits, Namespace, Pool, Rootfs, Sandbox, Stage, Stdio,
};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sandbox() -> Sandbox {
    Sandbox::new()
        .hostname("pooled")
        .rootfs(Rootfs::host_readonly())
}

/// This process's children that are a sandbox's init (the pool's waiting sandboxes, and
/// any sandbox still running).
fn inits() -> Vec<u32> {
    children()
        .into_iter()
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "sandbox-init")
        })
        .collect()
}

/// The inits left once every sandbox dropped before has been reaped (an earlier test's).
fn settle() -> Vec<u32> {
    assert!(eventually(Duration::from_secs(10), || reaper_pending() == 0));
    inits()
}

async fn sh(pool: &Pool, script: &str) -> (Ending, String) {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(script);
    let out = pool.output(&mut cmd).await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.ending, text)
}

async fn wait_ready(pool: &Pool, n: usize) {
    for _ in 0..500 {
        if pool.stats().ready == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the pool never had {n} ready: {:?}", pool.stats());
}

#[tokio::test]
async fn a_pooled_program_runs_in_a_sandbox_of_the_pools_description() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let pool = Pool::new(sandbox(), 2).await.unwrap();
    // The command's own description (a default sandbox, hostname "sandbox") is ignored.
    let (ending, text) = sh(
        &pool,
        "hostname; echo $$; id -u; grep NSpid /proc/self/status",
    )
    .await;
    assert_eq!(ending, Ending::Exited(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "pooled", "{text}");
    // PID 1 is the init, the program its first child.
    assert_eq!(lines[1], "2", "{text}");
    assert_eq!(lines[2], "0", "{text}");
    // Seen from the host: a waiting sandbox's init lives in namespaces of its own.
    wait_ready(&pool, 2).await;
    let own = sandbox_core::NamespaceIds::of_self().unwrap();
    for pid in inits() {
        let theirs = sandbox_core::NamespaceIds::of_pid(pid).unwrap();
        for ns in [
            Namespace::Pid,
            Namespace::Mount,
            Namespace::User,
            Namespace::Net,
        ] {
            assert_ne!(own.get(ns), theirs.get(ns), "{ns} of init {pid}");
        }
        assert_eq!(
            status_field(pid, "NSpid")
                .unwrap()
                .last()
                .map(String::as_str),
            Some("1")
        );
    }
    assert_eq!(pool.stats().hits, 1);
}

#[tokio::test]
async fn each_take_gets_a_sandbox_of_its_own() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let pool = Pool::new(sandbox(), 2).await.unwrap();
    wait_ready(&pool, 2).await;
    // Two programs at once: different sandboxes (PID, mount, IPC, network namespaces).
    let mut a = pool
        .spawn(Command::new("/bin/sleep").arg("10"))
        .await
        .unwrap();
    let mut b = pool
        .spawn(Command::new("/bin/sleep").arg("10"))
        .await
        .unwrap();
    let (ia, ib) = (a.namespace_ids().unwrap(), b.namespace_ids().unwrap());
    for ns in [
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Ipc,
        Namespace::Net,
    ] {
        assert_ne!(ia.get(ns), ib.get(ns), "{ns}");
    }
    a.kill().await.unwrap();
    b.kill().await.unwrap();
    // What one run leaves in its writable places, the next does not see.
    let (e, t) = sh(
        &pool,
        "echo x > /tmp/left; echo y > /dev/shm/left; ipcmk -M 4096 >/dev/null; ipcs -m | grep -c 0x",
    )
    .await;
    assert_eq!((e, t.trim()), (Ending::Exited(0), "1"), "{t}");
    let (e, t) = sh(
        &pool,
        "ls /tmp/left /dev/shm/left 2>&1 | grep -c 'No such'; ipcs -m | grep -c 0x",
    )
    .await;
    assert_eq!(e, Ending::Exited(1), "{t}");
    assert_eq!(t.split_whitespace().collect::<Vec<_>>(), ["2", "0"], "{t}");
    assert_eq!(pool.stats().hits + pool.stats().misses, 4);
}

#[tokio::test]
async fn stdio_environment_working_directory_and_endings() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let pool = Pool::new(sandbox(), 1).await.unwrap();
    let mut cmd = Command::new("/bin/cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = pool.spawn(&cmd).await.unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"through the pool").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout, b"through the pool");
    assert!(out.status.success());

    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("echo $A,$HOSTNAME,$HOME; pwd; echo err >&2; exit 3")
        .env("A", "1")
        .current_dir("/tmp");
    let out = pool.output(&mut cmd).await.unwrap();
    assert_eq!(out.stdout, b"1,pooled,/root\n/tmp\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.ending, Ending::Exited(3));

    let mut cmd = Command::new("/usr/bin/env");
    cmd.env_clear().env("ONLY", "me");
    let out = pool.output(&mut cmd).await.unwrap();
    assert_eq!(out.stdout, b"ONLY=me\n");

    let mut child = pool
        .spawn(Command::new("/bin/sleep").arg("30"))
        .await
        .unwrap();
    child.kill().await.unwrap();
    assert_eq!(
        child.wait().await.unwrap().ending,
        Ending::Signaled(libc::SIGKILL)
    );
    let mut child = pool
        .spawn(Command::new("/bin/sleep").arg("30"))
        .await
        .unwrap();
    child.signal(libc::SIGTERM).unwrap();
    assert_eq!(
        child.wait().await.unwrap().ending,
        Ending::Signaled(libc::SIGTERM)
    );
}

#[tokio::test]
async fn bad_requests_are_typed_errors_and_the_pool_goes_on() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let before = settle();
    let pool = Pool::new(sandbox(), 2).await.unwrap();
    match pool.spawn(&Command::new("/no/such/program")).await {
        Err(Error::Setup {
            stage: Stage::Exec,
            what: Some(w),
            errno,
        }) => {
            assert_eq!(w, "/no/such/program");
            assert_eq!(errno.0, libc::ENOENT);
        }
        other => panic!("{other:?}"),
    }
    let mut cmd = Command::new("/bin/true");
    cmd.current_dir("/no/such/dir");
    match pool.spawn(&cmd).await {
        Err(Error::Setup {
            stage: Stage::Chdir,
            what: Some(w),
            ..
        }) => assert_eq!(w, "/no/such/dir"),
        other => panic!("{other:?}"),
    }
    // A command refused before the take wastes no sandbox.
    let taken = pool.stats().hits + pool.stats().misses;
    assert!(matches!(
        pool.spawn(&Command::new("bin/true")).await,
        Err(Error::InvalidProgram { .. })
    ));
    assert_eq!(pool.stats().hits + pool.stats().misses, taken);
    let mut cmd = Command::new("/bin/true");
    cmd.stdout(Stdio::pty());
    let e = pool.spawn(&cmd).await.unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("pseudo-terminal")),
        "{e}"
    );
    let mut cmd = Command::new("/bin/true");
    cmd.pass_fd(5, std::fs::File::open("/dev/null").unwrap());
    let e = pool.spawn(&cmd).await.unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("pass_fd")),
        "{e}"
    );
    let mut cmd = Command::new("/bin/echo");
    cmd.arg("a\0b");
    assert!(matches!(pool.spawn(&cmd).await, Err(Error::Nul { .. })));
    // Refused the same way whether a sandbox was ready or not (a miss spawns cold).
    drop(pool.spawn(&Command::new("/bin/true")).await.unwrap());
    drop(pool.spawn(&Command::new("/bin/true")).await.unwrap());
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::pty());
    assert!(matches!(pool.spawn(&cmd).await, Err(Error::Unsupported(_))));
    // The pool still serves, and the sandboxes the failed starts took are gone.
    let (e, t) = sh(&pool, "echo fine").await;
    assert_eq!((e, t.as_str()), (Ending::Exited(0), "fine\n"));
    wait_ready(&pool, 2).await;
    assert!(
        eventually(Duration::from_secs(5), || inits().len() == before.len() + 2),
        "{:?}",
        inits()
    );
}

#[tokio::test]
async fn descriptions_that_cannot_be_pooled_are_refused_up_front() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let before = settle();
    assert!(matches!(
        Pool::new(sandbox(), 0).await,
        Err(Error::Invalid {
            what: "pool size",
            ..
        })
    ));
    let e = Pool::new(sandbox().init(false), 1).await.unwrap_err();
    assert!(
        matches!(&e, Error::Conflict(m) if m.contains("built-in init")),
        "{e}"
    );
    let e = Pool::new(Sandbox::new().rootfs(Rootfs::dir("/no/such/root")), 1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/no/such/root"), "{e}");
    let e = Pool::new(sandbox().limits(Limits::new().open_files(8)), 1)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e}");
    assert!(eventually(Duration::from_secs(5), || reaper_pending() == 0));
    assert_eq!(inits(), before);
    // At the lowest limit allowed, the init still takes the program's descriptors.
    let pool = Pool::new(sandbox().limits(Limits::new().open_files(16)), 1)
        .await
        .unwrap();
    let (e, t) = sh(&pool, "echo fits").await;
    assert_eq!((e, t.as_str()), (Ending::Exited(0), "fits\n"));
    assert_eq!(pool.stats().hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_take_at_once() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let pool = Pool::new(sandbox(), 3).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c").arg(format!("echo {i} $$"));
            let out = pool.output(&mut cmd).await.unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), format!("{i} 2\n"));
    }
    let s = pool.stats();
    assert_eq!(s.hits + s.misses, 12, "{s:?}");
    assert!(s.hits >= 1, "{s:?}");
    wait_ready(&pool, 3).await;
}

#[tokio::test]
async fn it_refills_shrinks_when_idle_and_wakes_again() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let before = settle().len();
    let pool = Pool::new(sandbox(), 2)
        .await
        .unwrap()
        .idle_timeout(Duration::from_millis(700));
    wait_ready(&pool, 2).await;
    assert_eq!(inits().len(), before + 2);
    assert!(sh(&pool, "true").await.0 == Ending::Exited(0));
    wait_ready(&pool, 2).await;
    let s = pool.stats();
    assert!(s.made >= 3 && s.hits == 1, "{s:?}");
    // Idle: every waiting sandbox is let go (killed and reaped).
    wait_ready(&pool, 0).await;
    assert!(pool.stats().discarded >= 2, "{:?}", pool.stats());
    assert!(
        eventually(Duration::from_secs(5), || inits().len() == before),
        "{:?}",
        inits()
    );
    // The next take spawns cold (a miss) and the pool fills again.
    assert!(sh(&pool, "true").await.0 == Ending::Exited(0));
    assert_eq!(pool.stats().misses, 1);
    wait_ready(&pool, 2).await;
}

#[tokio::test]
async fn limits_hold_and_wall_time_counts_from_the_take() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let limits = Limits::new()
        .memory(64 << 20)
        .pids(16)
        .wall_time(Duration::from_millis(600));
    let pool = Pool::new(sandbox().limits(limits), 1).await.unwrap();
    wait_ready(&pool, 1).await;
    // Waiting in the pool does not count against the run's wall time.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut cmd = Command::new("/bin/sleep");
    cmd.arg("0.2");
    let out = pool.output(&mut cmd).await.unwrap();
    assert_eq!(out.status.ending, Ending::Exited(0));
    assert!(out.status.peak_memory.is_some(), "{:?}", out.status);
    let mut cmd = Command::new("/bin/sleep");
    cmd.arg("5");
    let out = pool.output(&mut cmd).await.unwrap();
    assert_eq!(out.status.ending, Ending::WallTimeExceeded);
    // The PIDs limit holds: 30 sleepers cannot all start (16 processes at most).
    let (e, t) = sh(
        &pool,
        "i=0; while [ $i -lt 30 ]; do sleep 2 & i=$((i+1)); done; echo started $i",
    )
    .await;
    assert_ne!(e, Ending::Exited(0), "{t}");
    assert!(t.to_lowercase().contains("fork"), "{e:?} {t}");
    assert!(!t.contains("started 30"), "{t}");
}

#[tokio::test]
async fn dropping_the_pool_leaves_nothing_behind() {
    common::require_root();
    let _one = ONE_AT_A_TIME.lock().await;
    let before = settle();
    let pool = Pool::new(sandbox().limits(Limits::new().memory(64 << 20).pids(32)), 3)
        .await
        .unwrap();
    wait_ready(&pool, 3).await;
    let held: Vec<u32> = inits()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(held.len(), 3, "{held:?}");
    // Each waiting sandbox sits in a cgroup of its own.
    for pid in &held {
        let cg = common::cgroups::v1_cgroup_of(&pid.to_string(), "memory");
        assert!(cg.to_string_lossy().contains("sbx-"), "{}", cg.display());
    }
    let fds_before = common::open_fds().len();
    drop(pool);
    assert!(
        eventually(Duration::from_secs(10), || {
            reaper_pending() == 0 && held.iter().all(|p| common::state(*p).is_none())
        }),
        "still there: {:?}",
        held.iter()
            .filter(|p| common::state(**p).is_some())
            .collect::<Vec<_>>()
    );
    assert_eq!(inits(), before);
    assert!(
        eventually(Duration::from_secs(10), || {
            common::cgroups::sandboxes_cgroups().is_empty()
        }),
        "{:?}",
        common::cgroups::sandboxes_cgroups()
    );
    assert!(
        common::open_fds().len() < fds_before,
        "the pool's sockets are closed"
    );
}

mod reused {
    use super::*;

    /// A reused pool's sandbox is the same one run after run: its init's pid.
    async fn init_of(pool: &Pool, cmd: &mut Command) -> (u32, sandbox_core::Output) {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = pool.spawn(cmd).await.unwrap();
        let pid = child.id().unwrap();
        (pid, child.wait_with_output().await.unwrap())
    }

    #[tokio::test]
    async fn one_sandbox_runs_program_after_program_and_nothing_carries_over() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let pool = Pool::reused(sandbox().limits(Limits::new().memory(64 << 20)), 1)
            .await
            .unwrap();
        // The first run leaves everything it can behind: files in every writable place,
        // a changed mode, timestamps set on the places and a kept link, extended
        // attributes and a default ACL, SysV IPC of each kind, processes (one in a session
        // of its own), a listening socket.
        // Before any run changes them: the places' and a kept link's access and change
        // times.
        let mut zeroth = Command::new("/bin/sh");
        zeroth
            .arg("-c")
            .arg("stat -c '%X %Y' /tmp /dev/shm /dev/stdout | tr '\\n' ' '");
        let (_, out) = init_of(&pool, &mut zeroth).await;
        let times = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !times.contains("1111") && !times.contains("2222"),
            "{times}"
        );
        let mut first = Command::new("/bin/sh");
        first.arg("-c").arg(
            "echo x > /tmp/f; mkdir -p /tmp/d/e; echo y > /tmp/d/e/g; chmod 000 /tmp/d; \
             echo z > /dev/shm/sem.left; echo w > /run/r; echo v > /root/.hist; \
             touch /dev/planted; chmod 700 /tmp; \
             touch -a -d @1111 /tmp /dev/shm && touch -m -d @2222 /tmp /dev/shm && \
             touch -h -a -d @1111 /dev/stdout && touch -h -m -d @2222 /dev/stdout && \
             python3 -c 'import os,struct; os.setxattr(\"/tmp\", \"user.left\", b\"data\"); \
               os.setxattr(\"/tmp\", \"system.posix_acl_default\", struct.pack(\"<I\", 2) + \
               b\"\".join(struct.pack(\"<HHI\", t, p, 0xffffffff) for t, p in ((1, 7), (4, 0), (0x20, 0))))' && \
             ipcmk -M 4096 >/dev/null; ipcmk -S 2 >/dev/null; ipcmk -Q >/dev/null; \
             (setsid sleep 1000 &); sleep 1000 & \
             python3 -c 'import socket,os; s=socket.socket(socket.AF_UNIX); s.bind(\"\\0left\"); s.listen(); os.fork() or __import__(\"time\").sleep(1000)' & \
             sleep 0.3; ipcs | grep -c 0x; export LEFT=1; echo done",
        );
        let (pid1, out) = init_of(&pool, &mut first).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{:?} {text} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text, "3\ndone\n");
        // The next run: the same sandbox (the same init), and none of it.
        // The times as before the first run (read first: listing a place sets its atime).
        let (pid, out) = init_of(&pool, &mut zeroth).await;
        assert_eq!(pid1, pid, "the same sandbox");
        assert_eq!(String::from_utf8_lossy(&out.stdout), times, "timestamps");
        let mut second = Command::new("/bin/sh");
        second.arg("-c").arg(
            "ls -A /tmp /dev/shm /run /root | tr '\\n' ' '; echo; stat -c %a /tmp; \
             ls /dev/planted 2>&1 | grep -c 'No such'; ipcs | grep -c 0x; \
             ps -e -o comm= | grep -c -E 'sleep|python'; \
             grep -c left /proc/net/unix; echo ${LEFT:-unset}; \
             python3 -c 'import os; print(os.listxattr(\"/tmp\"))'",
        );
        let (pid2, out) = init_of(&pool, &mut second).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(pid1, pid2, "the same sandbox");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0]
                .split_whitespace()
                .filter(|w| !w.ends_with(':'))
                .count(),
            0,
            "{text}"
        );
        assert_eq!(lines[1], "1777", "{text}");
        assert_eq!(lines[2], "1", "{text}");
        assert_eq!(lines[3], "0", "{text}");
        // None of the first run's processes.
        assert_eq!(lines[4], "0", "{text}");
        assert_eq!(lines[5], "0", "{text}");
        assert_eq!(lines[6], "unset", "{text}");
        assert_eq!(lines[7], "[]", "extended attributes: {text}");
        let s = pool.stats();
        assert_eq!((s.hits, s.misses, s.made), (4, 0, 1), "{s:?}");
        // The sandbox's own /dev entries are still there.
        let (_, out) = sh(
            &pool,
            "ls /dev/null /dev/zero /dev/fd >/dev/null && echo ok",
        )
        .await;
        assert_eq!(out, "ok\n");
        // POSIX message queues cannot be made (they could not be reset).
        let (e, out) = sh(
            &pool,
            "python3 -c 'import ctypes; l=ctypes.CDLL(None, use_errno=True); \
             print(l.mq_open(b\"/q\", 0o100|2, 0o600, None), ctypes.get_errno())'",
        )
        .await;
        assert_eq!((e, out.as_str()), (Ending::Exited(0), "-1 1\n"));
    }

    #[tokio::test]
    async fn a_runs_end_is_reported_before_the_reset() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let pool = Pool::reused(sandbox(), 1).await.unwrap();
        // Ten thousand files: emptying /tmp takes the init a while after the run.
        let mut many = Command::new("/bin/sh");
        many.arg("-c")
            .arg("mkdir /tmp/many && cd /tmp/many && seq 10000 | xargs touch");
        let (init, out) = init_of(&pool, &mut many).await;
        assert!(out.status.success(), "{:?}", out.status);
        // Seen from the host as the wait returns: the files are still there.
        let left = std::fs::read_dir(format!("/proc/{init}/root/tmp/many"))
            .map_or_else(|e| panic!("{e}"), |d| d.count());
        assert!(left > 0, "the run's end came after the reset");
        // Lent again only once the reset is over: empty. (With none ready, a take waits
        // a little for one being reset: the pool-of-one tests above take back to back.)
        wait_ready(&pool, 1).await;
        let (e, out) = sh(&pool, "ls -A /tmp | wc -l").await;
        assert_eq!((e, out.as_str()), (Ending::Exited(0), "0\n"));
        let s = pool.stats();
        assert_eq!((s.hits, s.misses, s.made), (2, 0, 1), "{s:?}");
    }

    #[tokio::test]
    async fn usage_and_limits_are_per_run() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let limits = Limits::new()
            .memory(64 << 20)
            .cpu_time(Duration::from_millis(500))
            .wall_time(Duration::from_secs(3));
        let pool = Pool::reused(sandbox().limits(limits), 1).await.unwrap();
        // A CPU-bound run, then an idle one: the second's CPU time is its own.
        let (e, _) = sh(&pool, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done").await;
        assert_eq!(e, Ending::Exited(0));
        let before = pool.stats();
        let out = pool.output(&mut Command::new("/bin/true")).await.unwrap();
        // The same sandbox again: a CPU-time limit (RLIMIT_CPU, which the init has too)
        // does not retire it.
        let after = pool.stats();
        assert_eq!(
            (after.made, after.hits),
            (before.made, before.hits + 1),
            "{after:?}"
        );
        let cpu = out.status.cpu_user.unwrap() + out.status.cpu_system.unwrap();
        assert!(cpu < Duration::from_millis(50), "{:?}", out.status);
        assert!(
            out.status.peak_memory.is_some_and(|p| p < 16 << 20),
            "{:?}",
            out.status
        );
        // Over the CPU time: killed, and the sandbox goes with it.
        let made = pool.stats().made;
        let (e, _) = sh(&pool, "while :; do :; done").await;
        assert_eq!(e, Ending::CpuTimeExceeded);
        wait_ready(&pool, 1).await;
        assert_eq!(pool.stats().made, made + 1, "{:?}", pool.stats());
        // A run within the limits in the new one.
        let (e, t) = sh(&pool, "echo fine").await;
        assert_eq!((e, t.as_str()), (Ending::Exited(0), "fine\n"));
    }

    #[tokio::test]
    async fn killed_dropped_or_failed_runs_take_their_sandbox_with_them() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let before = settle();
        let pool = Pool::reused(sandbox(), 1).await.unwrap();
        let mut child = pool
            .spawn(Command::new("/bin/sleep").arg("30"))
            .await
            .unwrap();
        let first = child.id().unwrap();
        child.kill().await.unwrap();
        assert_eq!(
            child.wait().await.unwrap().ending,
            Ending::Signaled(libc::SIGKILL)
        );
        wait_ready(&pool, 1).await;
        let child = pool
            .spawn(Command::new("/bin/sleep").arg("30"))
            .await
            .unwrap();
        let second = child.id().unwrap();
        assert_ne!(first, second);
        drop(child);
        assert!(pool
            .spawn(&Command::new("/no/such"))
            .await
            .is_err_and(|e| matches!(
                e,
                Error::Setup {
                    stage: Stage::Exec,
                    ..
                }
            )));
        wait_ready(&pool, 1).await;
        assert!(eventually(Duration::from_secs(5), || {
            common::state(first).is_none() && common::state(second).is_none()
        }));
        // A signal the program gets is its own; one sent between runs is not the next's.
        let mut child = pool
            .spawn(Command::new("/bin/sleep").arg("30"))
            .await
            .unwrap();
        child.signal(libc::SIGTERM).unwrap();
        assert_eq!(
            child.wait().await.unwrap().ending,
            Ending::Signaled(libc::SIGTERM)
        );
        let (e, t) = sh(&pool, "sleep 0.2; echo survived").await;
        assert_eq!((e, t.as_str()), (Ending::Exited(0), "survived\n"));
        assert!(child.signal(libc::SIGTERM).is_err());
        // Exec into it, or keeping its namespaces, would reach later runs: refused.
        let child = pool
            .spawn(Command::new("/bin/sleep").arg("30"))
            .await
            .unwrap();
        assert!(matches!(
            child.exec(&Command::new("/bin/true")).await,
            Err(Error::Unsupported(_))
        ));
        drop(child);
        drop(pool);
        assert!(eventually(Duration::from_secs(10), || reaper_pending()
            == 0
            && inits() == before));
    }

    #[tokio::test]
    async fn descriptions_a_reset_cannot_clean_are_refused() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let before = settle();
        // (the description, whether it conflicts with the pool (else: unsupported by it),
        // what the error names)
        let cases = [
            (Sandbox::new(), false, "writable root"),
            (sandbox().share(Namespace::Pid), true, "pid namespace"),
            (
                sandbox().mount(sandbox_core::Mount::dir("/tmp/given")),
                false,
                "/tmp",
            ),
            (sandbox().share(Namespace::Ipc), true, "ipc namespace"),
            (
                sandbox().seccomp(sandbox_core::Seccomp::off()),
                false,
                "seccomp",
            ),
            (
                sandbox().mount(sandbox_core::Mount::file("/etc/x", "y")),
                false,
                "/etc/x",
            ),
            (
                sandbox().capability(sandbox_core::Capability::NetAdmin),
                false,
                "CAP_NET_ADMIN",
            ),
        ];
        for (description, conflict, names) in cases {
            let e = Pool::reused(description, 1).await.unwrap_err();
            let ok = match &e {
                Error::Conflict(m) => conflict && m.contains(names),
                Error::Unsupported(m) => !conflict && m.contains(names),
                _ => false,
            };
            assert!(ok, "{e} (wanted {names:?})");
        }
        assert!(eventually(Duration::from_secs(5), || reaper_pending() == 0));
        assert_eq!(inits(), before);
    }

    #[tokio::test]
    async fn a_run_that_tampers_with_what_stays_takes_its_sandbox_with_it() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let pool = Pool::reused(sandbox(), 1).await.unwrap();
        // Each run takes a ready sandbox (the one before, or the one made after it was let go).
        let pid_of_run = |script: &'static str| {
            let pool = pool.clone();
            async move {
                wait_ready(&pool, 1).await;
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(script);
                let (pid, out) = init_of(&pool, &mut cmd).await;
                (pid, String::from_utf8_lossy(&out.stdout).into_owned())
            }
        };
        // Harmless runs keep their sandbox.
        let (a, _) = pid_of_run("true").await;
        let (b, _) = pid_of_run("kill -s RTMIN+3 1; kill -s RTMIN+4 1; true").await;
        assert_eq!(a, b);
        // Signals queued on PID 1 by a run are gone for the next.
        let (c, out) = pid_of_run("grep -E '^(SigPnd|ShdPnd)' /proc/1/status").await;
        assert_eq!(b, c);
        assert!(
            out.lines().all(|l| l.ends_with("0000000000000000")),
            "{out}"
        );
        // Entries of /dev swapped or renamed: the sandbox is let go, the next is whole.
        let (d, _) =
            pid_of_run("mv /dev/stdout /dev/kept; ln -s /proc/self/fd/1 /dev/stdout").await;
        assert_eq!(c, d);
        let (e, out) =
            pid_of_run("readlink /dev/stdout; ls /dev/kept 2>&1 | grep -c 'No such'").await;
        assert_ne!(d, e, "a sandbox whose /dev a run changed is not reused");
        assert_eq!(out, "/proc/self/fd/1\n1\n");
        // The init's oom_score_adj raised (the next program would inherit it): let go.
        let (o, _) = pid_of_run("echo 500 > /proc/1/oom_score_adj").await;
        assert_eq!(e, o);
        let (p, out) = pid_of_run("cat /proc/1/oom_score_adj").await;
        assert_ne!(o, p);
        assert_eq!(out, "0\n");
        // A kept entry's owner or mode changed: let go (here the mode of /dev/pts's root).
        let (q, _) = pid_of_run("chmod 700 /dev/pts").await;
        assert_eq!(p, q);
        let (r, out) = pid_of_run("stat -c %a /dev/pts").await;
        assert_ne!(q, r);
        assert_eq!(out, "755\n");
        // The init's own limits lowered by a run: let go too.
        let (f, _) = pid_of_run("prlimit --pid 1 --nofile=64:64").await;
        assert_eq!(r, f);
        let (g, out) = pid_of_run("prlimit --pid 1 --nofile --noheadings --output SOFT").await;
        assert_ne!(f, g);
        assert_ne!(out.trim(), "64", "{out}");
        // A run signalled through its handle: let go as well.
        let mut child = pool
            .spawn(Command::new("/bin/sleep").arg("30"))
            .await
            .unwrap();
        let h = child.id().unwrap();
        child.signal(libc::SIGTERM).unwrap();
        child.wait().await.unwrap();
        let (i, _) = pid_of_run("true").await;
        assert_ne!(h, i);
        assert_eq!(pool.stats().misses, 0, "{:?}", pool.stats());
    }

    #[tokio::test]
    async fn the_keyring_is_refused_even_with_an_empty_filter() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let pool = Pool::reused(
            sandbox()
                .seccomp(sandbox_core::Seccomp::empty())
                .capability(sandbox_core::Capability::NetBindService),
            1,
        )
        .await
        .unwrap();
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, create): the per-user
        // keyring outlives the run; the call fails with EPERM.
        let script = format!(
            "python3 -c 'import ctypes; l=ctypes.CDLL(None, use_errno=True); \
             print(l.syscall({}, 0, -4, 1), ctypes.get_errno())'",
            libc::SYS_keyctl
        );
        let (e, out) = sh(&pool, &script).await;
        assert_eq!((e, out.as_str()), (Ending::Exited(0), "-1 1\n"));
    }

    #[tokio::test]
    async fn the_callers_binds_are_never_emptied() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        // On a host tmpfs, so it looks like the sandbox's own places from inside.
        let out = tempfile::tempdir_in("/dev/shm").unwrap();
        // Writable by the sandbox's root, which is nobody to the host.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        // The host's /dev as well: its /dev/shm, a host tmpfs (which holds `out`), is a
        // writable tmpfs place below the bind's target, the caller's all the same.
        let name = out
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let pool = Pool::reused(
            sandbox()
                .mount(sandbox_core::Mount::bind(out.path(), "/out"))
                .mount(sandbox_core::Mount::bind("/dev", "/host-dev")),
            1,
        )
        .await
        .unwrap();
        let (e, _) = sh(&pool, "echo kept > /out/result").await;
        assert_eq!(e, Ending::Exited(0));
        let (e, t) = sh(
            &pool,
            &format!("cat /out/result /host-dev/shm/{name}/result"),
        )
        .await;
        assert_eq!((e, t.as_str()), (Ending::Exited(0), "kept\nkept\n"));
        assert_eq!(
            std::fs::read_to_string(out.path().join("result")).unwrap(),
            "kept\n"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_share_a_reused_pool() {
        common::require_root();
        let _one = ONE_AT_A_TIME.lock().await;
        let pool = Pool::reused(sandbox(), 2).await.unwrap();
        wait_ready(&pool, 2).await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c").arg(format!(
                    "test ! -e /tmp/mark && echo {i} > /tmp/mark && cat /tmp/mark"
                ));
                let out = pool.output(&mut cmd).await.unwrap();
                assert!(out.status.success(), "{out:?}");
                String::from_utf8(out.stdout).unwrap()
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), format!("{i}\n"));
        }
        let s = pool.stats();
        assert_eq!(s.hits + s.misses, 20, "{s:?}");
        assert!(s.made < 20, "sandboxes were reused: {s:?}");
        wait_ready(&pool, 2).await;
    }
}
