//! Sandboxes made ahead (a [`Pool`](crate::Pool)'s): every namespace, the root, the
//! cgroup, the hardening in place, and the built-in init waiting for the one program it is
//! to run (`init/init.c`, serve mode). Starting that program is a request on a socket and
//! a `fork` + `execve` in the init: no clone of the caller, no mount, no cgroup.
//!
//! The request is one `SOCK_SEQPACKET` message: a byte, and five descriptors — a memfd
//! with the program's strings (the layout is in `init.c`'s header), the request's own sync
//! channel (end of file once the program is executed, or a `(stage, errno)` frame, as for
//! a spawn), and the program's stdin, stdout and stderr.

use super::prepare::{self, Request};
use super::timeline::Recorder;
use super::{handshake, launch, reaper, Spawned};
use crate::command::Stdio;
use crate::error::Stage;
use crate::{sys, Command, Error, Result, Sandbox};
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The number the init finds its control socket at.
const CTL_FD: RawFd = 3;

/// "SBXQ": the first word of a request (`init.c`'s `REQUEST`).
const REQUEST: u32 = u32::from_be_bytes(*b"SBXQ");

/// A sandbox made ahead, its init waiting for a program. Dropped unused, it is killed and
/// handed to the reaper with what it holds (cgroup, bridge link).
pub(crate) struct Held {
    spawned: Option<Spawned>,
    ctl: OwnedFd,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("pid", &self.spawned.as_ref().map(|s| s.pid))
            .finish()
    }
}

/// Makes a sandbox of `sandbox`'s description whose init waits for its program.
pub(crate) async fn hold(sandbox: &Sandbox) -> Result<Held> {
    let (ctl, theirs) =
        sys::seqpacket_pair().map_err(|e| Error::os("make a pooled sandbox's socket", e))?;
    // The program is the one the request names; "/" only passes the checks of a spawn.
    let mut cmd = Command::with_sandbox(sandbox.clone(), "/");
    cmd.serve = true;
    cmd.pass_fd(CTL_FD, theirs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned = launch(&cmd, sandbox, None, None).await?;
    Ok(Held {
        spawned: Some(spawned),
        ctl,
    })
}

/// Checks `cmd` for a run in a pooled sandbox of `sandbox`'s description and prepares what
/// its init needs (strings, stdio). Refuses what that init does not offer: a
/// pseudo-terminal, passed descriptors.
pub(crate) fn request(cmd: &Command, sandbox: &Sandbox) -> Result<Request> {
    prepare::request(cmd, sandbox)
}

/// How a request to a held sandbox went.
pub(crate) enum Start {
    /// The program was executed: the sandbox, handed over as a spawn would.
    Started(Box<Spawned>),
    /// The sandbox's init was gone before it could take the request (killed from
    /// outside): nothing was started, the sandbox is dropped.
    Gone,
}

/// Spawns `cmd` as a new sandbox of `sandbox`'s description (a pool's miss).
pub(crate) async fn spawn_in(cmd: &Command, sandbox: &Sandbox) -> Result<Spawned> {
    launch(cmd, sandbox, None, None).await
}

impl Held {
    /// Whether its init still waits (it has not died, been killed, or been reaped).
    pub(crate) fn alive(&self) -> bool {
        self.spawned
            .as_ref()
            .is_some_and(|s| !sys::pidfd_exited(s.pidfd.as_fd()))
    }

    /// Starts `cmd`'s program, prepared in `request` (by [`request`], before the take), and
    /// hands the sandbox over, started, as a spawn would (a fresh pool's take).
    pub(crate) async fn run(mut self, request: Request, cmd: &Command) -> Result<Start> {
        let Some(mut sent) = self.send(request, cmd).await? else {
            return Ok(Start::Gone);
        };
        let Some(mut spawned) = self.spawned.take() else {
            return Err(Error::Reaped);
        };
        spawned.timeline = sent.timeline;
        spawned.stdin = sent.stdio[0].take();
        spawned.stdout = sent.stdio[1].take();
        spawned.stderr = sent.stdio[2].take();
        spawned.kill_on_drop = cmd.get_kill_on_drop();
        spawned.started = sent.started;
        Ok(Start::Started(Box::new(spawned)))
    }

    /// Starts `cmd`'s program in this sandbox, which stays where it is (a reused pool's
    /// take): the handed-over value watches the run (the caller gives it the lease that
    /// brings the sandbox back). `None` when the init was gone.
    pub(crate) async fn lend(&self, request: Request, cmd: &Command) -> Result<Option<Spawned>> {
        let Some(mut sent) = self.send(request, cmd).await? else {
            return Ok(None);
        };
        let Some(s) = self.spawned.as_ref() else {
            return Err(Error::Reaped);
        };
        let pidfd = s
            .pidfd
            .try_clone()
            .map_err(|e| Error::os("copy a pooled sandbox's pidfd", e))?;
        Ok(Some(Spawned {
            pid: s.pid,
            pidfd,
            status: None,
            stdin: sent.stdio[0].take(),
            stdout: sent.stdio[1].take(),
            stderr: sent.stdio[2].take(),
            pty: None,
            kill_on_drop: true,
            started: sent.started,
            network: None,
            own_netns: false,
            limits: s.limits.clone(),
            cgroup: None,
            reap_early: false,
            hardening: s.hardening.clone(),
            timeline: sent.timeline,
            lease: None,
        }))
    }

    /// The cgroup the sandbox was made with, if its limits needed one.
    pub(crate) fn cgroup(&self) -> Option<&crate::limits::cgroup::Cgroup> {
        self.spawned.as_ref().and_then(|s| s.cgroup.as_ref())
    }

    /// The host pid of its init.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.spawned.as_ref().map(|s| s.pid)
    }

    /// Its control socket, where a reused sandbox's init reports each program's end.
    pub(crate) fn control(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ctl.as_fd()
    }

    /// Sends the request and waits until the program is executed (or its start failed).
    async fn send(&self, request: Request, cmd: &Command) -> Result<Option<Sent>> {
        // A pooled spawn's timeline begins at the take.
        let mut timeline = Recorder::start();
        let strings = strings_memfd(&request)?;
        let (sync, sync_child) = sys::socketpair().map_err(|e| Error::os("socketpair", e))?;
        let Request { stdio, parent, .. } = request;
        let fds = [
            strings.as_raw_fd(),
            sync_child.as_raw_fd(),
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ];
        timeline.mark("pool: request made");
        if send_request(&self.ctl, &fds).is_err() {
            // Its init died (EPIPE, ECONNRESET): this sandbox is dropped (and reaped).
            return Ok(None);
        }
        timeline.mark("pool: request sent");
        // The init holds its own copies now.
        drop((strings, sync_child, stdio));
        let mut sync = handshake::channel(sync)?;
        let started = Instant::now();
        if let Err(e) = handshake::await_exec(&mut sync, None).await {
            return Err(describe(e, cmd));
        }
        timeline.mark("pool: executed (end of file on the sync channel)");
        Ok(Some(Sent {
            stdio: parent,
            started,
            timeline,
        }))
    }
}

/// A request the init took: the parent's ends of piped streams, when the program was
/// executed, the take's timeline.
struct Sent {
    stdio: [Option<OwnedFd>; 3],
    started: Instant,
    timeline: Recorder,
}

/// A run in a reused sandbox (a pool's), as its handle sees it: the program's end arrives
/// on the sandbox's control socket, its usage is counted from the take, and the sandbox
/// goes back to its pool — or is let go — when the run is over.
pub(crate) trait Lease: Send + Sync + std::fmt::Debug {
    /// The control socket the init reports the program's end on (`None` once ended).
    fn control(&self) -> Option<std::os::fd::BorrowedFd<'_>>;
    /// What the run used (CPU time since the take; the memory peak since, where the
    /// cgroup can reset it), and how many processes the kernel killed for the memory limit
    /// since the take. `None` without a cgroup.
    fn usage(&self) -> Option<(crate::limits::cgroup::Usage, u64)>;
    /// The run's CPU time, for its watchdog.
    fn cpu_meter(&self) -> Option<crate::limits::cgroup::CpuMeter>;
    /// The run is over: give the sandbox back once its init reports the rest of the reset
    /// clean when `reusable` (the run's processes and IPC objects are gone), else let it go
    /// (killed, reaped).
    fn end(self: Box<Self>, reusable: bool);
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(s) = self.spawned.take() {
            let _ = sys::pidfd_send_signal(s.pidfd.as_fd(), libc::SIGKILL);
            let keep: Option<Box<dyn std::any::Any + Send>> =
                if s.network.is_some() || s.cgroup.is_some() {
                    Some(Box::new((s.network, s.cgroup)))
                } else {
                    None
                };
            reaper::adopt_with(s.pidfd, keep);
        }
    }
}

/// Names what a failed start was about: the program, or the working directory.
fn describe(e: Error, cmd: &Command) -> Error {
    match e {
        Error::Setup {
            stage,
            what: None,
            errno,
        } => {
            let what = match stage {
                Stage::Exec => Some(cmd.program.display().to_string()),
                Stage::Chdir => cmd.cwd.as_ref().map(|d| d.display().to_string()),
                Stage::FileDescriptors => Some(
                    "the program's descriptors, in the pooled sandbox's init \
                     (Limits::open_files must leave it room for them)"
                        .into(),
                ),
                _ => None,
            };
            Error::Setup { stage, what, errno }
        }
        e => e,
    }
}

/// The request's strings in a memfd, laid out as `init.c` reads them: a header, the
/// offsets of `argv`, `envp` and the directories to reset (each list ended by 0), then the
/// strings.
fn strings_memfd(r: &Request) -> Result<OwnedFd> {
    let bytes = layout(r);
    let fail = |e| Error::os("write a pooled sandbox's request", e);
    let fd = sys::memfd(c"sandbox-request").map_err(fail)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&bytes).map_err(fail)?;
    Ok(OwnedFd::from(f))
}

/// The header's length: eight `u32`s (`init.c`'s `HEADER`).
const HEADER: usize = 32;

fn layout(r: &Request) -> Vec<u8> {
    let lists: [&[CString]; 3] = [&r.argv, &r.envp, &r.reset];
    let slots: usize = lists.iter().map(|l| l.len() + 1).sum();
    let base = HEADER + slots * 8;
    let mut strings: Vec<u8> = Vec::new();
    let put = |s: &CString, strings: &mut Vec<u8>| {
        let at = (base + strings.len()) as u64;
        strings.extend_from_slice(s.as_bytes_with_nul());
        at
    };
    let mut offsets: Vec<u64> = Vec::with_capacity(slots);
    for list in lists {
        for item in list {
            offsets.push(put(item, &mut strings));
        }
        offsets.push(0);
    }
    let cwd_at = put(&r.cwd, &mut strings) as u32;
    let mut out = Vec::with_capacity(base + strings.len());
    for word in [
        REQUEST,
        Stage::Exec as u32,
        Stage::Chdir as u32,
        r.argv.len() as u32,
        r.envp.len() as u32,
        cwd_at,
        r.reset.len() as u32,
        u32::from(r.reuse),
    ] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    for o in offsets {
        out.extend_from_slice(&o.to_ne_bytes());
    }
    out.extend_from_slice(&strings);
    out
}

/// Sends the request: one byte and the five descriptors. A full socket cannot happen (one
/// request per sandbox); a dead init makes this fail with `EPIPE`/`ECONNRESET`.
fn send_request(ctl: &OwnedFd, fds: &[RawFd; 5]) -> nix::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(b"R")];
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(
        ctl.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map(drop)
}
