//! A *reused* pool's side: which descriptions may be reused and what its reset empties
//! (`Pool::reused`, `writable_places`), the lease a run holds (`Lent`), and the wait for
//! the init's report of its reset before the sandbox is lent again (`settle`).

use super::{lock, Inner, Pool};
use crate::spawn::serve::{self, Held};
use crate::{Error, Result, Sandbox};
use std::ffi::CString;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

impl Pool {
    /// A *reused* pool: `size` sandboxes of `sandbox`'s description, each running one
    /// program after another, as go-judge's environments do. Between runs its init
    ///
    /// - kills every process of the sandbox's PID namespace and reaps them,
    /// - removes every System V IPC object (shared memory, semaphores, message queues),
    /// - empties every writable directory of the sandbox's own (its tmpfs places: `/tmp`,
    ///   `/dev/shm` — POSIX shared memory and named semaphores —, `/run`, `/home`, `/root`,
    ///   `/dev`, [`Mount::tmpfs`](crate::Mount::tmpfs) targets; never the caller's binds nor a
    ///   host filesystem they reach)
    ///   back to exactly the entries it held before the first run (same names, same
    ///   inodes, owners and modes), puts the directories' modes, timestamps and extended
    ///   attributes (default ACLs too) back, and the kept entries' timestamps,
    /// - drops every signal sent to it meanwhile, and checks that no run changed the init
    ///   itself (its rlimits, nice value, scheduling attributes, CPU affinity, I/O
    ///   priority, `oom_score_adj`, `coredump_filter`, autogroup),
    ///
    /// and the next run gets its own program, arguments, environment, working directory and
    /// stdio. A run's end is reported (its [`Child::wait`] returns) once its processes and
    /// IPC objects are gone; the rest of the reset follows, and the sandbox is lent again
    /// only when the init reports that clean too (a take finding none ready waits up to
    /// 20 ms for one being reset before it spawns cold). A run's CPU time is counted from
    /// its take (and its memory peak, with cgroup v1).
    /// POSIX message queues are refused (`mq_open` fails with `EPERM`: they cannot be
    /// listed, so not reset). A run that the reset cannot clean (a process that will not
    /// die within 0.5 s, a directory it cannot empty, an init whose settings changed or
    /// that used half its own CPU-time limit), that was killed ([`Child::kill`],
    /// a wall or CPU time limit, a dropped handle) or that failed to start takes its
    /// sandbox with it; the pool makes another.
    ///
    /// What can survive from one run to the next: what a writable bind mount of a host
    /// directory holds (it is the caller's by design, as is a host filesystem mounted
    /// below it); the change times (`ctime`) of the reset directories and kept entries,
    /// and the timestamps of `/dev/pts`; counters the kernel does not reset (the next
    /// process ids, System V IPC ids, inode numbers, pty numbers); TCP ports a run's
    /// connections left in `TIME_WAIT` (for up to a minute: bind with `SO_REUSEADDR`); the
    /// kernel's caches. Other state — the hostname, the network's configuration, mounts,
    /// the kernel keyring — needs capabilities or calls a reused sandbox does not have: its
    /// filter always refuses the keyring calls (`keyctl`, `add_key`, `request_key`, as the
    /// default profile does) and `mq_open`, and capabilities beyond those that act only on
    /// a run's own processes and files are refused (below). A description whose
    /// writable places hold files or directories before any run (a
    /// [`Mount::dir`](crate::Mount::dir) inside `/tmp`, say: a run could change them) is
    /// refused.
    ///
    /// A run that sent a signal through its handle ([`Child::signal`]) also takes its
    /// sandbox with it (the signal could land on the init after the program's end).
    ///
    /// Needs a sandbox with its own PID, IPC and mount namespaces, the seccomp filter on,
    /// no capability but those [`REUSABLE_CAPABILITIES`](crate::REUSABLE_CAPABILITIES) names, no writable
    /// [`Mount::file`](crate::Mount::file), and a read-only root (as
    /// [`Rootfs::host_readonly`](crate::Rootfs::host_readonly), a read-only
    /// [`Rootfs::dir`](crate::Rootfs::dir) or an image give), else a typed error.
    pub async fn reused(sandbox: Sandbox, size: usize) -> Result<Pool> {
        use crate::Namespace::{Ipc, Mount, Pid};
        for (ns, why) in [
            (Pid, "its init ends every process of a run"),
            (Ipc, "its init removes every System V IPC object"),
            (Mount, "its init empties its writable places"),
        ] {
            if !sandbox.creates(ns) {
                return Err(Error::Conflict(format!(
                    "a reused pool needs a {ns} namespace of the sandbox's own: {why}"
                )));
            }
        }
        if !sandbox.seccomp.is_enabled() {
            return Err(Error::Unsupported(
                "a reused pool without a seccomp filter: the filter refuses POSIX message \
                 queues (which a reset cannot list) and the kernel keyring"
                    .into(),
            ));
        }
        for m in &sandbox.mounts {
            if let sandbox_fs::Mount::File {
                target,
                readonly: false,
                ..
            } = m
            {
                return Err(Error::Unsupported(format!(
                    "a reused pool with the writable file {} (a run's writes would reach the \
                     next): make it read-only",
                    target.display()
                )));
            }
        }
        if let Some(c) = sandbox
            .capabilities
            .iter()
            .find(|c| !REUSABLE_CAPABILITIES.contains(c))
        {
            return Err(Error::Unsupported(format!(
                "a reused pool whose sandbox keeps {c}: with it a run could change what \
                 outlives it (the network's configuration, the init, the mounts)"
            )));
        }
        let mut seccomp = sandbox.seccomp.clone();
        for call in ["mq_open", "keyctl", "add_key", "request_key"] {
            seccomp = seccomp.deny(call);
        }
        let sandbox = sandbox.seccomp(seccomp);
        Pool::make(sandbox, size, true).await
    }
}

/// A reused pool's sandbox while it runs a program: its handle's [`Lease`]. The sandbox
/// goes back to the pool when the run ends clean, else it is dropped (killed, reaped).
#[derive(Debug)]
pub(super) struct Lent {
    held: Option<Held>,
    pool: Weak<Inner>,
    /// The cgroup's counters at the take: the run's usage is counted from there.
    base: Option<(crate::limits::cgroup::Usage, u64)>,
    meter: Option<crate::limits::cgroup::CpuMeter>,
    /// The memory peak was started afresh at the take (cgroup v1).
    peak: bool,
}

impl Lent {
    pub(super) fn new(held: Held, pool: Weak<Inner>) -> Lent {
        let (base, meter, peak) = match held.cgroup() {
            Some(cg) => {
                let peak = cg.reset_peak();
                (
                    Some((cg.usage(), cg.oom_kills())),
                    Some(cg.cpu_meter().counting_from_now()),
                    peak,
                )
            }
            None => (None, None, false),
        };
        Lent {
            held: Some(held),
            pool,
            base,
            meter,
            peak,
        }
    }

    /// Gives the sandbox back once its init reports it reset (`reusable`: the run ended
    /// clean), or lets it go; uncounts it as lent either way.
    fn finish(&mut self, reusable: bool) {
        let Some(held) = self.held.take() else { return };
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        let mut st = lock(&inner.state);
        st.lent = st.lent.saturating_sub(1);
        let control = held.control().try_clone_to_owned();
        if let (true, true, Ok(control)) = (reusable, held.alive(), control) {
            let id = st.next_reset;
            st.next_reset += 1;
            st.resetting.push((id, held));
            drop(st);
            let resetting = Resetting {
                pool: self.pool.clone(),
                id,
            };
            inner
                .runtime
                .spawn(settle(resetting, control, inner.wake.clone()));
        } else {
            st.stats.discarded += 1;
            drop(st);
            drop(held);
            inner.wake.notify_waiters();
        }
    }
}

impl Lent {
    /// Starts `cmd`'s program (prepared in `request`) in the lent sandbox; `None` when the
    /// sandbox was gone (the take spawns cold then). A start that failed takes its sandbox
    /// with it (the init reports that run's end on its socket, which nobody reads).
    pub(super) async fn start(
        self,
        request: crate::spawn::prepare::Request,
        cmd: &crate::Command,
    ) -> Result<Option<crate::Child>> {
        let sent = match self.held.as_ref() {
            Some(h) => h.lend(request, cmd).await,
            None => Ok(None),
        };
        match sent? {
            Some(mut spawned) => {
                spawned.lease = Some(Box::new(self));
                crate::Child::from_spawned(spawned).map(Some)
            }
            None => Ok(None),
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// How long a take waits for a reused pool's sandbox being reset before it spawns cold.
pub(super) const RESET_WAIT: Duration = Duration::from_millis(20);

/// How long an init may take to report its reset before its sandbox is let go (the reset
/// itself is bounded: 0.5 s to end the run's processes, 100,000 entries to remove).
const RESET_TIMEOUT: Duration = Duration::from_secs(10);

/// A reused pool's sandbox being reset (its number in [`State::resetting`]) until its
/// `settle` task puts it back among the ready or lets it go — also when the task is
/// dropped unfinished (the runtime shut down): no slot of the pool is ever lost.
struct Resetting {
    pool: Weak<Inner>,
    id: u64,
}

impl Resetting {
    /// Back among the ready (`clean`), or let go (killed and reaped with its [`Held`]).
    /// Nothing to do when the pool is gone (it let the sandbox go with it).
    fn end(&mut self, clean: bool) {
        let Some(inner) = self.pool.upgrade() else {
            return;
        };
        let mut st = lock(&inner.state);
        let Some(at) = st.resetting.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        let (_, held) = st.resetting.swap_remove(at);
        if clean && held.alive() {
            st.ready.push_back(held);
            drop(st);
        } else {
            st.stats.discarded += 1;
            drop(st);
            drop(held);
        }
        // A take may wait for it; a maker times the idle spell from here, or makes another.
        inner.wake.notify_waiters();
    }
}

impl Drop for Resetting {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// Waits for a reused sandbox's reset to be reported on its `control` socket, then puts it
/// back among the ready or lets it go; ends at once when the pool is dropped meanwhile
/// (woken by `wake`).
async fn settle(mut resetting: Resetting, control: std::os::fd::OwnedFd, wake: Arc<Notify>) {
    let report = tokio::time::timeout(RESET_TIMEOUT, reset_report(control));
    tokio::pin!(report);
    let clean = loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if resetting.pool.strong_count() == 0 {
            return;
        }
        tokio::select! {
            clean = &mut report => break clean.unwrap_or(false),
            _ = notified => {}
        }
    };
    resetting.end(clean);
}

/// Whether the init reported its reset clean (`false`: unclean, malformed, or the init
/// ended: end of file).
async fn reset_report(control: std::os::fd::OwnedFd) -> bool {
    let Ok(fd) = crate::sys::async_readable(control) else {
        return false;
    };
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return false;
        };
        let mut buf = [0u8; 16];
        match nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(fd.get_ref()),
            &mut buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(16) => {
                let w = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                return w(0) == crate::spawn::report::STATUS_READY && w(4) == 1;
            }
            Err(nix::Error::EAGAIN) => ready.clear_ready(),
            Err(nix::Error::EINTR) => {}
            Ok(_) | Err(_) => return false,
        }
    }
}

impl serve::Lease for Lent {
    fn control(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.held.as_ref().map(Held::control)
    }

    fn usage(&self) -> Option<(crate::limits::cgroup::Usage, u64)> {
        let cg = self.held.as_ref()?.cgroup()?;
        let (base, ooms) = self.base?;
        let u = cg.usage();
        Some((
            crate::limits::cgroup::Usage {
                peak_memory: if self.peak { u.peak_memory } else { None },
                ..u.since(&base)
            },
            cg.oom_kills().saturating_sub(ooms),
        ))
    }

    fn cpu_meter(&self) -> Option<crate::limits::cgroup::CpuMeter> {
        self.meter.clone()
    }

    fn end(mut self: Box<Self>, reusable: bool) {
        self.finish(reusable);
    }
}

/// The capabilities a reused pool's sandbox may keep: each acts only on the run's own
/// processes and files (which the reset ends and removes), so no run can use it to leave
/// something for the next.
pub const REUSABLE_CAPABILITIES: &[crate::Capability] = {
    use crate::Capability::*;
    &[
        AuditWrite,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        Kill,
        NetBindService,
        NetRaw,
        Setfcap,
        Setgid,
        Setpcap,
        Setuid,
        SysChroot,
    ]
};

/// The most directories a reused sandbox's reset empties (`init.c`'s `MAX_RESET`).
const MAX_RESET: usize = 16;

/// The writable places of a sandbox of the pool's description: the mount points of its
/// writable tmpfs mounts, read from its init's `mountinfo` (paths as the sandbox sees
/// them). Refuses a sandbox whose root itself is writable: a reset could not empty it.
pub(super) fn writable_places(held: &Held) -> Result<Vec<CString>> {
    // What the caller's binds reach (a host tmpfs, or one mounted below a bound directory)
    // is the caller's: never emptied. The sandbox's own tmpfs instances are filesystems of
    // their own, which the caller's mount table does not hold.
    let host = host_filesystems()?;
    let places: Vec<(String, Option<String>)> = mounts(held)?
        .into_iter()
        .map(|(p, dev, inside)| {
            let inside = if host.contains(&dev) { None } else { inside };
            (p, inside)
        })
        .collect();
    let points: Vec<&str> = places.iter().map(|(p, _)| p.as_str()).collect();
    let mut out = Vec::new();
    for (point, inside) in places.iter().filter(|(_, inside)| inside.is_some()) {
        let inside = inside.as_deref().unwrap_or_default();
        check_resettable(inside, point, &points)?;
        out.push(CString::new(point.as_str()).map_err(|_| Error::Invalid {
            what: "mount point",
            reason: "contains a NUL byte".into(),
        })?);
    }
    // Deepest first: a place that is a kept mount point of another (`/dev/shm` in `/dev`)
    // has its mode put back before the other's reset checks it.
    out.sort_by_key(|p| std::cmp::Reverse(p.as_bytes().iter().filter(|b| **b == b'/').count()));
    if out.len() > MAX_RESET {
        return Err(Error::Unsupported(format!(
            "a reused pool whose sandbox has {} writable tmpfs places (at most {MAX_RESET})",
            out.len()
        )));
    }
    Ok(out)
}

/// The filesystems (`major:minor`) of this process's mount table.
fn host_filesystems() -> Result<std::collections::HashSet<String>> {
    let path = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(path).map_err(|e| Error::os(format!("read {path}"), e))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(2))
        .map(str::to_string)
        .collect())
}

/// Every mount point of the sandbox (as it sees them) and its filesystem (`major:minor`),
/// with the host's path to it for the writable tmpfs directories among them.
fn mounts(held: &Held) -> Result<Vec<(String, String, Option<String>)>> {
    let pid = held.pid().ok_or(Error::Reaped)?;
    let path = format!("/proc/{pid}/mountinfo");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::os(format!("read {path}"), e))?;
    let mut places = Vec::new();
    for line in text.lines() {
        let (before, after) = line.split_once(" - ").unwrap_or((line, ""));
        let fields: Vec<&str> = before.split(' ').collect();
        let (Some(dev), Some(point), Some(options)) = (fields.get(2), fields.get(4), fields.get(5))
        else {
            continue;
        };
        let writable = options.split(',').next() == Some("rw");
        let point = sandbox_fs::mountinfo_path(point)
            .to_string_lossy()
            .into_owned();
        if point == "/" {
            if writable {
                return Err(Error::Unsupported(
                    "a reused pool with a writable root: between runs only the sandbox's \
                     own tmpfs places can be emptied (use a read-only root, as \
                     Rootfs::host_readonly or Rootfs::dir give)"
                        .into(),
                ));
            }
            continue;
        }
        let tmpfs = after.split(' ').next() == Some("tmpfs");
        let inside = format!("/proc/{pid}/root{point}");
        let is_dir = std::fs::symlink_metadata(&inside).is_ok_and(|m| m.is_dir());
        let inside = (writable && tmpfs && is_dir).then_some(inside);
        places.push((point, dev.to_string(), inside));
    }
    Ok(places)
}

/// Refuses a writable place that holds a file or directory before any run (other than a
/// mount point, a link or a device): a run could change it, and the reset keeps it.
fn check_resettable(inside: &str, point: &str, mount_points: &[&str]) -> Result<()> {
    let entries = std::fs::read_dir(inside).map_err(|e| Error::os(format!("read {inside}"), e))?;
    for e in entries.flatten() {
        let Ok(m) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let path = format!(
            "{}/{}",
            point.trim_end_matches('/'),
            e.file_name().to_string_lossy()
        );
        if !mount_points.contains(&path.as_str()) && (m.is_dir() || m.is_file()) {
            return Err(Error::Unsupported(format!(
                "a reused pool whose writable place {point} holds {:?} before any run (a \
                 run could change it, and the reset keeps what was there)",
                e.file_name()
            )));
        }
    }
    Ok(())
}
