//! `/proc`, `/dev` and `/sys` of a new root: built in the staging area (fresh where the sandbox
//! has the namespace, the host's otherwise), masked and partly read-only as runc does it, then
//! moved into the root; and the `proc` and `sysfs` mounts a caller asks for.

use super::builder::{cstr, host, Builder};
use super::{InRoot, Op, PlanOptions, Target};
use crate::kernel::{
    MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_NOEXEC as NOEXEC, MOUNT_ATTR_NOSUID as NOSUID,
    MOUNT_ATTR_RDONLY as RDONLY,
};
use std::path::Path;

/// The device nodes bound into a private `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Files masked with `/dev/null`, as runc masks them (relative to the root).
pub const MASKED_FILES: [&str; 6] = [
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
];

/// Directories masked with an empty read-only tmpfs (relative to the root).
pub const MASKED_DIRS: [&str; 5] = [
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths made read-only (relative to the root).
pub const READONLY_PATHS: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

impl Builder {
    /// `/proc`, built in the staging area (fresh for the sandbox's PID namespace, masked and
    /// partly read-only as runc does it), then moved onto `target` in one step.
    pub(super) fn staged_proc(&mut self, opts: &PlanOptions<'_>, target: Target) {
        let fresh = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        self.smkdir("/proc", 0o555);
        if opts.new_pid_namespace {
            self.smount(Some("proc"), "/proc", Some("proc"), fresh, None, false);
        } else {
            // A proc instance belongs to a PID namespace: without one of its own, the
            // sandbox sees the host's, masked the same way.
            let bind = libc::MS_BIND | libc::MS_REC;
            self.smount(Some("/oldroot/proc"), "/proc", None, bind, None, false);
        }
        for f in MASKED_FILES {
            let at = format!("/{f}");
            self.smount(
                Some("/oldroot/dev/null"),
                &at,
                None,
                libc::MS_BIND,
                None,
                true,
            );
        }
        for d in MASKED_DIRS.iter().filter(|d| d.starts_with("proc/")) {
            self.mask_dir(&format!("/{d}"));
        }
        for p in READONLY_PATHS {
            let at = format!("/{p}");
            let bind = libc::MS_BIND | libc::MS_REC;
            self.smount(Some(&at), &at, None, bind, None, true);
            let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | fresh;
            self.smount(None, &at, None, ro, None, true);
        }
        self.ops.push(Op::Move {
            from: cstr("/proc"),
            to: target,
        });
    }

    /// A private `/dev`, built in the staging area — a directory holding only the harmless
    /// device nodes (bound from the host), the usual links, a new `devpts` instance and
    /// `/dev/shm` — then moved onto `target`.
    pub(super) fn staged_dev(&mut self, target: Target) {
        self.smkdir("/dev", 0o755);
        // `nodev`: a device node made in /dev (by a sandbox granted CAP_MKNOD without a user
        // namespace) cannot be opened; the nodes bound in below are mounts of their own.
        let flags = libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV;
        self.scratch("dev", 0o755, "/dev", flags);
        for name in DEVICES {
            let at = format!("/dev/{name}");
            self.ops.push(Op::Touch { path: cstr(&at) });
            // A device the host lacks is left out.
            let src = format!("/oldroot/dev/{name}");
            self.smount(Some(&src), &at, None, libc::MS_BIND, None, true);
        }
        for (link, points_to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            self.ops.push(Op::Link {
                points_to: cstr(points_to),
                path: cstr(&format!("/dev/{link}")),
            });
        }
        self.smkdir("/dev/pts", 0o755);
        self.smount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            // (Its nodes are the sandbox's terminals: not `nodev`.)
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
            false,
        );
        self.smkdir("/dev/shm", 0o755);
        self.scratch("shm", 0o1777, "/dev/shm", libc::MS_NOSUID | libc::MS_NODEV);
        self.ops.push(Op::Move {
            from: cstr("/dev"),
            to: target,
        });
    }

    /// `/sys`, read-only (fresh when the sandbox owns its network namespace, the host's
    /// otherwise), masked as runc does it, built in the staging area and moved onto
    /// `target`.
    pub(super) fn staged_sys(&mut self, opts: &PlanOptions<'_>, target: Target) {
        let fresh = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        self.smkdir("/sys", 0o555);
        if opts.new_net_namespace {
            let flags = libc::MS_RDONLY | fresh;
            self.smount(Some("sysfs"), "/sys", Some("sysfs"), flags, None, false);
        } else {
            // sysfs may only be mounted by the owner of the network namespace.
            self.bind(
                cstr("/oldroot/sys"),
                Target::Staging(cstr("/sys")),
                true,
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        }
        for d in MASKED_DIRS.iter().filter(|d| d.starts_with("sys/")) {
            self.mask_dir(&format!("/{d}"));
        }
        self.ops.push(Op::Move {
            from: cstr("/sys"),
            to: target,
        });
    }

    pub(super) fn proc(&mut self, opts: &PlanOptions<'_>, target: InRoot) {
        if opts.new_pid_namespace {
            self.fresh(
                "proc",
                Vec::new(),
                Target::Root(target),
                NOSUID | NODEV | NOEXEC,
            );
        } else {
            // A proc instance belongs to a PID namespace: without one of its own, the
            // sandbox sees the host's.
            self.bind(
                host(Path::new("/proc")).unwrap_or_default(),
                Target::Root(target),
                true,
                0,
            );
        }
    }

    pub(super) fn sysfs(&mut self, opts: &PlanOptions<'_>, target: InRoot) {
        if opts.new_net_namespace {
            self.fresh(
                "sysfs",
                Vec::new(),
                Target::Root(target),
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        } else {
            // sysfs may only be mounted by the owner of the network namespace.
            self.bind(
                host(Path::new("/sys")).unwrap_or_default(),
                Target::Root(target),
                true,
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        }
    }
}
