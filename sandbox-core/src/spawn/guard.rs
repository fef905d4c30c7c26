//! The guard of a half-started sandbox: until the spawn succeeds it owns the cloned child
//! and the plan whose memory the child may use, and on failure (or when the spawn future is
//! dropped, at any await) kills the child, reaps it, and only then lets the plan go.

use super::prepare::ChildPlan;
use super::reaper;
use crate::{sys, Error, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;

/// Owns a cloned child, and the plan whose memory it may use, until the spawn succeeds;
/// kills and reaps it otherwise (also when the spawn future is dropped, at any await).
pub(super) struct Pending {
    pub pidfd: Option<OwnedFd>,
    pub plan: Option<Box<ChildPlan>>,
}

/// Waits for the process behind `fd` to end and reaps it, through a duplicate: if this
/// future is dropped, the original stays with its owner, which then hands it to the reaper.
async fn reap(fd: &OwnedFd) -> std::io::Result<i32> {
    wait_reaped(fd.try_clone()?).await
}

impl Pending {
    /// Kills the child (and a relayed sibling) and waits until they are reaped, so a failed
    /// spawn leaves nothing; only then may the plan go.
    pub(super) async fn kill_and_reap(&mut self) {
        if let Some(fd) = &self.pidfd {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            if reap(fd).await.is_ok() {
                self.pidfd = None;
            }
        }
        if let Some(plan) = &self.plan {
            if let Some(fd) = relayed(plan) {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                if reap(&fd).await.is_ok() {
                    plan.stacks.relayed_pid().store(0, Ordering::SeqCst);
                }
            }
        }
        if self.pidfd.is_none() {
            // Dropping it here hands a sibling that could not be reaped to the reaper.
            drop(self.plan.take().map(|p| KeepPlan(Some(p))));
        }
    }

    /// The spawn succeeded: every process that used the plan has executed (or exited), so
    /// the plan may go. Returns the sandbox's first process: the cloned child (`first`), or,
    /// when the child relayed (entering a PID namespace after the clone), the sibling it
    /// started as the caller's own child, once the relay itself is reaped.
    pub(super) async fn executed(mut self, first: i32) -> Result<(i32, OwnedFd)> {
        let mut pid = first;
        if self.plan.as_ref().is_some_and(|p| p.relay) {
            if let Some(fd) = &self.pidfd {
                if let Err(e) = reap(fd).await {
                    self.kill_and_reap().await;
                    return Err(Error::os("reap the first child", e));
                }
            }
            self.pidfd = None;
            let inner = self
                .plan
                .as_deref()
                .map_or(0, |p| p.stacks.relayed_pid().load(Ordering::SeqCst));
            match sys::pidfd_open(inner) {
                Ok(fd) if inner > 0 => {
                    self.pidfd = Some(fd);
                    if let Some(p) = &self.plan {
                        p.stacks.relayed_pid().store(0, Ordering::SeqCst);
                    }
                    pid = inner;
                }
                _ => {
                    self.kill_and_reap().await;
                    return Err(Error::os(
                        "find the sandbox's process",
                        std::io::Error::from_raw_os_error(libc::ESRCH),
                    ));
                }
            }
        }
        self.plan = None;
        match self.pidfd.take() {
            Some(pidfd) => Ok((pid, pidfd)),
            None => Err(Error::os("clone3", std::io::Error::other("pidfd lost"))),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        match (self.pidfd.take(), self.plan.take()) {
            (Some(fd), Some(plan)) => abandon(fd, plan),
            (Some(fd), None) => {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                reaper::adopt(fd);
            }
            (None, Some(plan)) => drop(KeepPlan(Some(plan))),
            (None, None) => {}
        }
    }
}

/// A pidfd for the process a relay started, if it exists (it is the caller's own child,
/// `CLONE_PARENT`, so its pid cannot be reused before it is reaped).
fn relayed(plan: &ChildPlan) -> Option<OwnedFd> {
    let pid = plan.stacks.relayed_pid().load(Ordering::SeqCst);
    (pid > 0).then(|| sys::pidfd_open(pid).ok()).flatten()
}

/// Keeps a plan alive until every process that may use its memory is gone.
struct KeepPlan(Option<Box<ChildPlan>>);

impl Drop for KeepPlan {
    fn drop(&mut self) {
        // Runs on the reaper thread once the first child is reaped: a sibling it started
        // (before dying) may still use the plan.
        if let Some(plan) = self.0.take() {
            if let Some(fd) = relayed(&plan) {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                plan.stacks.relayed_pid().store(0, Ordering::SeqCst);
                reaper::adopt_with(fd, Some(Box::new(KeepPlan(Some(plan)))));
            }
        }
    }
}

/// Kills an abandoned child and hands it to the reaper with its plan.
pub(crate) fn abandon(pidfd: OwnedFd, plan: Box<ChildPlan>) {
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    reaper::adopt_with(pidfd, Some(Box::new(KeepPlan(Some(plan)))));
}

/// Waits (asynchronously) for the process behind `pidfd` to end, and reaps it.
pub(crate) async fn wait_reaped(pidfd: OwnedFd) -> std::io::Result<i32> {
    let afd = sys::async_pidfd(pidfd).map_err(|(_, e)| e)?;
    loop {
        let mut guard = afd.readable().await?;
        if let Some(st) = sys::waitid_pidfd(afd.get_ref().as_fd(), true)? {
            return Ok(st);
        }
        guard.clear_ready();
    }
}
