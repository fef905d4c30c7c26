//! This process's cgroups, as the host sees them (cgroup v1 hierarchies under
//! `/sys/fs/cgroup`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The cgroup of process `pid` (`"self"` for this one) in the v1 hierarchy of
/// `controller`, as the host sees it: `/sys/fs/cgroup/<controller>/<path>`.
pub fn v1_cgroup_of(pid: &str, controller: &str) -> PathBuf {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.trim_start_matches('/').to_string())
        })
        .unwrap_or_default();
    Path::new("/sys/fs/cgroup").join(controller).join(own)
}

/// The library's default parent in a v1 hierarchy: `sandbox` under this process's own
/// cgroup there.
pub fn default_parent(controller: &str) -> PathBuf {
    v1_cgroup_of("self", controller).join("sandbox")
}

/// This machine's cgroup2 mount beside its v1 hierarchies (a hybrid layout), which has no
/// controller but accounts CPU time.
pub fn unified() -> &'static Path {
    let unified = Path::new("/sys/fs/cgroup/unified");
    assert!(
        unified.join("cgroup.procs").exists(),
        "this test needs the cgroup2 mount of a hybrid layout at {}",
        unified.display()
    );
    unified
}

/// Our cgroup directories under every v1 controller, spares made ahead included.
pub fn our_cgroups() -> Vec<String> {
    let mut v = Vec::new();
    for c in ["memory", "pids", "cpu", "cpuacct"] {
        let d = default_parent(c);
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("sbx-{}-", std::process::id())) {
                    v.push(format!("{}/{name}", d.display()));
                }
            }
        }
    }
    v
}

/// The cgroups of sandboxes: ours, but for the spares the library made ahead (compared
/// by their real paths: `cpu` and `cpuacct` may be one hierarchy under two names).
pub fn sandboxes_cgroups() -> Vec<String> {
    let real = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    let spares: Vec<_> = sandbox_core::test_hooks::cgroup_spares()
        .iter()
        .filter_map(|p| real(p))
        .collect();
    our_cgroups()
        .into_iter()
        .filter(|c| real(std::path::Path::new(c)).is_some_and(|r| !spares.contains(&r)))
        .collect()
}

/// Runs `/bin/true` in a sandbox under `limits` to its end, and checks it succeeded.
pub async fn run_true(limits: sandbox_core::Limits) {
    let status = sandbox_core::Sandbox::new()
        .limits(limits)
        .command("/bin/true")
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
