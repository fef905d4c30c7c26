//! The parent's side of the handshake with the child: reading its frames on the sync
//! channel, and turning a `(stage, errno, detail)` report into a typed error.

use super::prepare::ChildPlan;
use super::report::{Frame, FRAME_LEN, KIND_ERROR};
use crate::error::{Errno, Stage};
use crate::{Error, Namespace, Result};
use tokio::io::AsyncReadExt;

/// Reads one frame; `None` at end of file.
pub(super) async fn read_frame(sync: &mut tokio::net::UnixStream) -> Result<Option<Frame>> {
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

pub(super) fn setup_error(f: Frame, plan: Option<&ChildPlan>) -> Error {
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
