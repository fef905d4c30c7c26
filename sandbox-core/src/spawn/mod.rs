//! Starting a sandbox: prepare (parent, may allocate), clone (spawner thread), child (may
//! not allocate), and the parent's side of the handshake.
//!
//! 1. [`prepare`] checks the description and builds the child's plan: every C string, the
//!    mount steps, the pipes.
//! 2. [`spawner`] clones the child with `clone3(CLONE_PIDFD | CLONE_NEW*)` from its own
//!    long-lived thread.
//! 3. [`child`] runs in the child until `execve`.
//! 4. This module, in the caller's task: writes the id maps, says GO, and waits for the
//!    child's report: end-of-file (the program was executed) or `(stage, errno)`.

pub(crate) mod child;
pub(crate) mod prepare;
pub(crate) mod report;
pub(crate) mod spawner;

use crate::child::{Child, Parts};
use crate::error::{Errno, Stage};
use crate::{idmap, reaper, sys, Command, Error, Namespace, Result};
use prepare::{ChildPlan, ExecJoins, Prepared};
use report::{Frame, StatusFrame, FRAME_LEN, GO, KIND_ERROR, KIND_USERNS, STATUS_LEN, STATUS_PID};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Spawns `cmd` in a new sandbox.
pub(crate) async fn spawn(cmd: &Command) -> Result<Child> {
    launch(cmd, None).await
}

/// Spawns `cmd` inside the namespaces in `exec` (an existing sandbox's).
pub(crate) async fn exec(cmd: &Command, joins: ExecJoins) -> Result<Child> {
    launch(cmd, Some(joins)).await
}

/// Owns a cloned child until the spawn succeeds; kills and reaps it otherwise (also when the
/// spawn future is dropped).
struct Pending {
    pidfd: Option<OwnedFd>,
}

impl Pending {
    fn take(&mut self) -> OwnedFd {
        // Only called once, on success.
        self.pidfd
            .take()
            .unwrap_or_else(|| unreachable!("pending child taken twice"))
    }

    /// Kills the child and waits until it is reaped, so a failed spawn leaves nothing.
    async fn kill_and_reap(&mut self) {
        let Some(fd) = self.pidfd.take() else { return };
        let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        let _ = wait_reaped(fd).await;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(fd) = self.pidfd.take() {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            reaper::adopt(fd);
        }
    }
}

/// Waits (asynchronously) for the process behind `pidfd` to end, and reaps it.
pub(crate) async fn wait_reaped(pidfd: OwnedFd) -> std::io::Result<i32> {
    // SAFETY: the AsyncFd owns the pidfd for its whole life; the fd is not closed or
    // replaced while registered.
    let afd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    loop {
        let mut guard = afd.readable().await?;
        if let Some(st) = sys::waitid_pidfd(afd.get_ref().as_fd(), true)? {
            return Ok(st);
        }
        guard.clear_ready();
    }
}

/// Reads one frame; `None` at end of file.
async fn read_frame(sync: &mut tokio::net::UnixStream) -> Result<Option<Frame>> {
    let mut buf = [0u8; FRAME_LEN];
    let mut got = 0;
    while got < FRAME_LEN {
        let n = sync
            .read(&mut buf[got..])
            .await
            .map_err(|e| Error::os("read from the child", e))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(Error::os(
                "read from the child",
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        got += n;
    }
    Ok(Some(Frame::from_bytes(&buf)))
}

/// What a failed step was about, for the error message.
fn describe(stage: Stage, detail: u32, plan: &ChildPlan) -> Option<String> {
    let lossy = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    match stage {
        Stage::Exec => Some(lossy(&plan.program)),
        Stage::Chdir => Some(lossy(&plan.cwd)),
        Stage::Mount => plan
            .mounts
            .ops()
            .get(detail as usize)
            .map(|op| op.to_string()),
        Stage::Hostname => plan.hostname.as_deref().map(lossy),
        Stage::JoinNamespace => plan.joins.get(detail as usize).and_then(|(_, ty)| {
            Namespace::ALL
                .into_iter()
                .find(|n| n.clone_flag() == *ty)
                .map(|n| n.to_string())
        }),
        Stage::Unshare => {
            let flags = detail as libc::c_int;
            let names: Vec<String> = Namespace::ALL
                .into_iter()
                .filter(|n| flags & n.clone_flag() != 0)
                .map(|n| n.to_string())
                .collect();
            Some(names.join(","))
        }
        Stage::SetUid | Stage::SetGid => Some(detail.to_string()),
        _ => None,
    }
}

fn setup_error(f: Frame, plan: &ChildPlan) -> Error {
    if f.kind != KIND_ERROR {
        return Error::os(
            "read from the child",
            std::io::Error::other(format!("unexpected message {:#x}", f.kind)),
        );
    }
    let stage = Stage::from_u32(f.stage).unwrap_or(Stage::Handshake);
    Error::Setup {
        stage,
        what: describe(stage, f.detail, plan),
        errno: Errno(f.errno),
    }
}

async fn launch(cmd: &Command, exec: Option<ExecJoins>) -> Result<Child> {
    let Prepared { plan, parent } = prepare::prepare(cmd, exec)?;
    let started = Instant::now();
    let (spawned, plan) = spawner::clone(plan).await;
    let spawned = spawned.map_err(|e| Error::os("clone3", e))?;
    let mut pending = Pending {
        pidfd: Some(spawned.pidfd),
    };
    let Some(plan) = plan else {
        return Err(Error::os("clone3", std::io::Error::other("plan lost")));
    };
    let sync = std::os::unix::net::UnixStream::from(parent.sync);
    sync.set_nonblocking(true)
        .map_err(|e| Error::os("set up the sync channel", e))?;
    let mut sync = tokio::net::UnixStream::from_std(sync)
        .map_err(|e| Error::os("set up the sync channel", e))?;

    if parent.late_userns {
        match read_frame(&mut sync).await? {
            Some(f) if f.kind == KIND_USERNS => {}
            Some(f) => {
                pending.kill_and_reap().await;
                return Err(setup_error(f, &plan));
            }
            None => {
                pending.kill_and_reap().await;
                return Err(Error::os(
                    "wait for the child's user namespace",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
        }
    }
    if let Some(ids) = &parent.ids {
        if let Err(e) = idmap::write(spawned.pid, &ids.write).await {
            pending.kill_and_reap().await;
            return Err(e);
        }
    }
    if plan.wait_go || parent.late_userns {
        if let Err(e) = sync.write_all(&[GO]).await {
            pending.kill_and_reap().await;
            return Err(Error::os("release the child", e));
        }
    }
    if let Some(f) = read_frame(&mut sync).await? {
        pending.kill_and_reap().await;
        return Err(setup_error(f, &plan));
    }
    drop(plan);

    // The program runs. With a relay, learn the host pid of the process inside.
    let status = match parent.status {
        Some(fd) => Some(
            tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
                .map_err(|e| Error::os("set up the status pipe", e))?,
        ),
        None => None,
    };
    let mut status = status;
    let mut inner_pid = None;
    if parent.relay {
        if let Some(rx) = status.as_mut() {
            let mut buf = [0u8; STATUS_LEN];
            rx.read_exact(&mut buf)
                .await
                .map_err(|e| Error::os("read the relayed pid", e))?;
            let f = StatusFrame::from_bytes(&buf);
            if f.kind == STATUS_PID {
                // The relayed process may already have ended and been reaped (a quick
                // program): then there is nothing inside left to look at.
                let pidfd = match sys::pidfd_open(f.value) {
                    Ok(fd) => Some(fd),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => None,
                    Err(e) => return Err(Error::os(format!("pidfd_open {}", f.value), e)),
                };
                inner_pid = Some((f.value as u32, pidfd));
            }
        }
    }
    let pidfd = pending.take();
    Child::new(Parts {
        pid: spawned.pid as u32,
        pidfd,
        status,
        inner: inner_pid,
        stdin: parent.stdin,
        stdout: parent.stdout,
        stderr: parent.stderr,
        kill_on_drop: parent.kill_on_drop,
        started,
    })
}
