//! Resource limits of a sandbox: [`Limits`], the public description (builder, checks, the
//! rlimits it becomes). The cgroup that enforces and accounts the rest is in `cgroup/`.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub(crate) mod cgroup;

/// Limits on what a sandbox may use. Set with [`Sandbox::limits`](crate::Sandbox::limits).
///
/// How each is enforced:
/// - memory (swap included), PIDs and CPU bandwidth: a cgroup of the sandbox's own (v2 when
///   its controllers are usable, v1 otherwise), ready before the sandbox runs and removed,
///   with anything left in it killed, right after it ends. Both ends are off the spawn's
///   path: a thread of the library makes cgroups ahead for the next sandboxes (up to two
///   per mount, parent and set of controllers in use, holding the last sandbox's limits;
///   gone after 2 s without a spawn and when the process exits normally; a later process
///   removes those a killed one left) and removes the ended sandboxes', so
///   [`Child::wait`](crate::Child::wait) returns without waiting for it;
/// - CPU time: for the whole sandbox from the cgroup's accounting (the parent kills the
///   sandbox when all its processes together used it up), and per process with
///   `RLIMIT_CPU` as a backstop;
/// - wall time: by the parent, which kills the whole sandbox at the deadline;
/// - output per captured stream: by [`Child::wait_with_output`](crate::Child::wait_with_output),
///   which stops storing and kills the sandbox at the limit;
/// - file size, open files, stack: rlimits; core dumps are always off.
///
/// On a machine without usable cgroups, memory, PIDs, CPUs and CPU time are refused with a
/// typed error, unless [`Limits::rlimits_only`] accepts rlimit approximations.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sandbox_core::Result<()> {
/// use sandbox_core::{Ending, Limits, Sandbox};
/// use std::time::Duration;
/// let limits = Limits::new()
///     .memory(64 << 20)
///     .pids(16)
///     .wall_time(Duration::from_millis(300));
/// let out = Sandbox::new()
///     .limits(limits)
///     .command("/bin/sh")
///     .arg("-c")
///     .arg("echo started; sleep 60")
///     .output()
///     .await?;
/// assert_eq!(out.status.ending, Ending::WallTimeExceeded);
/// assert_eq!(out.stdout, b"started\n");
/// // What it used, from its cgroup.
/// assert!(out.status.peak_memory.is_some() && out.status.cpu_user.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub(crate) memory: Option<u64>,
    pub(crate) pids: Option<u64>,
    pub(crate) cpus: Option<f64>,
    pub(crate) cpu_time: Option<Duration>,
    pub(crate) wall_time: Option<Duration>,
    pub(crate) output: Option<u64>,
    pub(crate) file_size: Option<u64>,
    pub(crate) open_files: Option<u64>,
    pub(crate) stack: Option<u64>,
    pub(crate) cgroup_parent: Option<String>,
    pub(crate) cgroup_mount: Option<std::path::PathBuf>,
    pub(crate) rlimits_only: bool,
}

impl Limits {
    /// No limits.
    pub fn new() -> Limits {
        Limits::default()
    }

    /// Memory of the whole sandbox, swap included, in bytes; a sandbox that needs more is
    /// killed by the kernel and the run ends as
    /// [`Ending::OutOfMemory`](crate::Ending::OutOfMemory).
    pub fn memory(mut self, bytes: u64) -> Limits {
        self.memory = Some(bytes);
        self
    }

    /// Processes and threads of the whole sandbox (`fork` fails past it).
    pub fn pids(mut self, n: u64) -> Limits {
        self.pids = Some(n);
        self
    }

    /// CPU bandwidth, in cores (`0.5`: half of one core).
    pub fn cpus(mut self, cores: f64) -> Limits {
        self.cpus = Some(cores);
        self
    }

    /// CPU time of the whole sandbox, every thread of every process counted: when they
    /// used it up the sandbox is killed and the run ends as
    /// [`Ending::CpuTimeExceeded`](crate::Ending::CpuTimeExceeded).
    pub fn cpu_time(mut self, limit: Duration) -> Limits {
        self.cpu_time = Some(limit);
        self
    }

    /// Wall-clock time from the spawn: at the deadline the parent kills the whole sandbox
    /// and the run ends as [`Ending::WallTimeExceeded`](crate::Ending::WallTimeExceeded).
    pub fn wall_time(mut self, limit: Duration) -> Limits {
        self.wall_time = Some(limit);
        self
    }

    /// Bytes kept of each captured stream (stdout, stderr) by
    /// [`Child::wait_with_output`](crate::Child::wait_with_output) and
    /// [`Command::output`](crate::Command::output): past it the sandbox is killed and the
    /// run ends as [`Ending::OutputLimitExceeded`](crate::Ending::OutputLimitExceeded).
    pub fn output(mut self, bytes: u64) -> Limits {
        self.output = Some(bytes);
        self
    }

    /// The largest file a process may write (`RLIMIT_FSIZE`; past it writes fail with
    /// `EFBIG`).
    pub fn file_size(mut self, bytes: u64) -> Limits {
        self.file_size = Some(bytes);
        self
    }

    /// Open files per process (`RLIMIT_NOFILE`).
    pub fn open_files(mut self, n: u64) -> Limits {
        self.open_files = Some(n);
        self
    }

    /// Stack size per process (`RLIMIT_STACK`).
    pub fn stack(mut self, bytes: u64) -> Limits {
        self.stack = Some(bytes);
        self
    }

    /// The cgroup directory the sandboxes' cgroups are made in, relative to the root of
    /// each hierarchy (default `sandbox`, created when missing). Cgroups made ahead for the
    /// next sandboxes stay in it for ~2 s after the last one (see the limits' doc above).
    pub fn cgroup_parent(mut self, parent: impl Into<String>) -> Limits {
        self.cgroup_parent = Some(parent.into());
        self
    }

    /// Where the cgroup file system to use is mounted (default `/sys/fs/cgroup`): a
    /// cgroup2 mount, or a directory of cgroup v1 hierarchies; the version is detected
    /// there. A cgroup2 mount serves when it has the controllers the limits need (memory,
    /// pids, cpu); CPU time is accounted by every v2 cgroup (on a hybrid layout, the
    /// controller-less `/sys/fs/cgroup/unified` serves a CPU-time limit). Peak memory is
    /// reported only with the memory controller.
    pub fn cgroup_mount(mut self, path: impl Into<std::path::PathBuf>) -> Limits {
        self.cgroup_mount = Some(path.into());
        self
    }

    /// Without cgroups: memory becomes `RLIMIT_AS` and CPU time `RLIMIT_CPU` (both per
    /// process), PIDs `RLIMIT_NPROC` (per user); CPU bandwidth stays refused. For machines
    /// where no cgroup version is usable.
    pub fn rlimits_only(mut self) -> Limits {
        self.rlimits_only = true;
        self
    }

    /// Whether enforcing these limits needs a cgroup.
    pub(crate) fn needs_cgroup(&self) -> bool {
        !self.rlimits_only
            && (self.memory.is_some()
                || self.pids.is_some()
                || self.cpus.is_some()
                || self.cpu_time.is_some())
    }

    /// The wall-time limit.
    pub fn get_wall_time(&self) -> Option<Duration> {
        self.wall_time
    }

    /// The output limit.
    pub fn get_output(&self) -> Option<u64> {
        self.output
    }

    /// Refuses zero, absurd and not-yet-enforceable limits.
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &'static str, reason: String| Err(Error::Invalid { what, reason });
        for (what, v) in [
            ("memory limit", self.memory),
            ("pids limit", self.pids),
            ("output limit", self.output),
            ("file size limit", self.file_size),
            ("open files limit", self.open_files),
            ("stack limit", self.stack),
        ] {
            if v == Some(0) {
                return bad(what, "0 leaves the program nothing".into());
            }
        }
        if let Some(n) = self.open_files {
            if n > 1 << 20 {
                return bad(
                    "open files limit",
                    format!("{n} is above the kernel's 1048576"),
                );
            }
        }
        if let Some(s) = self.stack {
            if s < 64 << 10 {
                return bad(
                    "stack limit",
                    format!("{s} bytes cannot hold a program's start"),
                );
            }
        }
        for (what, d) in [
            ("wall time limit", self.wall_time),
            ("CPU time limit", self.cpu_time),
        ] {
            if d == Some(Duration::ZERO) {
                return bad(what, "0 leaves the program no time".into());
            }
            if d.is_some_and(|d| d > Duration::from_secs(365 * 24 * 3600)) {
                return bad(what, "more than a year".into());
            }
        }
        if let Some(m) = self.memory {
            if m < 1 << 20 {
                return bad("memory limit", format!("{m} bytes cannot hold a program"));
            }
        }
        if let Some(n) = self.pids {
            if n < 2 {
                return bad(
                    "pids limit",
                    format!("{n} leaves no room for the init and the program (2 at least)"),
                );
            }
            if n > 1 << 22 {
                return bad("pids limit", format!("{n} is above the kernel's pid_max"));
            }
        }
        if let Some(c) = self.cpus {
            if !(c.is_finite() && (0.01..=4096.0).contains(&c)) {
                return bad(
                    "cpus limit",
                    format!("{c} is not between 0.01 and 4096 cores"),
                );
            }
            if self.rlimits_only {
                return Err(Error::Unsupported(
                    "a cpus limit needs cgroups; rlimits cannot express it".into(),
                ));
            }
        }
        if let Some(m) = &self.cgroup_mount {
            if !m.is_absolute() {
                return bad(
                    "cgroup mount",
                    format!("{} is not an absolute path", m.display()),
                );
            }
        }
        if let Some(p) = &self.cgroup_parent {
            let ok = !p.is_empty()
                && std::path::Path::new(p)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !ok {
                return bad(
                    "cgroup parent",
                    format!("{p:?} must be a relative path without `..`"),
                );
            }
        }
        Ok(())
    }

    /// `(RLIMIT_*, soft, hard)` the sandbox's processes get.
    pub(crate) fn rlimits(&self) -> Vec<(u32, u64, u64)> {
        let mut v = vec![(libc::RLIMIT_CORE, 0, 0)];
        if self.rlimits_only {
            if let Some(m) = self.memory {
                v.push((libc::RLIMIT_AS, m, m));
            }
            if let Some(n) = self.pids {
                v.push((libc::RLIMIT_NPROC, n, n));
            }
        }
        if let Some(d) = self.cpu_time {
            // Whole seconds, rounded up; SIGXCPU at the soft limit, SIGKILL a second later.
            let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            v.push((libc::RLIMIT_CPU, s, s + 1));
        }
        if let Some(b) = self.file_size {
            v.push((libc::RLIMIT_FSIZE, b, b));
        }
        if let Some(n) = self.open_files {
            v.push((libc::RLIMIT_NOFILE, n, n));
        }
        if let Some(b) = self.stack {
            v.push((libc::RLIMIT_STACK, b, b));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_absurd_limits_are_refused() {
        for l in [
            Limits::new().output(0),
            Limits::new().open_files(0),
            Limits::new().open_files(1 << 30),
            Limits::new().stack(1024),
            Limits::new().wall_time(Duration::ZERO),
            Limits::new().cpu_time(Duration::from_secs(400 * 24 * 3600)),
        ] {
            assert!(matches!(l.check(), Err(Error::Invalid { .. })), "{l:?}");
        }
        assert!(matches!(
            Limits::new().cpus(1.0).rlimits_only().check(),
            Err(Error::Unsupported(_))
        ));
        for l in [
            Limits::new().memory(4096),
            Limits::new().cpus(0.0),
            Limits::new().cpus(f64::NAN),
            Limits::new().cgroup_parent("../etc"),
            Limits::new().cgroup_parent("/abs"),
        ] {
            assert!(matches!(l.check(), Err(Error::Invalid { .. })), "{l:?}");
        }
        assert!(Limits::new()
            .wall_time(Duration::from_millis(1))
            .check()
            .is_ok());
    }

    #[test]
    fn rlimits_round_cpu_time_up_and_always_turn_core_dumps_off() {
        let r = Limits::new()
            .cpu_time(Duration::from_millis(1500))
            .open_files(64)
            .rlimits();
        assert_eq!(
            r,
            [
                (libc::RLIMIT_CORE, 0, 0),
                (libc::RLIMIT_CPU, 2, 3),
                (libc::RLIMIT_NOFILE, 64, 64)
            ]
        );
    }

    #[test]
    fn serde_form() {
        let l = Limits::new()
            .wall_time(Duration::from_millis(1500))
            .output(1024);
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Limits>(&j).unwrap(), l);
    }
}
