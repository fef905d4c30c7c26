//! With the `timeline` feature, a spawn records when each of its stages ended, in order on
//! one clock: the caller's steps, the child's (one mark per step of its mount plan), and the
//! wait's; and a spawn reports only its own stages, never a mark left by an earlier one.
//! (Built and run only with the feature: `scripts/test.sh` runs it so.)
mod common;
use sandbox_core::{Namespace, Rootfs, Sandbox};
use std::time::Duration;

async fn marks_of(sandbox: Sandbox) -> Vec<(String, Duration)> {
    let mut child = sandbox.command("/bin/true").spawn().await.unwrap();
    assert!(child.wait().await.unwrap().success());
    child
        .timeline()
        .marks()
        .into_iter()
        .map(|(s, d)| (s.to_string(), d))
        .collect()
}

fn at(marks: &[(String, Duration)], stage: &str) -> Duration {
    marks
        .iter()
        .find(|(s, _)| s == stage)
        .unwrap_or_else(|| panic!("no mark {stage:?} in {marks:#?}"))
        .1
}

#[tokio::test]
async fn a_spawn_marks_its_stages_in_order() {
    common::require_root();
    let marks = marks_of(Sandbox::new().rootfs(Rootfs::host_readonly())).await;
    // Sorted by time, every stage once.
    assert!(marks.windows(2).all(|w| w[0].1 <= w[1].1), "{marks:#?}");
    let order = [
        "caller: plan prepared",
        "child: started",
        "child: GO received",
        "child: namespaces entered, ids set",
        "child: mount proc on /proc",
        "child: pivot_root into the new root",
        "child: seccomp loaded, execve",
        "caller: executed (end of file on the sync channel)",
        "wait: ended and reaped",
        "wait: outcome read",
    ];
    for w in order.windows(2) {
        assert!(
            at(&marks, w[0]) <= at(&marks, w[1]),
            "{} before {}",
            w[0],
            w[1]
        );
    }
    // The caller released the child: GO was sent before the child saw it.
    assert!(
        at(&marks, "caller: GO sent")
            <= at(&marks, "child: GO received") + Duration::from_millis(1)
    );
    // Every step of the mount plan has its mark, before the pivot.
    let pivot = at(&marks, "child: pivot_root into the new root");
    let mounts = marks
        .iter()
        .filter(|(s, _)| s.starts_with("child: mount ") || s.starts_with("child: bind "))
        .collect::<Vec<_>>();
    assert!(mounts.len() >= 5, "{marks:#?}");
    assert!(mounts.iter().all(|(_, d)| *d <= pivot), "{marks:#?}");
}

#[tokio::test]
async fn a_spawn_reports_no_mark_of_an_earlier_one() {
    common::require_root();
    // A spawn whose child waits for GO, then spawns whose child does not (no user namespace
    // of its own, so no id maps to wait for): their stacks and shared pages come from the
    // same pool, and a GO mark would be the earlier spawn's.
    let first = marks_of(Sandbox::new()).await;
    at(&first, "child: GO received");
    for _ in 0..3 {
        let marks = marks_of(Sandbox::new().share(Namespace::User)).await;
        at(&marks, "child: started");
        assert!(
            !marks.iter().any(|(s, _)| s == "child: GO received"),
            "{marks:#?}"
        );
        // Nothing from before this spawn began.
        let prepared = at(&marks, "caller: plan prepared");
        assert!(
            marks
                .iter()
                .all(|(s, d)| s.starts_with("caller: ") || *d >= prepared),
            "{marks:#?}"
        );
    }
}
