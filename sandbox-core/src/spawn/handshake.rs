//! The parent's side of the handshake with the child, over the sync channel (a socket
//! pair): wait for the child's user namespace (when it makes one late), say GO once the
//! parent's work is done, then wait for end-of-file (the program was executed) or a
//! `(stage, errno, detail)` report, which becomes a typed error.

use super::prepare::ChildPlan;
use super::report::{Frame, FRAME_LEN, GO, KIND_ERROR, KIND_USERNS};
use crate::error::{Errno, Stage};
use crate::{Error, Namespace, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::AsyncReadExt;

/// The parent's end of the sync channel, registered with the runtime.
pub(super) fn channel(sync: OwnedFd) -> Result<tokio::net::UnixStream> {
    let sync = std::os::unix::net::UnixStream::from(sync);
    sync.set_nonblocking(true)
        .map_err(|e| Error::os("set up the sync channel", e))?;
    tokio::net::UnixStream::from_std(sync).map_err(|e| Error::os("set up the sync channel", e))
}

/// Waits until the child has made its user namespace (after joining others), so the parent
/// can write its maps.
pub(super) async fn await_user_namespace(
    sync: &mut tokio::net::UnixStream,
    plan: Option<&ChildPlan>,
) -> Result<()> {
    match read_frame(sync).await? {
        Some(f) if f.kind == KIND_USERNS => Ok(()),
        Some(f) => Err(setup_error(f, plan)),
        None => Err(Error::os(
            "wait for the child's user namespace",
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        )),
    }
}

/// Releases the child: the parent's work between the clone and GO is done.
pub(super) fn go(sync: &tokio::net::UnixStream) -> Result<()> {
    // send(MSG_NOSIGNAL): a child that died meanwhile must not raise SIGPIPE in the
    // embedding program. One byte into an empty socket buffer cannot block.
    nix::sys::socket::send(
        sync.as_raw_fd(),
        &[GO],
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    )
    .map(drop)
    .map_err(|e| Error::os("release the child", e.into()))
}

/// Waits for the child's last word: end of file once every process that used the plan has
/// executed (the channel is close-on-exec), or the report of the step that failed.
pub(super) async fn await_exec(
    sync: &mut tokio::net::UnixStream,
    plan: Option<&ChildPlan>,
) -> Result<()> {
    match read_frame(sync).await? {
        Some(f) => Err(setup_error(f, plan)),
        None => Ok(()),
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
        Stage::Landlock => plan
            .landlock_rules
            .get(detail as usize)
            .map(|(p, _)| lossy(p)),
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

fn setup_error(f: Frame, plan: Option<&ChildPlan>) -> Error {
    if f.kind != KIND_ERROR {
        return Error::os(
            "read from the child",
            std::io::Error::other(format!("unexpected message {:#x}", f.kind)),
        );
    }
    let stage = Stage::from_u32(f.stage).unwrap_or(Stage::Handshake);
    Error::Setup {
        stage,
        what: plan.and_then(|plan| describe(stage, f.detail, plan)),
        errno: Errno(f.errno),
    }
}
