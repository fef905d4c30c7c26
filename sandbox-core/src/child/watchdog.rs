//! The tasks that watch a running sandbox on the caller's runtime: the watchdog that
//! enforces its wall and CPU time, and the early reaper of a process exec'd into it.

use super::Ending;
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// Why the parent killed the sandbox, if it did: set by its watchdog.
pub(super) type Verdict = std::sync::Arc<Watch>;

/// What the watchdog and the handle share.
#[derive(Debug, Default)]
pub(super) struct Watch {
    state: std::sync::Mutex<WatchState>,
    /// Wakes the watchdog when the run is over.
    over: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Why the watchdog killed the sandbox.
    ending: Option<Ending>,
    /// The run is over (a reused sandbox's program ended and the sandbox may already serve
    /// another): the watchdog must not kill any more.
    over: bool,
}

impl Watch {
    /// Why the watchdog killed the sandbox, if it did.
    pub(super) fn ending(&self) -> Option<Ending> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).ending
    }

    /// Ends the watch (a reused sandbox's run is over) and says whether the watchdog killed
    /// the sandbox before: under one lock, so it cannot kill after.
    pub(super) fn close(&self) -> Option<Ending> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.over = true;
        self.over.notify_waiters();
        st.ending
    }

    /// Records `why` and kills through `fd`, unless the run is over.
    fn kill(&self, fd: std::os::fd::BorrowedFd<'_>, why: Ending) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.over || sys::pidfd_exited(fd) {
            return;
        }
        st.ending.get_or_insert(why);
        let _ = sys::pidfd_send_signal(fd, libc::SIGKILL);
    }
}

/// Enforces a sandbox's wall time and whole-sandbox CPU time until it ends (or, for a
/// reused sandbox's run, until the run is over: [`Watch::close`]): at the limit it records
/// the verdict, then kills the sandbox's first process (the init, PID 1 of the sandbox's
/// namespace, takes every process with it). The CPU time is read when it could
/// next have run out (the time left, spread over every core), at least every 100 ms.
pub(super) async fn watchdog(
    fd: AsyncFd<OwnedFd>,
    started: Instant,
    wall: Option<Duration>,
    cpu: Option<(Duration, crate::limits::cgroup::CpuMeter)>,
    verdict: Verdict,
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let kill = |why: Ending| verdict.kill(fd.get_ref().as_fd(), why);
    loop {
        let mut next = wall.map(|w| started + w);
        if let Some((limit, meter)) = &cpu {
            let used = meter.read();
            if used >= *limit {
                kill(Ending::CpuTimeExceeded);
                return;
            }
            let step = (limit.saturating_sub(used) / cores)
                .clamp(Duration::from_millis(2), Duration::from_millis(100));
            let at = Instant::now() + step;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        let Some(at) = next else { return };
        let over = verdict.over.notified();
        tokio::pin!(over);
        over.as_mut().enable();
        if verdict.state.lock().unwrap_or_else(|e| e.into_inner()).over {
            return;
        }
        tokio::select! {
            _ = fd.readable() => return,
            _ = over => return,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
        }
        if wall.is_some_and(|w| started.elapsed() >= w) {
            kill(Ending::WallTimeExceeded);
            return;
        }
    }
}

/// The wait status of a process reaped as soon as it ended, by a task of its own.
///
/// A process in a PID namespace whose init it is not, with its parent outside (an exec
/// into a sandbox: the caller is its parent), must not stay a zombie: the namespace's
/// init cannot finish exiting until every such process is reaped, so a sandbox whose exec'd
/// process nobody waits for yet would never end.
pub(super) type Early = std::sync::Arc<std::sync::Mutex<Option<i32>>>;

/// Starts the task that reaps `pidfd`'s process when it ends.
pub(super) fn reap_early(pidfd: &OwnedFd) -> std::io::Result<Early> {
    let fd = sys::async_pidfd(pidfd.try_clone()?).map_err(|(_, e)| e)?;
    let state: Early = std::sync::Arc::default();
    let status = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
            if st.is_some() {
                return;
            }
            match sys::waitid_pidfd(fd.get_ref().as_fd(), true) {
                Ok(Some(raw)) => {
                    *st = Some(raw);
                    return;
                }
                Ok(None) => ready.clear_ready(),
                // Reaped meanwhile by its Child (which then recorded it) or the reaper.
                Err(_) => return,
            }
        }
    });
    Ok(state)
}
