//! A sandbox with limits takes a cgroup made ahead of it (in the background, after the
//! first such spawn) and its cgroup is removed in the background once it has ended; when
//! the process stops spawning, the spares go too and no cgroup of ours is left, nor the
//! library's parent directory; a tool that exits at once leaves nothing either. Checked from
//! the host, in the cgroup v1 hierarchies and on
//! a cgroup2 mount.
mod common;
use common::cgroups::{
    default_parent, our_cgroups, run_true, sandboxes_cgroups, unified, v1_cgroup_of,
};
use sandbox_core::test_hooks::{cgroup_pool_counts, cgroup_spares};
use sandbox_core::{Limits, Sandbox};
use std::time::Duration;

/// The tests count this process's cgroups: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn limits() -> Limits {
    Limits::new().memory(256 << 20).pids(64)
}

/// The memory cgroup of process `pid`, as the host sees it.
fn memory_cgroup_of(pid: u32) -> std::path::PathBuf {
    v1_cgroup_of(&pid.to_string(), "memory")
}

#[tokio::test]
async fn a_run_takes_a_cgroup_made_ahead() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    // The first run makes its own cgroup; spares are made for the next ones meanwhile.
    run_true(limits()).await;
    let real = |p: &std::path::Path| std::fs::canonicalize(p).unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || !cgroup_spares().is_empty()),
        "no spare was made"
    );
    let spares: Vec<_> = cgroup_spares().iter().map(|p| real(p)).collect();
    let (hits, _) = cgroup_pool_counts();
    let mut child = Sandbox::new()
        .limits(limits())
        .command("/bin/sleep")
        .arg("10")
        .spawn()
        .await
        .unwrap();
    // The host sees the sandbox in a cgroup that existed before it was spawned.
    let cg = real(&memory_cgroup_of(child.id().unwrap()));
    assert!(
        spares.contains(&cg),
        "{cg:?} is not one of the spares {spares:?}"
    );
    assert_eq!(cgroup_pool_counts().0, hits + 1);
    assert!(!cgroup_spares().iter().any(|p| real(p) == cg));
    child.kill().await.unwrap();
    // Its cgroup goes once it has ended (in the background).
    assert!(
        common::eventually(Duration::from_secs(5), || !cg.exists()),
        "{cg:?} is left"
    );
}

/// The same on cgroup v2 (this machine's controller-less cgroup2 mount: CPU time needs no
/// controller): the sandbox is cloned into a cgroup made before it was asked for.
#[tokio::test]
async fn a_run_takes_a_cgroup_made_ahead_on_cgroup_v2() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let unified = unified();
    let limits = Limits::new()
        .cgroup_mount(unified)
        .cpu_time(Duration::from_secs(10));
    run_true(limits.clone()).await;
    let in_unified = || -> Vec<std::path::PathBuf> {
        cgroup_spares()
            .into_iter()
            .filter(|p| p.starts_with(unified))
            .collect()
    };
    assert!(
        common::eventually(Duration::from_secs(5), || !in_unified().is_empty()),
        "no spare was made"
    );
    let spares = in_unified();
    let mut child = Sandbox::new()
        .limits(limits)
        .command("/bin/sleep")
        .arg("10")
        .spawn()
        .await
        .unwrap();
    let line = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id().unwrap()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap()
        .to_string();
    let cg = unified.join(line.trim_start_matches("0::/"));
    assert!(
        spares.contains(&cg),
        "{cg:?} is not one of the spares {spares:?}"
    );
    child.kill().await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || !cg.exists()),
        "{cg:?} is left"
    );
}

#[tokio::test]
async fn spares_and_the_parent_go_when_the_process_idles() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for _ in 0..5 {
        run_true(limits()).await;
    }
    assert!(
        common::eventually(Duration::from_secs(5), || sandboxes_cgroups().is_empty()),
        "sandboxes' cgroups left: {:?}",
        sandboxes_cgroups()
    );
    // Spares last while spawns go on, and go within a few seconds of the last.
    assert!(
        common::eventually(Duration::from_secs(10), || our_cgroups().is_empty()),
        "left: {:?}",
        our_cgroups()
    );
    assert!(cgroup_spares().is_empty());
    for c in ["memory", "pids", "cpuacct"] {
        let p = default_parent(c);
        assert!(
            common::eventually(Duration::from_secs(5), || !p.exists()),
            "{} is left",
            p.display()
        );
    }
}

/// A command-line tool that exits right after its sandbox (the `run` example, with limits)
/// leaves no cgroup behind: the removals still queued, and its spares, are done on its way
/// out.
#[test]
fn a_tool_that_exits_at_once_leaves_no_cgroup() {
    common::require_root();
    for _ in 0..3 {
        let out = std::process::Command::new(common::example("run"))
            .args(["--memory", "64M", "--pids", "16", "--", "/bin/true"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Not waited for: what it left is there now, or never.
    let left: Vec<String> = ["memory", "pids", "cpuacct"]
        .iter()
        .flat_map(|c| {
            std::fs::read_dir(default_parent(c))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
        })
        .filter(|n| {
            n.starts_with("sbx-") && !n.starts_with(&format!("sbx-{}-", std::process::id()))
        })
        .collect();
    assert!(left.is_empty(), "left by the tool: {left:?}");
}

/// The memory limit the host sees on process `pid`'s cgroup (`None`: unlimited).
fn memory_limit_of(pid: u32) -> Option<u64> {
    let text =
        std::fs::read_to_string(memory_cgroup_of(pid).join("memory.limit_in_bytes")).unwrap();
    let v: u64 = text.trim().parse().unwrap();
    // v1 shows "no limit" as the largest page-aligned number.
    (v < (1u64 << 60)).then_some(v)
}

async fn sleeper(limits: Limits) -> sandbox_core::Child {
    Sandbox::new()
        .limits(limits)
        .command("/bin/sleep")
        .arg("10")
        .spawn()
        .await
        .unwrap()
}

/// Spares hold the limits of their site's last sandbox; a sandbox asking for others (more
/// memory, or none at all, on the same hierarchies) never runs with those.
#[tokio::test]
async fn a_sandbox_never_gets_a_spares_other_limits() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for want in [Some(64u64 << 20), Some(128 << 20), None, Some(64 << 20)] {
        // Spares for the previous limits are ready by now.
        assert!(common::eventually(
            Duration::from_secs(5),
            || !cgroup_spares().is_empty() || want == Some(64 << 20)
        ));
        let limits = match want {
            Some(m) => Limits::new().memory(m).pids(16),
            None => Limits::new().pids(16),
        };
        let mut child = sleeper(limits).await;
        assert_eq!(memory_limit_of(child.id().unwrap()), want);
        child.kill().await.unwrap();
    }
}

/// A spare whose directories someone else removed is not used: another cgroup is made.
#[tokio::test]
async fn a_spare_removed_by_someone_else_is_not_used() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut first = sleeper(limits()).await;
    first.kill().await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || cgroup_spares().len() >= 2),
        "{:?}",
        cgroup_spares()
    );
    let removed = cgroup_spares();
    for d in &removed {
        std::fs::remove_dir(d).unwrap();
    }
    let mut child = sleeper(limits()).await;
    let cg = memory_cgroup_of(child.id().unwrap());
    assert!(cg.is_dir() && !removed.contains(&cg), "{cg:?}");
    child.kill().await.unwrap();
}

/// A child the process forks, exiting normally, leaves the parent's spares and sandboxes
/// alone (it inherits the exit handler, not the pool's thread).
#[tokio::test]
async fn a_forked_child_that_exits_touches_nothing_of_its_parent() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut child = sleeper(limits()).await;
    assert!(common::eventually(Duration::from_secs(5), || {
        !cgroup_spares().is_empty()
    }));
    let spares = cgroup_spares();
    let t = std::time::Instant::now();
    // SAFETY: the forked child only calls exit(3), which runs the atexit handlers under
    // test; the parent waits for it.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: the child's last call: exit(3) and its atexit handlers, nothing else.
            unsafe { libc::exit(0) }
        }
        pid => {
            assert!(pid > 0);
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(spares.iter().all(|d| d.is_dir()), "{spares:?}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sandbox was killed"
    );
    child.kill().await.unwrap();
}
