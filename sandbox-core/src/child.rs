//! [`Child`]: the handle of a running sandbox, and [`Outcome`]: how a run ended.

use crate::command::Output;
use crate::ns::{KeptNamespace, NamespaceIds};
use crate::spawn::report::{StatusFrame, STATUS_EXIT, STATUS_LEN};
use crate::{reaper, sys, Command, Error, Namespace, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ending {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal.
    Signaled(i32),
    /// The wall-time limit passed: the parent killed the sandbox.
    WallTimeExceeded,
    /// The CPU-time limit was used up (the program was killed by `SIGXCPU`, or by
    /// `SIGKILL` at the hard limit).
    CpuTimeExceeded,
    /// A captured stream passed the output limit: the parent killed the sandbox.
    OutputLimitExceeded,
    /// The sandbox needed more memory than its limit: the kernel killed it.
    OutOfMemory,
}

/// The outcome of a sandboxed run: how it ended and how long it took.
///
/// With the built-in init, this is the *program's* status (not the init's): a program killed
/// by SIGSEGV reports `Signaled(11)` even though PID 1 itself cannot die of a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// From the start of the spawn to the end of the sandbox.
    #[serde(rename = "wall_time_ms", with = "millis")]
    pub wall_time: Duration,
    /// User CPU time of the whole sandbox (every process and thread), when it had a cgroup
    /// (any of the memory, pids, cpus or CPU-time limits).
    #[serde(
        rename = "cpu_user_ms",
        with = "opt_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_user: Option<Duration>,
    /// System CPU time of the whole sandbox, likewise.
    #[serde(
        rename = "cpu_system_ms",
        with = "opt_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_system: Option<Duration>,
    /// Peak memory of the whole sandbox in bytes, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory: Option<u64>,
    /// A captured stream was cut at the output limit.
    #[serde(default)]
    pub output_truncated: bool,
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64() * 1e3),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = Option::<f64>::deserialize(d)?;
        Ok(ms.map(|ms| Duration::try_from_secs_f64(ms.max(0.0) / 1e3).unwrap_or(Duration::MAX)))
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(ms.max(0.0) / 1e3).unwrap_or(Duration::MAX))
    }
}

impl Outcome {
    pub(crate) fn from_wait_status(status: i32, wall_time: Duration) -> Outcome {
        let ending = if libc::WIFSIGNALED(status) {
            Ending::Signaled(libc::WTERMSIG(status))
        } else {
            Ending::Exited(libc::WEXITSTATUS(status))
        };
        Outcome {
            ending,
            wall_time,
            cpu_user: None,
            cpu_system: None,
            peak_memory: None,
            output_truncated: false,
        }
    }

    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.ending == Ending::Exited(0)
    }

    /// The exit code, if the program exited.
    pub fn code(&self) -> Option<i32> {
        match self.ending {
            Ending::Exited(c) => Some(c),
            _ => None,
        }
    }

    /// The signal that killed the program, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.ending {
            Ending::Signaled(s) => Some(s),
            _ => None,
        }
    }

    /// The status a shell would report: the exit code, or 128 + the signal number (a run
    /// the parent ended at a limit reports 128 + SIGKILL, 137; a CPU-time end 128 +
    /// SIGXCPU, 152).
    pub fn shell_code(&self) -> i32 {
        match self.ending {
            Ending::Exited(c) => c,
            Ending::Signaled(s) => 128 + s,
            Ending::CpuTimeExceeded => 128 + libc::SIGXCPU,
            Ending::WallTimeExceeded | Ending::OutputLimitExceeded | Ending::OutOfMemory => {
                128 + libc::SIGKILL
            }
        }
    }
}

/// What the spawn hands over to a [`Child`].
pub(crate) struct Parts {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub status: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub pty: Option<OwnedFd>,
    pub kill_on_drop: bool,
    pub started: Instant,
    /// The sandbox's link to a bridge, removed when it ends.
    pub network: Option<sandbox_net::Attachment>,
    /// The sandbox has a network namespace of its own (interfaces may be attached).
    pub own_netns: bool,
    /// The limits the parent enforces.
    pub limits: crate::Limits,
    /// The sandbox's cgroup, when its limits need one.
    pub cgroup: Option<crate::cgroup::Cgroup>,
    /// The process lives in a PID namespace whose init it is not (an exec into a running
    /// sandbox): reap it as soon as it ends.
    pub reap_early: bool,
    /// What holds processes exec'd into the sandbox.
    pub hardening: Hardening,
}

/// Why the parent killed the sandbox, if it did: set by its watchdog.
type Verdict = std::sync::Arc<std::sync::Mutex<Option<Ending>>>;

/// Enforces a sandbox's wall time and whole-sandbox CPU time until it ends: at the limit it
/// records the verdict, then kills the sandbox's first process (the init, PID 1 of the
/// sandbox's namespace, takes every process with it). The CPU time is read when it could
/// next have run out (the time left, spread over every core), at least every 100 ms.
async fn watchdog(
    fd: AsyncFd<OwnedFd>,
    started: Instant,
    wall: Option<Duration>,
    cpu: Option<(Duration, crate::cgroup::CpuMeter)>,
    verdict: Verdict,
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let kill = |why: Ending| {
        if sys::pidfd_exited(fd.get_ref().as_fd()) {
            return;
        }
        verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        let _ = sys::pidfd_send_signal(fd.get_ref().as_fd(), libc::SIGKILL);
    };
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
        tokio::select! {
            _ = fd.readable() => return,
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
type Early = std::sync::Arc<std::sync::Mutex<Option<i32>>>;

/// Starts the task that reaps `pidfd`'s process when it ends.
fn reap_early(pidfd: &OwnedFd) -> std::io::Result<Early> {
    let fd = crate::spawn::async_pidfd(pidfd.try_clone()?).map_err(|(_, e)| e)?;
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

/// Reads a stream to its end, keeping at most `limit` bytes; calls `cut` once when the
/// stream goes past the limit (then stops reading: the writer is being killed).
async fn read_limited<R: tokio::io::AsyncRead + Unpin>(
    r: Option<R>,
    limit: Option<u64>,
    cut: &impl Fn(),
) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let Some(limit) = limit else {
        return crate::command::read_all(r).await;
    };
    let Some(mut r) = r else {
        return Ok(Vec::new());
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = r
            .read(&mut buf)
            .await
            .map_err(|e| Error::os("read the sandbox's output", e))?;
        if n == 0 {
            return Ok(out);
        }
        let room = limit - out.len();
        out.extend_from_slice(&buf[..n.min(room)]);
        if n > room {
            cut();
            return Ok(out);
        }
    }
}

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
/// Dropping a `Child` kills the whole sandbox (unless [`Command::kill_on_drop`] was set to
/// `false`) and reaps it in the background. The sandbox also dies, by `PR_SET_PDEATHSIG`,
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
    cgroup: Option<crate::cgroup::Cgroup>,
    /// Reaped by a task of its own as soon as it ends (see [`Early`]).
    early: Option<Early>,
    /// What a process exec'd into the sandbox is held by.
    hardening: Hardening,
}

/// The parts of a sandbox's description that hold every process started in it.
#[derive(Debug, Clone)]
pub(crate) struct Hardening {
    pub seccomp: crate::Seccomp,
    pub capabilities: Vec<crate::Capability>,
    pub landlock: Option<crate::Landlock>,
    /// For its rlimits (the cgroup and the times belong to the sandbox).
    pub limits: crate::Limits,
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
    pub(crate) fn new(p: Parts) -> Result<Child> {
        let give_up = |e: Error, pidfd: OwnedFd| {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            reaper::adopt(pidfd);
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
        let cpu = match (p.limits.cpu_time, &p.cgroup) {
            (Some(limit), Some(cg)) => Some((limit, cg.cpu_meter())),
            _ => None,
        };
        if p.limits.wall_time.is_some() || cpu.is_some() {
            let watched = p
                .pidfd
                .try_clone()
                .and_then(|dup| crate::spawn::async_pidfd(dup).map_err(|(_, e)| e));
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
        let pidfd = match crate::spawn::async_pidfd(p.pidfd) {
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
        })
    }

    fn verdict(&self) -> Option<Ending> {
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner())
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
        let mut outcome = Outcome::from_wait_status(status, self.started.elapsed());
        let killed = outcome.ending == Ending::Signaled(libc::SIGKILL);
        let mut cpu_used = None;
        if let Some(cg) = &self.cgroup {
            let u = cg.usage();
            outcome.cpu_user = Some(u.cpu_user);
            outcome.cpu_system = Some(u.cpu_system);
            outcome.peak_memory = u.peak_memory;
            cpu_used = Some(u.cpu_user + u.cpu_system);
            // The program itself was killed by the kernel for the sandbox's memory limit
            // (a helper killed while the program exited on its own is not the run's end).
            let verdict = self.verdict();
            if u.oom_killed && killed && verdict.is_none() && self.limits.memory.is_some() {
                outcome.ending = Ending::OutOfMemory;
            }
        }
        if let (Some(v), true) = (self.verdict(), killed) {
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
        // Its addresses are free again; its veth pairs go with its network namespace.
        drop(self.network.take());
        self.attached.clear();
        self.pidfd = None;
        self.outcome = Some(outcome);
        outcome
    }

    /// Waits for the sandbox to end and returns how the program ended. Closes the program's
    /// stdin first, so it cannot wait for input that will never come. Calling it again
    /// returns the same outcome.
    pub async fn wait(&mut self) -> Result<Outcome> {
        drop(self.stdin.take());
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
                    let outcome = self.finish(raw);
                    if let Some(cg) = self.cgroup.take() {
                        // Kill what is left, remove it (it may wait for exiting processes).
                        let _ = tokio::task::spawn_blocking(move || drop(cg)).await;
                    }
                    return Ok(outcome);
                }
                Ok(None) => guard.clear_ready(),
                Err(e) => return Err(Error::os(format!("waitid {}", self.pid), e)),
            }
        }
    }

    /// The sandbox's address on its bridge ([`Network::bridge`](crate::Network::bridge)),
    /// while it runs.
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.network.as_ref().and_then(|a| a.address())
    }

    /// Adds an interface on a bridge to the running sandbox, as `docker network connect`
    /// does: a veth pair whose inner end is named `ethN` (the first free N), with an
    /// address of `network`'s bridge (which must be a [`Network::bridge`](crate::Network::bridge)).
    /// Returns the interface's name and address. The default route stays on `eth0`.
    pub async fn attach(
        &mut self,
        network: &crate::Network,
    ) -> Result<(String, std::net::Ipv4Addr)> {
        let crate::Network::Bridge(plan) = network else {
            return Err(Error::Invalid {
                what: "network to attach",
                reason: format!("{network} is not a bridge"),
            });
        };
        if self.outcome.is_some() || self.pidfd.is_none() {
            return Err(Error::Reaped);
        }
        if !self.own_netns {
            // The pair would land in the host's (or a joined) namespace and outlive the
            // sandbox.
            return Err(Error::Conflict(
                "attach needs a sandbox with a network namespace of its own".into(),
            ));
        }
        let bridge = match sandbox_net::Bridge::lookup(&plan.bridge) {
            Some(b) => b,
            None => sandbox_net::Bridge::open(&plan.bridge).await?,
        };
        let taken: Vec<&str> = self
            .network
            .iter()
            .chain(&self.attached)
            .map(|a| a.interface())
            .collect();
        let name = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !taken.contains(&n.as_str()))
            .unwrap_or_default();
        let lease = bridge.lease(plan.address, None)?;
        let netns = {
            let (pid, _held) = self.live_pid()?;
            std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| Error::os("open the sandbox's network namespace", e))?
        };
        // The host end is named like the first one's (after the sandbox).
        let sandbox = self
            .network
            .as_ref()
            .map_or("", |a| a.sandbox())
            .to_string();
        let a = sandbox_net::Attachment::connect_extra(netns.into(), lease, plan, &name, &sandbox)
            .await?;
        let addr = a.address().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        self.attached.push(a);
        Ok((name, addr))
    }

    /// Removes an interface [`Child::attach`] added (by its name inside, e.g. `eth1`).
    pub async fn detach(&mut self, interface: &str) -> Result<()> {
        let Some(i) = self
            .attached
            .iter()
            .position(|a| a.interface() == interface)
        else {
            return Err(Error::Invalid {
                what: "interface to detach",
                reason: format!("{interface} was not attached with Child::attach"),
            });
        };
        // Only a pair that is gone leaves the list: a failed removal keeps the interface,
        // and its address, with the sandbox.
        if let Some(a) = self.attached.get_mut(i) {
            a.detach().await?;
            self.attached.remove(i);
        }
        Ok(())
    }

    /// The host end of the sandbox's veth pair, while it runs.
    pub fn host_interface(&self) -> Option<&str> {
        self.network.as_ref().map(|a| a.host_interface())
    }

    /// Returns the outcome if the sandbox has ended, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<Outcome>> {
        if let Some(o) = self.outcome {
            return Ok(Some(o));
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

    /// Waits for the sandbox to end while collecting its stdout and stderr (when piped).
    ///
    /// With an output limit ([`Limits::output`](crate::Limits::output)), at most that many
    /// bytes of each stream are kept; a stream that goes past it gets the sandbox killed,
    /// and the run ends as [`Ending::OutputLimitExceeded`].
    pub async fn wait_with_output(mut self) -> Result<Output> {
        let limit = self.limits.output;
        let killer = match (&self.pidfd, limit) {
            (Some(fd), Some(_)) => Some(
                sys::dup_above_stdio(fd.get_ref().as_fd())
                    .map_err(|e| Error::os("duplicate the pidfd", e))?,
            ),
            _ => None,
        };
        let over = std::sync::atomic::AtomicBool::new(false);
        let cut = || {
            over.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(k) = &killer {
                let _ = sys::pidfd_send_signal(k.as_fd(), libc::SIGKILL);
            }
        };
        let out = read_limited(self.stdout.take(), limit, &cut);
        let err = read_limited(self.stderr.take(), limit, &cut);
        let (stdout, stderr, mut status) = tokio::try_join!(out, err, self.wait())?;
        if over.load(std::sync::atomic::Ordering::SeqCst) {
            status.output_truncated = true;
            if !matches!(status.ending, Ending::WallTimeExceeded) {
                status.ending = Ending::OutputLimitExceeded;
            }
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
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

    /// Runs another program inside this running sandbox's namespaces, as `docker exec`
    /// does, and returns its own `Child`. Only the process side of `cmd` is used (program,
    /// arguments, environment, working directory, stdio, passed descriptors, kill-on-drop);
    /// its sandbox description is ignored, since the sandbox already exists: the process
    /// gets the sandbox's own seccomp filter, capabilities, landlock rules and rlimits, and
    /// joins its cgroup.
    pub async fn exec(&self, cmd: &Command) -> Result<Child> {
        let joins = {
            let (pid, _held) = self.live_pid()?;
            let own = NamespaceIds::of_self().map_err(|e| Error::os("read /proc/self/ns", e))?;
            let theirs = NamespaceIds::of_pid(pid)
                .map_err(|e| Error::os(format!("read /proc/{pid}/ns"), e))?;
            let mut joins = Vec::new();
            for ns in Namespace::ALL {
                if own.get(ns) == theirs.get(ns) {
                    continue;
                }
                let p = format!("/proc/{pid}/ns/{}", ns.proc_name());
                let f = std::fs::File::open(&p).map_err(|e| Error::os(format!("open {p}"), e))?;
                let fd =
                    sys::above_stdio(f.into()).map_err(|e| Error::os(format!("dup {p}"), e))?;
                joins.push((ns, fd));
            }
            joins
        };
        let cgroup = self.cgroup.as_ref().map(|c| c.member());
        // The sandbox's own hardening and rlimits, not the command's description: a process
        // started in it is held as its first one was.
        let mut hardened = cmd.sandbox.clone();
        hardened.seccomp = self.hardening.seccomp.clone();
        hardened.capabilities = self.hardening.capabilities.clone();
        hardened.landlock = self.hardening.landlock.clone();
        hardened.limits = self.hardening.limits.clone();
        crate::spawn::exec(cmd, &hardened, joins, cgroup).await
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pidfd.is_none() {
            // Already reaped (try_wait): remove the cgroup off this (maybe runtime) thread.
            if let Some(cg) = self.cgroup.take() {
                let _ = std::thread::Builder::new()
                    .name("sandbox-cgroup".into())
                    .spawn(move || drop(cg));
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
