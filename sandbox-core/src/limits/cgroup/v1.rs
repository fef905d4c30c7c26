//! cgroup v1: one hierarchy per controller (memory, pids, cpu, cpuacct), a sandbox's cgroup
//! a directory in each hierarchy its limits use. Which hierarchies, where in them, and the
//! files its limits are written to and its usage read from.

use super::{field, num, read, write, Cgroup, CpuMeter, Held, Usage, ROOT};
use crate::{Limits, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) const CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];

/// Whether `root` is a directory of the memory, pids, cpu and cpuacct hierarchies.
pub(super) fn present(root: &Path) -> bool {
    CONTROLLERS
        .iter()
        .all(|c| root.join(c).join("cgroup.procs").exists())
}

/// The caller's own cgroup in a v1 hierarchy (from `/proc/self/cgroup`), relative to its
/// root; `None` at the root.
fn own_cgroup(controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        if !ctrls.split(',').any(|c| c == controller) {
            return None;
        }
        let rel = path.trim_start_matches('/');
        (!rel.is_empty()).then(|| PathBuf::from(rel))
    })
}

/// The hierarchies a sandbox with `limits` gets a directory in, each with the directory
/// its parent is made under.
pub(super) fn bases(root: &Path, limits: &Limits) -> Vec<(&'static str, PathBuf)> {
    // Memory and CPU accounting always (the outcome reports peak memory and CPU
    // time); pids and cpu only when limited: each v1 cgroup costs a mkdir, writes
    // and an rmdir.
    CONTROLLERS
        .iter()
        .filter(|c| match **c {
            "pids" => limits.pids.is_some(),
            "cpu" => limits.cpus.is_some(),
            _ => true,
        })
        .map(|c| {
            // v1: under the caller's own cgroup of that hierarchy (by default), so
            // sandboxes stay inside the limits of the service that runs them.
            let own = if limits.cgroup_parent.is_none() && root == Path::new(ROOT) {
                own_cgroup(c)
            } else {
                None
            };
            let base = root.join(c);
            (*c, own.map_or(base.clone(), |o| base.join(o)))
        })
        .collect()
}

/// Writes the limits, each to its controller's directory.
pub(super) fn write_limits(cg: &Cgroup, l: &Held) -> Result<()> {
    if let Some(m) = l.memory {
        let d = cg.dir("memory");
        write(d, "memory.limit_in_bytes", &m.to_string())?;
        // Swap included, so it cannot be dodged (where swap accounting exists).
        if d.join("memory.memsw.limit_in_bytes").exists() {
            write(d, "memory.memsw.limit_in_bytes", &m.to_string())?;
        }
    }
    if let Some(n) = l.pids {
        write(cg.dir("pids"), "pids.max", &n.to_string())?;
    }
    if let Some(c) = l.cpus {
        let d = cg.dir("cpu");
        write(d, "cpu.cfs_period_us", "100000")?;
        write(
            d,
            "cpu.cfs_quota_us",
            &((c * 100_000.0) as u64).max(1000).to_string(),
        )?;
    }
    Ok(())
}

/// The CPU time reader: `cpuacct.usage`, in nanoseconds.
pub(super) fn cpu_meter(cg: &Cgroup) -> CpuMeter {
    CpuMeter {
        file: cg.dir("cpuacct").join("cpuacct.usage"),
        v2: false,
        base: Duration::ZERO,
    }
}

/// What the sandbox used, from the cpuacct and memory controllers.
pub(super) fn usage(cg: &Cgroup) -> Usage {
    let acct = cg.dir("cpuacct");
    let mem = cg.dir("memory");
    let (cpu_user, cpu_system) = split_cpu(
        num(&read(acct, "cpuacct.usage")),
        num(&read(acct, "cpuacct.usage_user")),
        num(&read(acct, "cpuacct.usage_sys")),
    );
    Usage {
        cpu_user,
        cpu_system,
        peak_memory: Some(num(&read(mem, "memory.max_usage_in_bytes"))),
    }
}

/// User and system time that add up to `total` (`cpuacct.usage`, the scheduler's exact
/// count, which the watchdog reads), split as the kernel's `usage_user`/`usage_sys` are.
/// Those two are sampled at timer ticks (since Linux 5.x), so their sum can be short of the
/// total by a few ms: a run killed for its CPU time would report less than its limit. v2's
/// `cpu.stat` scales its user/system times the same way. No tick sampled: all is user time.
fn split_cpu(total: u64, user: u64, sys: u64) -> (Duration, Duration) {
    let sampled = u128::from(user) + u128::from(sys);
    let user = (u128::from(total) * u128::from(user))
        .checked_div(sampled)
        .map_or(total, |u| u as u64);
    (
        Duration::from_nanos(user),
        Duration::from_nanos(total - user),
    )
}

/// Whether the kernel killed a process of the cgroup for its memory limit.
pub(super) fn oom_killed(cg: &Cgroup) -> bool {
    oom_kills(cg) > 0
}

/// How many times the kernel killed a process of the cgroup for its memory limit.
pub(super) fn oom_kills(cg: &Cgroup) -> u64 {
    field(&read(cg.dir("memory"), "memory.oom_control"), "oom_kill ")
}

/// Starts the memory peak afresh (writing 0 to `memory.max_usage_in_bytes`).
pub(super) fn reset_peak(cg: &Cgroup) -> bool {
    std::fs::write(cg.dir("memory").join("memory.max_usage_in_bytes"), "0").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_add_up_to_the_exact_total() {
        // Ticks short of the total: scaled up, in their proportion.
        let (u, s) = split_cpu(1_000_000_000, 744_000_000, 252_000_000);
        assert_eq!(u + s, Duration::from_secs(1));
        assert_eq!(u.as_nanos(), 746_987_951);
        // No tick sampled (a short run).
        assert_eq!(
            split_cpu(3_000_000, 0, 0),
            (Duration::from_millis(3), Duration::ZERO)
        );
        // Ticks over the total (sampling error the other way): scaled down.
        let (u, s) = split_cpu(10, 8, 8);
        assert_eq!((u.as_nanos(), s.as_nanos()), (5, 5));
    }
}
