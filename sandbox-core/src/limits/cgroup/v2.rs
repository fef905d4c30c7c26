//! cgroup v2: one unified hierarchy, a sandbox's cgroup one directory in it. Which
//! controllers the limits need, letting them reach the sandboxes' cgroups, the files the
//! limits are written to and the usage read from, and `cgroup.kill`.

use super::{field, num, read, write, CpuMeter, Held, Usage};
use crate::{Limits, Result};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// The v2 controllers `limits` need: memory, pids, cpu for the limits set.
pub(super) fn needed(limits: &Limits) -> Vec<&'static str> {
    let mut v = Vec::new();
    if limits.memory.is_some() {
        v.push("memory");
    }
    if limits.pids.is_some() {
        v.push("pids");
    }
    if limits.cpus.is_some() {
        v.push("cpu");
    }
    v
}

/// Whether the cgroup2 mount at `root` serves `limits`: `None` when `root` is not one,
/// else whether it has the controllers they need (CPU time is accounted without any).
pub(super) fn serves(root: &Path, limits: &Limits) -> Option<bool> {
    let c = std::fs::read_to_string(root.join("cgroup.controllers")).ok()?;
    let have: Vec<&str> = c.split_whitespace().collect();
    Some(needed(limits).iter().all(|k| have.contains(k)))
}

/// Lets the controllers reach the sandboxes' cgroups under the new parent `p` (those the
/// mount has: one unknown name would refuse them all).
pub(super) fn enable_controllers(p: &Path) {
    let have = std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default();
    let enable: Vec<String> = have
        .split_whitespace()
        .filter(|c| ["memory", "pids", "cpu"].contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if !enable.is_empty() {
        let _ = std::fs::write(p.join("cgroup.subtree_control"), enable.join(" "));
    }
}

/// Writes the limits into the cgroup's directory `d`.
pub(super) fn write_limits(d: &Path, l: &Held) -> Result<()> {
    if let Some(m) = l.memory {
        write(d, "memory.max", &m.to_string())?;
        // Swap included (where swap accounting exists, as in v1).
        if d.join("memory.swap.max").exists() {
            write(d, "memory.swap.max", "0")?;
        }
    }
    if let Some(n) = l.pids {
        write(d, "pids.max", &n.to_string())?;
    }
    if let Some(c) = l.cpus {
        let quota = ((c * 100_000.0) as u64).max(1000);
        write(d, "cpu.max", &format!("{quota} 100000"))?;
    }
    Ok(())
}

/// A descriptor of the cgroup's directory `d`, for `clone3(CLONE_INTO_CGROUP)`.
pub(super) fn open_dir(d: &Path) -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(d)
        .map(OwnedFd::from)
}

/// The CPU time reader: `cpu.stat`'s `usage_usec`.
pub(super) fn cpu_meter(d: &Path) -> CpuMeter {
    CpuMeter {
        file: d.join("cpu.stat"),
        v2: true,
        base: Duration::ZERO,
    }
}

/// What the sandbox used, from `cpu.stat` and the memory controller's files.
pub(super) fn usage(d: &Path) -> Usage {
    let stat = read(d, "cpu.stat");
    Usage {
        cpu_user: Duration::from_micros(field(&stat, "user_usec ")),
        cpu_system: Duration::from_micros(field(&stat, "system_usec ")),
        // Without the memory controller (a v2 mount that has none) there is
        // no peak to report.
        peak_memory: std::fs::read_to_string(d.join("memory.peak"))
            .ok()
            .map(|s| num(&s)),
    }
}

/// Whether the kernel killed a process of the cgroup `d` for its memory limit.
pub(super) fn oom_killed(d: &Path) -> bool {
    oom_kills(d) > 0
}

/// How many times the kernel killed a process of the cgroup for its memory limit.
pub(super) fn oom_kills(d: &Path) -> u64 {
    field(&read(d, "memory.events"), "oom_kill ")
}

/// Kills everything in the cgroup `d` at once with `cgroup.kill` (Linux 5.14); whether it
/// could.
pub(super) fn kill(d: &Path) -> bool {
    let kill = d.join("cgroup.kill");
    kill.exists() && std::fs::write(kill, "1").is_ok()
}
