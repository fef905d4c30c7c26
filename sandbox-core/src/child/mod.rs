//! [`Child`]: the handle of a running sandbox — waiting, signals, its namespaces — and, in
//! the files beside this one, how it is started (`start`: `Command::spawn`, `status`,
//! `output`), how a run ended (`outcome`), its output (`output`), the tasks that watch it
//! (`watchdog`), its network (`network`) and `exec` into it (`exec`).

mod exec;
mod network;
mod outcome;
mod output;
mod start;
mod watchdog;

pub use outcome::{Ending, Outcome};
pub use output::Output;

use crate::ns::{KeptNamespace, NamespaceIds};
use crate::sandbox::Hardening;
use crate::spawn::report::{StatusFrame, STATUS_EXIT, STATUS_LEN};
use crate::spawn::timeline::Recorder;
use crate::spawn::{reaper, Spawned};
use crate::{sys, Error, Namespace, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use watchdog::{reap_early, watchdog, Early, Verdict};

/// A running sandbox, as `tokio::process::Child` is a running process.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sandbox_core::Result<()> {
/// use sandbox_core::{Command, Ending, Sandbox, Stdio};
/// use tokio::io::AsyncBufReadExt;
/// let mut child = Sandbox::new()
///     .command("/bin/sh")
///     .arg("-c")
///     .arg("echo ready; sleep 60")
///     .stdout(Stdio::piped())
///     .spawn()
///     .await?;
/// let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
/// assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
/// // Another program in the same sandbox, as `docker exec` does.
/// let mut cmd = Command::new("/bin/hostname");
/// cmd.stdout(Stdio::piped());
/// let out = child.exec(&cmd).await?.wait_with_output().await?;
/// assert_eq!(out.stdout, b"sandbox\n");
/// // The whole sandbox ends with its init.
/// child.kill().await?;
/// assert_eq!(child.wait().await?.ending, Ending::Signaled(libc::SIGKILL));
/// # Ok(()) }
/// ```
///
/// Waiting uses the sandbox's pidfd registered with tokio's reactor: no SIGCHLD handler, no
/// thread per sandbox. Signals go through the pidfd too, so they can never reach a recycled
/// pid.
///
/// # Caveats
/// Dropping a `Child` kills the whole sandbox (unless
/// [`Command::kill_on_drop`](crate::Command::kill_on_drop) was set to `false`) and reaps it
/// in the background. The sandbox also dies, by `PR_SET_PDEATHSIG`,
/// when the process that spawned it dies, even by SIGKILL.
///
/// The application must not set SIGCHLD to `SIG_IGN` or reap every child with
/// `waitpid(-1)`: either takes the sandbox's status away.
#[derive(Debug)]
pub struct Child {
    /// The program's standard input, when it was [`Stdio::piped`](crate::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The program's standard output, when piped.
    pub stdout: Option<ChildStdout>,
    /// The program's standard error, when piped.
    pub stderr: Option<ChildStderr>,
    /// The caller's side of the program's terminal, when a stream was
    /// [`Stdio::pty`](crate::Stdio::pty).
    pub pty: Option<crate::Pty>,
    pid: u32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    outcome: Option<Outcome>,
    status: Option<OwnedFd>,
    kill_on_drop: bool,
    started: Instant,
    network: Option<sandbox_net::Attachment>,
    /// Interfaces added to the running sandbox with [`Child::attach`].
    attached: Vec<sandbox_net::Attachment>,
    own_netns: bool,
    limits: crate::Limits,
    /// Why the parent killed the sandbox, if it did.
    verdict: Verdict,
    cgroup: Option<crate::limits::cgroup::Cgroup>,
    /// Reaped by a task of its own as soon as it ends (see [`Early`]).
    early: Option<Early>,
    /// What a process exec'd into the sandbox is held by.
    hardening: Hardening,
    /// When each stage of the spawn, and of the wait, ended (the `timeline` feature).
    timeline: Recorder,
    /// A run in a reused pool's sandbox: its end comes on `control`, and the sandbox goes
    /// back to the pool (the `pidfd` is a copy of its init's, never reaped here).
    lease: Option<Box<dyn crate::spawn::serve::Lease>>,
    control: Option<AsyncFd<OwnedFd>>,
    /// A signal was sent to a reused pool's run: its sandbox is not reused (the signal
    /// could land after the program's end, on the init).
    signalled: std::sync::atomic::AtomicBool,
}

/// A reused sandbox's report on its control socket: the program's wait status, and
/// whether the init reset the sandbox.
#[derive(Clone, Copy, Debug)]
struct LeasedEnd {
    status: i32,
    clean: bool,
}

/// Registers a copy of a reused sandbox's control socket with the runtime.
fn lease_control(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<AsyncFd<OwnedFd>> {
    let dup = fd.try_clone_to_owned()?;
    let flags = nix::fcntl::fcntl(&dup, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&dup, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    sys::async_readable(dup).map_err(|(_, e)| e)
}

/// Reads the report of a reused sandbox's init: `{"SBXS", status, clean, 0}`, one message.
/// `Ok(None)` at end of file (the init is gone).
fn read_status(fd: &OwnedFd) -> std::io::Result<Option<LeasedEnd>> {
    let mut buf = [0u8; 16];
    let n = nix::sys::socket::recv(
        std::os::fd::AsRawFd::as_raw_fd(fd),
        &mut buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    )?;
    if n == 0 {
        return Ok(None);
    }
    let w = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    if n != 16 || w(0) != STATUS_EXIT {
        return Err(std::io::Error::other(
            "a malformed report from a pooled sandbox",
        ));
    }
    Ok(Some(LeasedEnd {
        status: w(4) as i32,
        clean: w(8) == 1,
    }))
}

fn pipe_end<T>(
    fd: Option<OwnedFd>,
    conv: impl FnOnce(OwnedFd) -> std::io::Result<T>,
) -> Result<Option<T>> {
    fd.map(conv)
        .transpose()
        .map_err(|e| Error::os("register a stdio pipe", e))
}

impl Child {
    /// Takes over a started sandbox. On failure it kills the sandbox and hands it to the
    /// reaper itself, so nothing is left behind.
    pub(crate) fn from_spawned(p: Spawned) -> Result<Child> {
        // A reused pool's run holds only a copy of its init's pidfd: its lease (dropped with
        // `p`) lets the sandbox go, and the pool's side reaps it.
        let leased = p.lease.is_some();
        let give_up = |e: Error, pidfd: OwnedFd| {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            if !leased {
                reaper::adopt(pidfd);
            }
            e
        };
        let stdio = (|| {
            Ok::<_, Error>((
                pipe_end(p.stdin, |fd| {
                    ChildStdin::from_std(std::process::ChildStdin::from(fd))
                })?,
                pipe_end(p.stdout, |fd| {
                    ChildStdout::from_std(std::process::ChildStdout::from(fd))
                })?,
                pipe_end(p.stderr, |fd| {
                    ChildStderr::from_std(std::process::ChildStderr::from(fd))
                })?,
                pipe_end(p.pty, crate::Pty::new)?,
            ))
        })();
        let (stdin, stdout, stderr, pty) = match stdio {
            Ok(s) => s,
            Err(e) => return Err(give_up(e, p.pidfd)),
        };
        // Wall time and the whole sandbox's CPU time: a watchdog of its own, so they hold
        // whether anyone waits or not (try_wait, a dropped Child without kill-on-drop).
        let verdict = Verdict::default();
        let cpu = match (p.limits.cpu_time, &p.cgroup, &p.lease) {
            (Some(limit), Some(cg), _) => Some((limit, cg.cpu_meter())),
            (Some(limit), None, Some(lease)) => lease.cpu_meter().map(|m| (limit, m)),
            _ => None,
        };
        let control = match &p.lease {
            Some(lease) => match lease
                .control()
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EBADF))
                .and_then(lease_control)
            {
                Ok(fd) => Some(fd),
                Err(e) => return Err(give_up(Error::os("watch the pooled sandbox", e), p.pidfd)),
            },
            None => None,
        };
        if p.limits.wall_time.is_some() || cpu.is_some() {
            let watched = p
                .pidfd
                .try_clone()
                .and_then(|dup| sys::async_pidfd(dup).map_err(|(_, e)| e));
            match watched {
                Ok(fd) => {
                    tokio::spawn(watchdog(
                        fd,
                        p.started,
                        p.limits.wall_time,
                        cpu,
                        verdict.clone(),
                    ));
                }
                Err(e) => return Err(give_up(Error::os("watch the sandbox's limits", e), p.pidfd)),
            }
        }
        let early = if p.reap_early {
            match reap_early(&p.pidfd) {
                Ok(e) => Some(e),
                Err(e) => return Err(give_up(Error::os("watch the process", e), p.pidfd)),
            }
        } else {
            None
        };
        let pidfd = match sys::async_pidfd(p.pidfd) {
            Ok(fd) => fd,
            Err((fd, e)) => return Err(give_up(Error::os("register the pidfd", e), fd)),
        };
        Ok(Child {
            stdin,
            stdout,
            stderr,
            pty,
            pid: p.pid,
            pidfd: Some(pidfd),
            outcome: None,
            status: p.status,
            kill_on_drop: p.kill_on_drop,
            started: p.started,
            network: p.network,
            attached: Vec::new(),
            own_netns: p.own_netns,
            limits: p.limits,
            verdict,
            cgroup: p.cgroup,
            early,
            hardening: p.hardening,
            timeline: p.timeline,
            lease: p.lease,
            control,
            signalled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// When each stage of this sandbox's spawn ended — in the caller, in the child (one mark
    /// per step of its mount plan) — and, once [`Child::wait`] has returned, of the wait: the
    /// end seen, the outcome read, the cgroup handed over for removal. For finding where the
    /// time of a spawn goes; `benches/spawn_loop.rs --timeline` prints the medians over many
    /// spawns.
    #[cfg(feature = "timeline")]
    pub fn timeline(&self) -> &crate::Timeline {
        &self.timeline
    }

    fn verdict(&self) -> Option<Ending> {
        self.verdict.ending()
    }

    /// Reaps the process if it has ended (its raw wait status), or learns the status the
    /// early reaper recorded.
    fn reap_now(&self, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Option<i32>> {
        let Some(early) = &self.early else {
            return sys::waitid_pidfd(fd, true);
        };
        let mut st = early.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(raw) = *st {
            return Ok(Some(raw));
        }
        let r = sys::waitid_pidfd(fd, true);
        if let Ok(Some(raw)) = r {
            *st = Some(raw);
        }
        r
    }

    /// The host pid of the sandbox's first process (its init, or the program with
    /// `init(false)`), or `None` once it has been reaped.
    pub fn id(&self) -> Option<u32> {
        self.live_pid().ok().map(|(pid, _)| pid)
    }

    /// The pidfd of the sandbox's first process, while it is not reaped.
    ///
    /// A run of a reused [`Pool`](crate::Pool) shares its init with the runs after it:
    /// signal it through [`Child::signal`] or [`Child::kill`] (which take the sandbox out
    /// of the pool), not through this descriptor or [`Child::id`].
    pub fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.get_ref().as_fd())
    }

    fn finish(&mut self, raw: i32) -> Outcome {
        // The init sent the program's own status before exiting. It is reaped, so every
        // writer of the pipe is gone: the frame is there, or never will be.
        let mut status = raw;
        if let Some(fd) = self.status.take() {
            let mut buf = [0u8; STATUS_LEN];
            let mut got = 0;
            while got < STATUS_LEN {
                match nix::unistd::read(&fd, &mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => break,
                }
            }
            let f = StatusFrame::from_bytes(&buf);
            if got == STATUS_LEN && f.kind == STATUS_EXIT {
                status = f.value;
            }
        }
        let outcome = self.judge(status, self.verdict());
        // Its addresses are free again; its veth pairs go with its network namespace.
        drop(self.network.take());
        self.attached.clear();
        self.pidfd = None;
        self.outcome = Some(outcome);
        outcome
    }

    /// How the run ended, from the program's wait status, what its cgroup counted, and the
    /// watchdog's verdict.
    fn judge(&self, status: i32, verdict: Option<Ending>) -> Outcome {
        let mut outcome = Outcome::from_wait_status(status, self.started.elapsed());
        let killed = outcome.ending == Ending::Signaled(libc::SIGKILL);
        let mut cpu_used = None;
        let usage = match (&self.cgroup, &self.lease) {
            (Some(cg), _) => Some((cg.usage(), None)),
            (None, Some(lease)) => lease.usage().map(|(u, ooms)| (u, Some(ooms))),
            _ => None,
        };
        if let Some((u, ooms)) = usage {
            outcome.cpu_user = Some(u.cpu_user);
            outcome.cpu_system = Some(u.cpu_system);
            outcome.peak_memory = u.peak_memory;
            cpu_used = Some(u.cpu_user + u.cpu_system);
            // The program itself was killed by the kernel for the sandbox's memory limit
            // (a helper killed while the program exited on its own is not the run's end).
            if killed && verdict.is_none() && self.limits.memory.is_some() {
                let oom = match (ooms, &self.cgroup) {
                    (Some(n), _) => n > 0,
                    (None, Some(cg)) => cg.oom_killed(),
                    (None, None) => false,
                };
                if oom {
                    outcome.ending = Ending::OutOfMemory;
                }
            }
        }
        if let (Some(v), true) = (verdict, killed) {
            // (A program that exited on its own just as the limit came is not blamed.)
            outcome.ending = v;
        } else if let Some(limit) = self.limits.cpu_time {
            // SIGXCPU is RLIMIT_CPU's; a SIGKILL counts only when the CPU time was spent
            // (not the caller's kill(), nor an outside one).
            let spent = cpu_used.is_some_and(|u| u + Duration::from_millis(10) >= limit);
            let xcpu = outcome.ending == Ending::Signaled(libc::SIGXCPU);
            if xcpu || (killed && spent) {
                outcome.ending = Ending::CpuTimeExceeded;
            }
        }
        outcome
    }

    /// Waits for a reused pool's run: its init's report on the control socket, or the
    /// init's end (killed: by [`Child::kill`], the watchdog, or from outside).
    async fn wait_leased(&mut self) -> Result<Outcome> {
        loop {
            if let Some(o) = self.outcome {
                return Ok(o);
            }
            let (Some(ctl), Some(fd)) = (self.control.as_ref(), self.pidfd.as_ref()) else {
                return Err(Error::Reaped);
            };
            let frame = tokio::select! {
                ready = ctl.readable() => {
                    let mut guard = ready.map_err(|e| Error::os("wait for the sandbox", e))?;
                    match read_status(ctl.get_ref()) {
                        Ok(f) => Some(f),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            None
                        }
                        Err(e) => return Err(Error::os("read the pooled sandbox's report", e)),
                    }
                }
                ready = fd.readable() => {
                    drop(ready);
                    // Its report may have come just before it ended.
                    Some(read_status(ctl.get_ref()).ok().flatten())
                }
            };
            if let Some(f) = frame {
                self.timeline.mark("wait: the pooled sandbox's report read");
                return Ok(self.finish_leased(f));
            }
        }
    }

    /// Ends a reused pool's run: `frame` is its init's report (`None`: the init ended
    /// without one, killed). The sandbox goes back to its pool only when the init reset it
    /// and the watchdog did not kill it.
    fn finish_leased(&mut self, frame: Option<LeasedEnd>) -> Outcome {
        // From here the watchdog cannot kill: the sandbox may serve another run soon.
        let verdict = self.verdict.close();
        let status = frame.map_or(libc::SIGKILL, |f| f.status);
        let outcome = self.judge(status, verdict);
        let signalled = self.signalled.load(std::sync::atomic::Ordering::Relaxed);
        let reusable = frame.is_some_and(|f| f.clean) && verdict.is_none() && !signalled;
        self.pidfd = None;
        self.control = None;
        if let Some(lease) = self.lease.take() {
            lease.end(reusable);
        }
        self.outcome = Some(outcome);
        outcome
    }

    /// Waits for the sandbox to end and returns how the program ended. Closes the program's
    /// stdin first, so it cannot wait for input that will never come. Calling it again
    /// returns the same outcome.
    pub async fn wait(&mut self) -> Result<Outcome> {
        drop(self.stdin.take());
        if self.control.is_some() {
            return self.wait_leased().await;
        }
        loop {
            if let Some(o) = self.outcome {
                return Ok(o);
            }
            let Some(fd) = self.pidfd.as_ref() else {
                return Err(Error::Reaped);
            };
            // The limits are enforced by the sandbox's watchdog task, waited for or not.
            let ready = fd.readable().await;
            let mut guard = ready.map_err(|e| Error::os("wait for the sandbox", e))?;
            match self.reap_now(fd.get_ref().as_fd()) {
                Ok(Some(raw)) => {
                    drop(guard);
                    self.timeline.mark("wait: ended and reaped");
                    let outcome = self.finish(raw);
                    self.timeline.mark("wait: outcome read");
                    if let Some(cg) = self.cgroup.take() {
                        // Kill what is left, remove it (it may wait for exiting processes):
                        // in the background, or here off the runtime's threads.
                        if cg.removes_in_background() {
                            drop(cg);
                            self.timeline.mark("wait: cgroup handed over for removal");
                        } else {
                            let _ = tokio::task::spawn_blocking(move || drop(cg)).await;
                            self.timeline.mark("wait: cgroup removed");
                        }
                    }
                    return Ok(outcome);
                }
                Ok(None) => guard.clear_ready(),
                Err(e) => return Err(Error::os(format!("waitid {}", self.pid), e)),
            }
        }
    }

    /// Returns the outcome if the sandbox has ended, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<Outcome>> {
        if let Some(o) = self.outcome {
            return Ok(Some(o));
        }
        if let (Some(ctl), Some(fd)) = (self.control.as_ref(), self.pidfd.as_ref()) {
            let frame = read_status(ctl.get_ref());
            return match frame {
                Ok(Some(f)) => Ok(Some(self.finish_leased(Some(f)))),
                Ok(None) => Ok(Some(self.finish_leased(None))),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if sys::pidfd_exited(fd.get_ref().as_fd()) {
                        Ok(Some(self.finish_leased(None)))
                    } else {
                        Ok(None)
                    }
                }
                Err(e) => Err(Error::os("read the pooled sandbox's report", e)),
            };
        }
        let Some(fd) = self.pidfd.as_ref() else {
            return Err(Error::Reaped);
        };
        match self.reap_now(fd.get_ref().as_fd()) {
            Ok(Some(raw)) => Ok(Some(self.finish(raw))),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::os(format!("waitid {}", self.pid), e)),
        }
    }

    /// Sends `signal` to the sandbox's first process: its init, which passes SIGTERM, SIGINT,
    /// SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on to the program. SIGKILL ends the whole
    /// sandbox when it has a PID namespace of its own (the default); with the caller's PID
    /// namespace shared, it ends the init and the program; processes the program started
    /// and left behind are then killed with the sandbox's cgroup when it has one (limits
    /// that need one), and are not tracked otherwise.
    pub fn signal(&self, signal: i32) -> Result<()> {
        let Some(fd) = self.pidfd.as_ref() else {
            return Err(Error::Reaped);
        };
        if self.lease.is_some() {
            self.signalled
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        sys::pidfd_send_signal(fd.get_ref().as_fd(), signal)
            .map_err(|e| Error::os(format!("signal {signal} to {}", self.pid), e))
    }

    /// Kills the sandbox without waiting (SIGKILL to its PID 1, which takes down its whole
    /// PID namespace; see [`Child::signal`]). Succeeds if it has already ended.
    pub fn start_kill(&mut self) -> Result<()> {
        match self.signal(libc::SIGKILL) {
            Err(Error::Reaped) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// Kills the whole sandbox and waits for it to be gone.
    pub async fn kill(&mut self) -> Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// The host pid of the sandbox's process, while it is not reaped (so the pid cannot
    /// have been reused), with the early reaper's lock when it has one: held while the
    /// pid's `/proc` entries are used, it keeps the process from being reaped meanwhile.
    fn live_pid(&self) -> Result<(u32, Option<std::sync::MutexGuard<'_, Option<i32>>>)> {
        if self.pidfd.is_none() {
            return Err(Error::Reaped);
        }
        match &self.early {
            None => Ok((self.pid, None)),
            Some(e) => {
                let st = e.lock().unwrap_or_else(|e| e.into_inner());
                if st.is_some() {
                    return Err(Error::Reaped);
                }
                Ok((self.pid, Some(st)))
            }
        }
    }

    /// The identities of the sandbox's namespaces (the inode numbers of `/proc/<pid>/ns/*`).
    pub fn namespace_ids(&self) -> Result<NamespaceIds> {
        let (pid, _held) = self.live_pid()?;
        NamespaceIds::of_pid(pid).map_err(|e| Error::os(format!("read /proc/{pid}/ns"), e))
    }

    /// Keeps one of the sandbox's namespaces alive after its processes end, by bind-mounting
    /// its `/proc/<pid>/ns/<kind>` file on `path` (a new file), as `ip netns add` does.
    /// Join it later with [`Sandbox::join`](crate::Sandbox::join); remove it with
    /// [`KeptNamespace::remove`].
    pub fn keep_namespace(
        &self,
        namespace: Namespace,
        path: impl AsRef<Path>,
    ) -> Result<KeptNamespace> {
        let path = path.as_ref();
        if self.lease.is_some() {
            return Err(Error::Unsupported(
                "keeping a namespace of a reused pool's sandbox (later runs share it)".into(),
            ));
        }
        let (pid, _held) = self.live_pid()?;
        if namespace == Namespace::Net && (self.network.is_some() || !self.attached.is_empty()) {
            return Err(Error::Conflict(
                "the network namespace of a bridged sandbox (or one with attached interfaces) \
                 cannot be kept: its addresses go back to their bridges when the sandbox ends"
                    .into(),
            ));
        }
        let source = format!("/proc/{pid}/ns/{}", namespace.proc_name());
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::os(format!("create {}", path.display()), e))?;
        let mounted = nix::mount::mount(
            Some(source.as_str()),
            path,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        );
        if let Err(e) = mounted {
            let _ = std::fs::remove_file(path);
            return Err(Error::os(
                format!("bind {source} on {}", path.display()),
                e.into(),
            ));
        }
        Ok(KeptNamespace::new(namespace, path.to_path_buf()))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            // A reused pool's run not waited for: the sandbox is let go (killed and reaped
            // by its pool's side; the pidfd here is only a copy).
            self.verdict.close();
            self.pidfd = None;
            lease.end(false);
            return;
        }
        if self.pidfd.is_none() {
            // Already reaped (try_wait): remove the cgroup off this (maybe runtime) thread.
            if let Some(cg) = self.cgroup.take() {
                if cg.removes_in_background() {
                    drop(cg);
                } else {
                    let _ = std::thread::Builder::new()
                        .name("sandbox-cgroup".into())
                        .spawn(move || drop(cg));
                }
            }
        }
        if let Some(fd) = self.pidfd.take() {
            if self.kill_on_drop {
                let _ = sys::pidfd_send_signal(fd.get_ref().as_fd(), libc::SIGKILL);
            }
            // Its bridge addresses stay taken until it has ended (it may run on, without
            // kill-on-drop): the reaper holds them until then.
            // Its cgroup is killed and removed once it is reaped.
            let held = (
                self.network.take(),
                std::mem::take(&mut self.attached),
                self.cgroup.take(),
            );
            let keep: Option<Box<dyn std::any::Any + Send>> =
                if held.0.is_some() || !held.1.is_empty() || held.2.is_some() {
                    Some(Box::new(held))
                } else {
                    None
                };
            reaper::adopt_with(fd.into_inner(), keep);
        }
    }
}
