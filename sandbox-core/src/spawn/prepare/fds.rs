//! The child's descriptors: its stdio, the descriptors passed on purpose, and the floor
//! above which its own descriptors live.

use super::plan::MAX_PASS;
use crate::command::{Stdio, StdioKind};
use crate::{sys, Command, Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The stdio of one stream: (fd the child places on 0/1/2 or -1, the parent's pipe end).
pub(super) fn stdio(
    cfg: Option<&Stdio>,
    read_side_for_child: bool,
    child_fds: &mut Vec<OwnedFd>,
    pty_slave: RawFd,
) -> Result<(RawFd, Option<OwnedFd>)> {
    let kind = cfg.map(|s| &s.0).unwrap_or(&StdioKind::Inherit);
    match kind {
        StdioKind::Pty => Ok((pty_slave, None)),
        StdioKind::Inherit => Ok((-1, None)),
        StdioKind::Null => {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(|e| Error::os("open /dev/null", e))?;
            let fd = sys::above_stdio(f.into()).map_err(|e| Error::os("dup /dev/null", e))?;
            let raw = fd.as_raw_fd();
            child_fds.push(fd);
            Ok((raw, None))
        }
        StdioKind::Piped => {
            let (r, w) = sys::pipe().map_err(|e| Error::os("pipe", e))?;
            let (child, parent) = if read_side_for_child { (r, w) } else { (w, r) };
            let raw = child.as_raw_fd();
            child_fds.push(child);
            Ok((raw, Some(parent)))
        }
        StdioKind::Fd(fd) => {
            let dup = sys::dup_above_stdio(fd.as_fd()).map_err(|e| Error::os("dup stdio fd", e))?;
            let raw = dup.as_raw_fd();
            child_fds.push(dup);
            Ok((raw, None))
        }
    }
}

/// `(descriptor, number inside)` of each descriptor passed on purpose.
pub(super) type PassList = [(RawFd, RawFd); MAX_PASS];

/// The descriptors a command passes on purpose, checked and copied (close-on-exec) for the
/// child, and the floor: one above the highest number inside (3 without any).
pub(super) fn passed_fds(
    cmd: &Command,
    child_fds: &mut Vec<OwnedFd>,
) -> Result<(PassList, usize, RawFd)> {
    let mut pass = [(-1, -1); MAX_PASS];
    if cmd.pass.len() > MAX_PASS {
        return Err(Error::Invalid {
            what: "passed descriptors",
            reason: format!("{} passed, at most {MAX_PASS}", cmd.pass.len()),
        });
    }
    let mut floor: RawFd = 3;
    let mut seen = Vec::new();
    for (target, _) in &cmd.pass {
        if *target < 3 {
            return Err(Error::Invalid {
                what: "passed descriptor number",
                reason: format!("{target}: 0, 1 and 2 are stdin, stdout and stderr"),
            });
        }
        if seen.contains(target) {
            return Err(Error::Conflict(format!(
                "descriptor {target} is passed twice"
            )));
        }
        seen.push(*target);
        floor = floor.max(target.saturating_add(1));
    }
    if cmd.pass.is_empty() {
        return Ok((pass, 0, floor));
    }
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid resource and a pointer to a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 && floor as u64 >= rl.rlim_cur
    {
        return Err(Error::Invalid {
            what: "passed descriptor number",
            reason: format!(
                "{} is not below the open-files limit ({})",
                floor - 1,
                rl.rlim_cur
            ),
        });
    }
    for (i, (target, fd)) in cmd.pass.iter().enumerate() {
        let copy = sys::dup_at_least(fd.as_fd(), floor)
            .map_err(|e| Error::os(format!("copy passed descriptor {target}"), e))?;
        pass[i] = (copy.as_raw_fd(), *target);
        child_fds.push(copy);
    }
    Ok((pass, cmd.pass.len(), floor))
}
