//! What a dead process of the library left in the cgroup parent (a process killed by
//! SIGKILL leaves its spare cgroups, and the ones it had not removed yet) is swept by the
//! next process that spawns a sandbox with limits there; a live process's cgroups are not
//! touched. Checked from the host, in the cgroup v1 hierarchies. (One test in its own
//! binary: the parent is swept once per process, on its first use.)
mod common;
use common::cgroups::{default_parent, run_true};
use sandbox_core::Limits;
use std::path::PathBuf;
use std::time::Duration;

const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpuacct"];

/// What the test made on the host — a running process, cgroups named after it and after a
/// dead one, parents that did not exist — removed when it ends, passed or failed.
struct Made {
    live: std::process::Child,
    dirs: Vec<PathBuf>,
    parents: Vec<PathBuf>,
}

impl Drop for Made {
    fn drop(&mut self) {
        let _ = self.live.kill();
        let _ = self.live.wait();
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
        // A parent this test made goes once the library's spares in it have idled out.
        for p in &self.parents {
            common::eventually(Duration::from_secs(10), || {
                std::fs::remove_dir(p).is_ok() || !p.exists()
            });
        }
    }
}

#[tokio::test]
async fn a_dead_processs_leftovers_are_swept_a_live_ones_kept() {
    common::require_root();
    // A process that has ended, and one that runs: their pids name the cgroups.
    let mut dead = std::process::Command::new("/bin/true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let live = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let live_pid = live.id();
    let mut made = Made {
        live,
        dirs: Vec::new(),
        parents: Vec::new(),
    };
    let (mut dead_dirs, mut live_dirs) = (Vec::new(), Vec::new());
    for c in CONTROLLERS {
        let p = default_parent(c);
        if !p.exists() {
            std::fs::create_dir_all(&p).unwrap();
            made.parents.push(p.clone());
        }
        for (pid, dirs) in [(dead_pid, &mut dead_dirs), (live_pid, &mut live_dirs)] {
            let d = p.join(format!("sbx-{pid}-0"));
            std::fs::create_dir(&d).unwrap();
            made.dirs.push(d.clone());
            dirs.push(d);
        }
    }
    run_true(Limits::new().memory(256 << 20).pids(64)).await;
    assert!(
        common::eventually(Duration::from_secs(5), || dead_dirs
            .iter()
            .all(|d| !d.exists())),
        "left: {dead_dirs:?}"
    );
    assert!(live_dirs.iter().all(|d| d.is_dir()), "{live_dirs:?}");
    drop(made);
    // The library's own parent goes with its last cgroup, once its spares have idled out.
    for c in CONTROLLERS {
        let p = default_parent(c);
        assert!(
            common::eventually(Duration::from_secs(10), || !p.exists()),
            "{} is left",
            p.display()
        );
    }
}
