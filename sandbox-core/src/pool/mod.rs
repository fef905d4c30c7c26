//! [`Pool`]: sandboxes made ahead of time, so that a run costs a request and an `execve`.

use crate::spawn::serve::{self, Held, Start};
use crate::{Child, Command, Error, Output, Result, Sandbox};
use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

mod reused;

pub use reused::REUSABLE_CAPABILITIES;
use reused::{writable_places, Lent, RESET_WAIT};

/// How long a pool keeps its sandboxes ready without a take, unless told otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The lowest open-files limit a pooled sandbox may have.
const MIN_OPEN_FILES: u64 = 16;

/// How many sandboxes a pool makes at once in the background.
const MAKERS: usize = 2;

/// Sandboxes of one description made ahead of time — namespaces, root filesystem, cgroup
/// and hardening in place, the built-in init waiting — so that running a program costs a
/// request to that init and its `fork` + `execve`, as go-judge keeps pre-forked
/// environments.
///
/// Each pooled sandbox is used **once** (*fresh*): the program gets a sandbox no other
/// program ever ran in, made as [`Command::spawn`] makes one, and the sandbox is torn
/// down when the program ends. Two differences: the program's working directory and stdio
/// are set by the sandbox's init, so under the sandbox's hardening (a spawn sets them just
/// before dropping its capabilities); and that init receives the program over a socket, so
/// a custom seccomp filter must leave it `recvmsg`, `lseek`, `mmap`, `clone`, `dup3`,
/// `chdir` and `execve` (a reused pool's also what its reset calls: `kill`, `wait4`,
/// `openat`, `read`, `getdents64`, `statx`, `unlinkat`, `fchmod`, `utimensat`,
/// `flistxattr`, `fremovexattr`, the `*ctl` calls of System V IPC, `prlimit64`,
/// `sched_getattr`, `sched_getaffinity`; refused, every run's sandbox is let go), and an
/// open-files limit must be 16 or more. What the pool saves is latency: the sandboxes are
/// made in the background (by tasks on the runtime the pool was made on), refilled after
/// each take, and a take finding none ready (a *miss*) spawns cold instead.
///
/// The pool shrinks to nothing after [`Pool::idle_timeout`] without a take and refills on
/// the next one. Dropping the last handle kills every waiting sandbox and removes what
/// each held (cgroup, bridge link), in the background.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sandbox_core::Result<()> {
/// use sandbox_core::{Command, Pool, Sandbox, Stdio};
/// let pool = Pool::new(Sandbox::new().hostname("pooled"), 2).await?;
/// let mut cmd = Command::new("/bin/hostname");
/// cmd.stdout(Stdio::piped());
/// let out = pool.output(&mut cmd).await?;
/// assert_eq!(out.stdout, b"pooled\n");
/// assert!(pool.stats().hits + pool.stats().misses == 1);
/// # Ok(()) }
/// ```
///
/// A pooled program's process side is the command's (program, arguments, environment,
/// working directory, stdio, kill-on-drop); the sandbox is the pool's, whatever the
/// command's own description says. [`Stdio::pty`](crate::Stdio::pty) and
/// [`Command::pass_fd`] are not offered (a typed error).
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// What a pool did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Takes served by a sandbox made ahead.
    pub hits: u64,
    /// Takes that found none ready and spawned cold.
    pub misses: u64,
    /// Sandboxes made ahead (including those discarded since).
    pub made: u64,
    /// Sandboxes let go: made ahead and never used (shrunk away when idle, or found
    /// dead), or, in a reused pool, let go after a run (not clean, killed, signalled).
    pub discarded: u64,
    /// Background makes that failed (a take then spawns cold, and gets the error itself).
    pub failed: u64,
    /// Sandboxes ready now.
    pub ready: usize,
}

#[derive(Debug)]
struct Inner {
    sandbox: Sandbox,
    size: usize,
    /// A reused pool's: the directories each run's reset empties.
    reuse: Option<Vec<CString>>,
    state: Mutex<State>,
    /// Wakes the makers: a take, a change of settings, the end of the pool.
    wake: Arc<Notify>,
    /// The runtime the pool was made on: its background tasks run there.
    runtime: tokio::runtime::Handle,
}

#[derive(Debug)]
struct State {
    ready: VecDeque<Held>,
    /// A reused pool's sandboxes running a program now (they come back).
    lent: usize,
    /// A reused pool's sandboxes whose run is over, being reset by their init (each with
    /// the number its `settle` task knows it by). Held here, so that dropping the pool
    /// kills them at once, as it does the ready ones.
    resetting: Vec<(u64, Held)>,
    /// The number of the next sandbox to be reset.
    next_reset: u64,
    /// How long it keeps its sandboxes without a take.
    idle: Duration,
    making: usize,
    last_take: Instant,
    /// Shrunk after an idle spell: make nothing until the next take.
    asleep: bool,
    stats: PoolStats,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The makers hold only a weak reference: woken, they find the pool gone and end.
        self.wake.notify_waiters();
    }
}

impl Pool {
    /// A pool keeping `size` sandboxes of `sandbox`'s description ready. The first is made
    /// before this returns, so a description that cannot be spawned is refused here, with
    /// the error a spawn would give; the others are made in the background.
    ///
    /// Must be called within a tokio runtime with timers enabled (its makers are tasks,
    /// which sleep until the idle timeout).
    pub async fn new(sandbox: Sandbox, size: usize) -> Result<Pool> {
        Pool::make(sandbox, size, false).await
    }

    async fn make(sandbox: Sandbox, size: usize, reuse: bool) -> Result<Pool> {
        if size == 0 {
            return Err(Error::Invalid {
                what: "pool size",
                reason: "0: a pool keeps at least one sandbox ready".into(),
            });
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Error::Unsupported(
                "a Pool outside a tokio runtime (its sandboxes are made by tasks)".into(),
            ));
        };
        // The init takes the program's five descriptors above its own: an open-files limit
        // must leave it room (a spawn's program would need that much anyway).
        if sandbox
            .limits
            .open_files
            .is_some_and(|n| n < MIN_OPEN_FILES)
        {
            return Err(Error::Invalid {
                what: "open-files limit of a pooled sandbox",
                reason: format!(
                    "below {MIN_OPEN_FILES}: its init receives the program's stdio and \
                     request as descriptors"
                ),
            });
        }
        let first = serve::hold(&sandbox).await?;
        let reuse = if reuse {
            Some(writable_places(&first)?)
        } else {
            None
        };
        let inner = Arc::new(Inner {
            sandbox,
            size,
            reuse,
            state: Mutex::new(State {
                ready: VecDeque::from([first]),
                lent: 0,
                resetting: Vec::new(),
                next_reset: 0,
                idle: DEFAULT_IDLE_TIMEOUT,
                making: 0,
                last_take: Instant::now(),
                asleep: false,
                stats: PoolStats {
                    made: 1,
                    ..PoolStats::default()
                },
            }),
            wake: Arc::new(Notify::new()),
            runtime,
        });
        let pool = Pool { inner };
        pool.start_makers();
        Ok(pool)
    }

    /// Sets how long the pool keeps its sandboxes without a take before it lets them all
    /// go (default [`DEFAULT_IDLE_TIMEOUT`]); the next take refills it.
    pub fn idle_timeout(self, idle: Duration) -> Pool {
        lock(&self.inner.state).idle = idle;
        self.inner.wake.notify_waiters();
        self
    }

    /// The description every sandbox of the pool is made from.
    pub fn sandbox(&self) -> &Sandbox {
        &self.inner.sandbox
    }

    /// How many sandboxes the pool keeps ready.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Hits, misses and the rest, as of now.
    pub fn stats(&self) -> PoolStats {
        let st = lock(&self.inner.state);
        PoolStats {
            ready: st.ready.len(),
            ..st.stats
        }
    }

    /// Runs `cmd`'s program in a sandbox of the pool (one made ahead when one is ready,
    /// else a cold spawn) and returns its handle, as [`Command::spawn`] does.
    pub async fn spawn(&self, cmd: &Command) -> Result<Child> {
        // Checked before the take (refused alike whether a sandbox is ready or not, and a
        // bad command wastes no sandbox).
        let mut request = serve::request(cmd, &self.inner.sandbox)?;
        if let Some(held) = self.take().await {
            match &self.inner.reuse {
                None => match held.run(request, cmd).await? {
                    Start::Started(spawned) => return Child::from_spawned(*spawned),
                    Start::Gone => lock(&self.inner.state).stats.discarded += 1,
                },
                Some(reset) => {
                    request.reuse = true;
                    request.reset = reset.clone();
                    let lent = Lent::new(held, Arc::downgrade(&self.inner));
                    if let Some(child) = lent.start(request, cmd).await? {
                        return Ok(child);
                    }
                }
            }
        }
        Child::from_spawned(serve::spawn_in(cmd, &self.inner.sandbox).await?)
    }

    /// Runs `cmd`'s program in a sandbox of the pool and waits for it, as
    /// [`Command::status`] does.
    pub async fn status(&self, cmd: &Command) -> Result<crate::Outcome> {
        let mut child = self.spawn(cmd).await?;
        drop(child.stdin.take());
        child.wait().await
    }

    /// Runs `cmd`'s program in a sandbox of the pool and collects its output, as
    /// [`Command::output`] does (stdout and stderr piped unless set).
    pub async fn output(&self, cmd: &mut Command) -> Result<Output> {
        if cmd.stdin.is_none() {
            cmd.stdin = Some(crate::Stdio::null());
        }
        if cmd.stdout.is_none() {
            cmd.stdout = Some(crate::Stdio::piped());
        }
        if cmd.stderr.is_none() {
            cmd.stderr = Some(crate::Stdio::piped());
        }
        self.spawn(cmd).await?.wait_with_output().await
    }

    /// A ready sandbox (counted as a hit), or none (a miss); wakes the makers either way.
    /// With none ready but some of a reused pool's being reset (a reset takes well under a
    /// millisecond; a cold spawn a few), it waits up to [`RESET_WAIT`] for one.
    async fn take(&self) -> Option<Held> {
        let deadline = tokio::time::Instant::now() + RESET_WAIT;
        loop {
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a sandbox coming back is not missed.
            notified.as_mut().enable();
            let mut dead = Vec::new();
            let (held, wait) = {
                let mut st = lock(&self.inner.state);
                st.last_take = Instant::now();
                st.asleep = false;
                let mut found = None;
                while let Some(h) = st.ready.pop_front() {
                    if h.alive() {
                        found = Some(h);
                        break;
                    }
                    st.stats.discarded += 1;
                    dead.push(h);
                }
                let wait = found.is_none()
                    && !st.resetting.is_empty()
                    && tokio::time::Instant::now() < deadline;
                match found {
                    Some(_) => {
                        st.stats.hits += 1;
                        if self.inner.reuse.is_some() {
                            st.lent += 1;
                        }
                    }
                    None if !wait => st.stats.misses += 1,
                    None => {}
                }
                (found, wait)
            };
            drop(dead);
            if !wait {
                self.inner.wake.notify_waiters();
                return held;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    fn start_makers(&self) {
        for _ in 0..MAKERS.min(self.inner.size) {
            tokio::spawn(maker(Arc::downgrade(&self.inner), self.inner.wake.clone()));
        }
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a maker does next.
enum Next {
    Make(Box<Sandbox>),
    Wait(Option<Duration>),
}

/// One of the pool's background makers: keeps `size` sandboxes ready, lets them all go
/// after an idle spell, and ends with the pool.
async fn maker(pool: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        // Registered before the state is read, so no wake-up in between is lost.
        notified.as_mut().enable();
        let Some(inner) = pool.upgrade() else { return };
        let (next, shrunk) = plan(&inner);
        drop(inner);
        drop(shrunk);
        match next {
            Next::Make(sandbox) => {
                // Uncounted however the make ends (a panic, the task dropped).
                let making = Making(pool.clone());
                if pool.strong_count() == 0 {
                    return;
                }
                let made = serve::hold(&sandbox).await;
                drop(making);
                let Some(inner) = pool.upgrade() else { return };
                let mut st = lock(&inner.state);
                match made {
                    Ok(h) => {
                        st.stats.made += 1;
                        st.ready.push_back(h);
                        // A take may be waiting for one.
                        inner.wake.notify_waiters();
                    }
                    Err(_) => {
                        st.stats.failed += 1;
                        // Do not spin on a failing description: wait for a take.
                        st.asleep = true;
                    }
                }
            }
            Next::Wait(None) => notified.await,
            Next::Wait(Some(d)) => {
                let _ = tokio::time::timeout(d, notified).await;
            }
        }
    }
}

/// A make in progress, counted in [`State::making`] until dropped.
struct Making(Weak<Inner>);

impl Drop for Making {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            let mut st = lock(&inner.state);
            st.making = st.making.saturating_sub(1);
        }
    }
}

/// Decides a maker's next step under the lock, and takes out what an idle spell lets go
/// (dropped, i.e. killed, outside the lock).
fn plan(inner: &Inner) -> (Next, Vec<Held>) {
    let mut st = lock(&inner.state);
    let idle_for = st.last_take.elapsed();
    if idle_for >= st.idle && !st.ready.is_empty() {
        let gone: Vec<Held> = st.ready.drain(..).collect();
        st.stats.discarded += gone.len() as u64;
        st.asleep = true;
        return (Next::Wait(None), gone);
    }
    if !st.asleep && st.ready.len() + st.making + st.lent + st.resetting.len() < inner.size {
        st.making += 1;
        return (Next::Make(Box::new(inner.sandbox.clone())), Vec::new());
    }
    let until_idle = (!st.ready.is_empty()).then(|| st.idle - idle_for);
    (Next::Wait(until_idle), Vec::new())
}
