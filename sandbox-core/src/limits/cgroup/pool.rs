//! Cgroups off a spawn's path. Making a sandbox's cgroup (a directory in each hierarchy;
//! in v1 the memory controller's alone ~110 µs) and removing it cost a judge-style spawn
//! ~300 µs, so one thread of the library ("sandbox-cgroups", started on first use) does
//! both ahead and behind:
//!
//! - **spares**: each site in use ([`Site`]: version, hierarchies, parent) keeps up to
//!   [`SPARES`] cgroups made ahead, holding the limits of the site's last take; a spawn with
//!   the same limits takes one and writes nothing (a judge's runs), with other limits it
//!   makes its own (limits alternating on one site gain nothing). Every take asks for a new
//!   one; a site unused for [`IDLE`] loses its spares, so an idle process holds none (and a
//!   parent directory the caller manages is free of ours ~2 s after its last sandbox).
//! - **removal**: a sandbox's cgroup, once the sandbox has ended, is killed and removed by
//!   the thread; `Child::wait` does not wait for the kernel.
//! - **sweeping**: the first use of a parent directory removes what dead processes left in
//!   it (cgroups named `sbx-<pid>-<n>` whose pid no longer runs here, and empty: the kernel
//!   refuses to remove any other). A process killed by SIGKILL leaves its spares, and the
//!   cgroups it had not removed yet, for the next one to sweep — as does SIGTERM's or
//!   SIGINT's default action, which ends a process without `atexit`. (A process of another
//!   PID namespace sharing the parent could see one of its spares swept: a spare whose
//!   directories are gone is not used, another is made.)
//!
//! A process that exits normally finishes on the way out (an `atexit` handler, waiting up to
//! [`EXIT_WAIT`]): the cgroups of its ended sandboxes still queued for removal are removed,
//! and its spares. A command-line tool that exits right after its sandbox leaves nothing.
//! (A child the process forked and that exits does nothing of this: the spares and the
//! thread are its parent's.)

use super::{Cgroup, Held, Site};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many spares a site in use keeps.
pub(super) const SPARES: usize = 2;
/// How long a site keeps its spares without a take.
pub(super) const IDLE: Duration = Duration::from_secs(2);
/// How long a normal exit waits for the queued removals.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Set on the way out: no more spares are made.
static EXITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The process that started the thread and registered the exit handler (a forked child
/// inherits the handler, not the thread).
static OWNER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

enum Job {
    /// Make the site's spares up to [`SPARES`] (a take happened).
    Refill(Site),
    /// Kill what is left in this cgroup and remove it.
    Remove(Box<Cgroup>),
    /// Say when every job before this one is done.
    Flush(mpsc::SyncSender<()>),
}

struct Spares {
    ready: Vec<Cgroup>,
    /// The last take.
    used: Instant,
    /// The limits of the last take, written into the spares made after it.
    held: Held,
}

#[derive(Default)]
struct State {
    sites: HashMap<Site, Spares>,
    /// Takes that found a spare, and that did not.
    hits: u64,
    misses: u64,
    /// Parent directories swept of dead processes' leftovers.
    swept: HashSet<PathBuf>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static JOBS: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the pool's state.
fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    f(state().get_or_insert_with(State::default))
}

/// Hands `job` to the thread (starting it), or gives it back when there can be none.
fn send(job: Job) -> Result<(), Job> {
    let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    if jobs.is_none() {
        let (tx, rx) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("sandbox-cgroups".into())
            .spawn(move || serve(rx));
        if started.is_err() {
            return Err(job);
        }
        *jobs = Some(tx);
        OWNER.store(std::process::id(), std::sync::atomic::Ordering::SeqCst);
        // SAFETY: registers a plain function, once, that never unwinds (see `at_exit`).
        unsafe { libc::atexit(at_exit) };
    }
    match jobs.as_ref() {
        Some(tx) => tx.send(job).map_err(|mpsc::SendError(job)| job),
        None => Err(job),
    }
}

/// A spare of `site`, if one is ready; either way the site's spares are made up again,
/// holding `held` (the limits of this take).
pub(super) fn take(site: &Site, held: Held) -> Option<Cgroup> {
    let spare = with_state(|s| {
        let spares = s.sites.entry(site.clone()).or_insert_with(|| Spares {
            ready: Vec::new(),
            used: Instant::now(),
            held,
        });
        spares.used = Instant::now();
        spares.held = held;
        spares.ready.pop()
    });
    // Without the thread there are no spares: every spawn makes its own.
    let _ = send(Job::Refill(site.clone()));
    spare
}

/// Counts a take that found a spare it could use (`hit`), or not.
pub(super) fn count(hit: bool) {
    with_state(|s| {
        if hit {
            s.hits += 1;
        } else {
            s.misses += 1;
        }
    });
}

/// Kills and removes a sandbox's cgroup in the background (here, when no thread can run).
pub(super) fn retire(cg: Cgroup) {
    if let Err(Job::Remove(mut cg)) = send(Job::Remove(Box::new(cg))) {
        cg.remove_now();
    }
}

/// On the process's normal exit: the queued removals are finished (for up to
/// [`EXIT_WAIT`]) and the spares removed, rather than left for the next process to sweep.
/// (The pool's lock may be held by a thread the exit cut short: then the spares stay.)
extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if OWNER.load(std::sync::atomic::Ordering::SeqCst) != std::process::id() {
            return;
        }
        EXITING.store(true, std::sync::atomic::Ordering::SeqCst);
        let (tx, rx) = mpsc::sync_channel(1);
        if send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(EXIT_WAIT);
        }
        let Ok(mut state) = STATE.try_lock() else {
            return;
        };
        let spares: Vec<Cgroup> = state
            .as_mut()
            .map(|s| s.sites.drain().flat_map(|(_, sp)| sp.ready).collect())
            .unwrap_or_default();
        drop(state);
        for mut cg in spares {
            cg.remove_unused();
        }
    });
}

fn serve(rx: mpsc::Receiver<Job>) {
    loop {
        match rx.recv_timeout(IDLE / 4) {
            Ok(Job::Remove(mut cg)) => cg.remove_now(),
            Ok(Job::Refill(site)) => refill(&site),
            Ok(Job::Flush(done)) => {
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        for mut cg in idle_spares() {
            cg.remove_now();
        }
    }
}

/// Makes `site`'s spares up to [`SPARES`] while the site is in use.
fn refill(site: &Site) {
    sweep(site);
    loop {
        let wanted = with_state(|s| {
            s.sites
                .get(site)
                .filter(|sp| sp.ready.len() < SPARES && sp.used.elapsed() < IDLE)
                .map(|sp| sp.held)
        });
        let Some(held) = wanted else { return };
        if EXITING.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Ok(mut cg) = Cgroup::make(site) else {
            return;
        };
        if cg.hold(held).is_err() {
            // Half written, maybe: never a spare.
            cg.remove_now();
            return;
        }
        let unwanted = with_state(|s| match s.sites.get_mut(site) {
            Some(sp) => {
                sp.ready.push(cg);
                None
            }
            None => Some(cg),
        });
        if let Some(mut cg) = unwanted {
            cg.remove_now();
        }
    }
}

/// The spares of sites unused for [`IDLE`], taken out of the pool.
fn idle_spares() -> Vec<Cgroup> {
    with_state(|s| {
        let idle: Vec<Site> = s
            .sites
            .iter()
            .filter(|(_, sp)| sp.used.elapsed() >= IDLE)
            .map(|(site, _)| site.clone())
            .collect();
        idle.iter()
            .filter_map(|site| s.sites.remove(site))
            .flat_map(|sp| sp.ready)
            .collect()
    })
}

/// Removes, once per parent directory, the empty cgroups dead processes left in `site`'s.
fn sweep(site: &Site) {
    let own = std::process::id();
    for (_, base) in &site.bases {
        let parent = base.join(&site.parent);
        if !with_state(|s| s.swept.insert(parent.clone())) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(leftover_pid) else {
                continue;
            };
            if pid != own && !alive(pid) {
                // The kernel removes only an empty cgroup with no child of its own.
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// The pid in a sandbox cgroup's name, `sbx-<pid>-<n>`.
fn leftover_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("sbx-")?.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether a process `pid` runs (in this PID namespace).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Takes that found a spare, and takes that did not (for tests).
#[cfg(feature = "test-hooks")]
pub(crate) fn counts() -> (u64, u64) {
    with_state(|s| (s.hits, s.misses))
}

/// The directories of every spare now in the pool (for tests).
#[cfg(feature = "test-hooks")]
pub(crate) fn spares() -> Vec<PathBuf> {
    with_state(|s| {
        s.sites
            .values()
            .flat_map(|sp| sp.ready.iter().flat_map(|cg| cg.dirs.clone()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::leftover_pid;

    #[test]
    fn leftovers_are_told_by_their_names() {
        assert_eq!(leftover_pid("sbx-1234-0"), Some(1234));
        assert_eq!(leftover_pid("sbx-1234-17"), Some(1234));
        for other in [
            "sbx-1234",
            "sbx-x-1",
            "sbx-12-x",
            "sandbox",
            "sbx--1",
            "user.slice",
        ] {
            assert_eq!(leftover_pid(other), None, "{other}");
        }
    }
}
