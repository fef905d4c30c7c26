//! The spawner thread: the only place a sandbox's first process is cloned.
//!
//! `clone3` is issued from one dedicated, long-lived thread owned by the library, never from
//! a tokio worker: `PR_SET_PDEATHSIG` fires when the *thread* that cloned exits (a
//! `spawn_blocking` thread exits after 10 s idle), and a plain thread carries no runtime
//! state into the child. The thread keeps every signal blocked, so children start with
//! every signal blocked and no handler of ours can run in them.
//!
//! The clone shares the caller's memory (`CLONE_VM`, as `posix_spawn` does) and runs the
//! child on a stack of its own: nothing is copied, so the cost of a spawn does not grow with
//! the caller's memory, and no page of the caller becomes copy-on-write.

use super::child;
use super::prepare::ChildPlan;
use crate::sys::{self, CloneArgs};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use tokio::sync::oneshot;

/// A freshly cloned child: its host pid and a pidfd for it.
#[derive(Debug)]
pub(crate) struct Cloned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// The spawner's answer. Whoever drops it without taking the child out (a spawn future
/// dropped before or after the answer arrived) kills the child and hands it, with the plan
/// whose memory it may still use, to the reaper.
pub(crate) struct Reply(Option<(io::Result<Cloned>, Box<ChildPlan>)>);

impl Reply {
    fn take(mut self) -> (io::Result<Cloned>, Box<ChildPlan>) {
        match self.0.take() {
            Some(r) => r,
            None => unreachable!("a reply is taken once"),
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some((Ok(cloned), plan)) = self.0.take() {
            super::abandon(cloned.pidfd, plan);
        }
    }
}

struct Job {
    plan: Box<ChildPlan>,
    /// The child's ends of the pipes: closed here right after the clone.
    child_fds: Vec<OwnedFd>,
    reply: oneshot::Sender<Reply>,
}

static SPAWNER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// Jobs submitted and not yet done with: a job holds the child's fds (and, once cloned and
/// abandoned, a child) that no spawn future owns any more.
static QUEUED: AtomicUsize = AtomicUsize::new(0);

/// How many jobs the spawner has yet to finish (see [`super::pending`]).
#[cfg(feature = "test-hooks")]
pub(crate) fn queued() -> usize {
    QUEUED.load(Ordering::SeqCst)
}

fn submit(job: Job) -> io::Result<()> {
    let mut guard = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sandbox-spawner".into())
            .spawn(move || serve(rx))?;
        *guard = Some(tx);
    }
    QUEUED.fetch_add(1, Ordering::SeqCst);
    match guard.as_ref().map(|tx| tx.send(job)) {
        Some(Ok(())) => Ok(()),
        _ => {
            QUEUED.fetch_sub(1, Ordering::SeqCst);
            Err(io::Error::other("the sandbox spawner thread is gone"))
        }
    }
}

fn serve(rx: mpsc::Receiver<Job>) {
    if let Err(e) = sys::block_all_signals() {
        // Without this a child could run one of the parent's signal handlers: refuse work.
        for job in rx {
            let _ = job.reply.send(Reply(Some((
                Err(io::Error::new(e.kind(), e.to_string())),
                job.plan,
            ))));
            QUEUED.fetch_sub(1, Ordering::SeqCst);
        }
        return;
    }
    for job in rx {
        if job.reply.is_closed() {
            // The spawn future is gone: clone nothing, just close the child's ends.
            drop(job);
            QUEUED.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let plan = job.plan;
        let result = clone_child(&plan);
        // The child has its copies; closing ours lets the parent see end-of-file on the sync
        // channel once the program executes.
        drop(job.child_fds);
        // If the spawn future is gone, the returned reply is dropped here: see `Reply`.
        let _ = job.reply.send(Reply(Some((result, plan))));
        QUEUED.fetch_sub(1, Ordering::SeqCst);
    }
}

fn clone_child(plan: &ChildPlan) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let vm = if plan.share_memory { libc::CLONE_VM } else { 0 };
    /// `CLONE_INTO_CGROUP` (Linux 5.7).
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let (into, cgroup) = if plan.into_cgroup >= 0 {
        (CLONE_INTO_CGROUP, plan.into_cgroup as u64)
    } else {
        (0, 0)
    };
    let args = CloneArgs {
        flags: plan.clone_flags | (libc::CLONE_PIDFD | vm) as u64 | into,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: plan.stacks.first_base() as u64,
        stack_size: plan.stacks.size() as u64,
        cgroup,
        ..Default::default()
    };
    // SAFETY: the child runs `child::run` on the plan's first stack, sharing our memory (or
    // on a copy of it); it only reads the plan, which the caller keeps alive and unchanged
    // until the child has executed or exited (see `ChildPlan`). The parent gets the pid or
    // -errno.
    let r = unsafe { child::clone_onto_stack(&args, child::run, plan) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r as i32));
    }
    // SAFETY: with CLONE_PIDFD the kernel stored a new pidfd, owned by no one else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Cloned {
        pid: r as i32,
        pidfd,
    })
}

/// Clones a child for `plan` on the spawner thread. Returns the plan back, for the parent to
/// describe errors with. If this future is dropped before the reply, the spawner kills and
/// reaps the child itself.
pub(crate) async fn clone(
    plan: Box<ChildPlan>,
    child_fds: Vec<OwnedFd>,
) -> (io::Result<Cloned>, Option<Box<ChildPlan>>) {
    let (tx, rx) = oneshot::channel();
    if let Err(e) = submit(Job {
        plan,
        child_fds,
        reply: tx,
    }) {
        return (Err(e), None);
    }
    match rx.await {
        Ok(reply) => {
            let (r, plan) = reply.take();
            (r, Some(plan))
        }
        Err(_) => (
            Err(io::Error::other(
                "the sandbox spawner thread dropped the request",
            )),
            None,
        ),
    }
}
