//! The child's descriptors: its stdio, the descriptors passed on purpose, and the floor
//! above which its own descriptors live.

use super::plan::{MAX_KEEP, MAX_PASS};
use crate::command::{Stdio, StdioKind};
use crate::{sys, Command, Error, Result};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The child's descriptors (raw numbers it reads from the plan) and the parent's ends.
pub(super) struct Descriptors {
    /// What to place on 0, 1, 2 (-1: leave the inherited one).
    pub stdio: [RawFd; 3],
    /// The stdio slot (0-2) holding a pty to make the controlling terminal, or -1.
    pub controlling_tty: libc::c_int,
    pub parent_stdin: Option<OwnedFd>,
    pub parent_stdout: Option<OwnedFd>,
    pub parent_stderr: Option<OwnedFd>,
    /// The caller's side of the sandbox's pty.
    pub pty_master: Option<OwnedFd>,
    /// Descriptors passed on purpose, their count, and the floor above which the child's
    /// own descriptors live.
    pub pass: PassList,
    pub pass_len: usize,
    pub pass_floor: RawFd,
    /// The sync channel: the parent's end, and the child's descriptor number.
    pub sync_parent: OwnedFd,
    pub sync_fd: RawFd,
    /// The status pipe (init → parent): the parent's end, and the init's number (or -1).
    pub status_parent: Option<OwnedFd>,
    pub status_fd: RawFd,
    /// The memfd of the built-in init, or -1.
    pub init_fd: RawFd,
}

impl Descriptors {
    /// The child's own descriptors it keeps until `execve` (sync channel, status pipe, init).
    fn own(&self) -> impl Iterator<Item = RawFd> {
        [self.sync_fd, self.status_fd, self.init_fd]
            .into_iter()
            .filter(|&fd| fd >= 0)
    }
}

/// Opens the child's stdio (a pty, pipes, `/dev/null` or the caller's descriptors), copies
/// the descriptors passed on purpose, and makes the sync channel and, for the built-in
/// init, the status pipe and the init's memfd. The child's ends go to `child_fds`.
pub(super) fn descriptors(
    cmd: &Command,
    init: bool,
    child_fds: &mut Vec<OwnedFd>,
) -> Result<Descriptors> {
    let is_pty = |s: Option<&Stdio>| matches!(s, Some(Stdio(StdioKind::Pty)));
    let pty_slots = [&cmd.stdin, &cmd.stdout, &cmd.stderr].map(|s| is_pty(s.as_ref()));
    let (pty_master, pty_slave) = if pty_slots.contains(&true) {
        let (m, s) = crate::pty::open().map_err(|e| Error::os("open a pseudo-terminal", e))?;
        let raw = s.as_raw_fd();
        child_fds.push(s);
        (Some(m), raw)
    } else {
        (None, -1)
    };
    let controlling_tty = pty_slots
        .iter()
        .position(|&p| p)
        .map_or(-1, |i| i as libc::c_int);
    let (stdin, parent_stdin) = stdio(cmd.stdin.as_ref(), true, child_fds, pty_slave)?;
    let (stdout, parent_stdout) = stdio(cmd.stdout.as_ref(), false, child_fds, pty_slave)?;
    let (stderr, parent_stderr) = stdio(cmd.stderr.as_ref(), false, child_fds, pty_slave)?;
    // Descriptors passed on purpose, and the floor above which the child's own descriptors
    // live, so that placing them never overwrites one the child still needs.
    let (pass, pass_len, pass_floor) = passed_fds(cmd, child_fds)?;
    let (sync_parent, sync_child) = sys::socketpair().map_err(|e| Error::os("socketpair", e))?;
    let sync_child =
        sys::at_least(sync_child, pass_floor).map_err(|e| Error::os("socketpair", e))?;
    let sync_fd = sync_child.as_raw_fd();
    child_fds.push(sync_child);
    let (status_parent, status_fd) = if init {
        let (r, w) = sys::pipe().map_err(|e| Error::os("pipe", e))?;
        let w = sys::at_least(w, pass_floor).map_err(|e| Error::os("pipe", e))?;
        let raw = w.as_raw_fd();
        child_fds.push(w);
        (Some(r), raw)
    } else {
        (None, -1)
    };
    let init_fd = if init {
        super::super::init_binary::memfd()
            .map_err(|e| Error::os("load the built-in init into a memfd", e))?
            .as_raw_fd()
    } else {
        -1
    };
    Ok(Descriptors {
        stdio: [stdin, stdout, stderr],
        controlling_tty,
        parent_stdin,
        parent_stdout,
        parent_stderr,
        pty_master,
        pass,
        pass_len,
        pass_floor,
        sync_parent,
        sync_fd,
        status_parent,
        status_fd,
        init_fd,
    })
}

/// A pooled sandbox's program's stdio (`spawn/serve.rs`): the descriptors its init places
/// on 0, 1 and 2 (copies of the caller's own for inherited streams), and the parent's pipe
/// ends (a pseudo-terminal is refused before: `check_request`).
pub(super) fn request_stdio(cmd: &Command) -> Result<([OwnedFd; 3], [Option<OwnedFd>; 3])> {
    let streams = [&cmd.stdin, &cmd.stdout, &cmd.stderr];
    let mut child_fds = Vec::with_capacity(3);
    let mut parent: [Option<OwnedFd>; 3] = [None, None, None];
    for (i, s) in streams.into_iter().enumerate() {
        let (raw, p) = stdio(s.as_ref(), i == 0, &mut child_fds, -1)?;
        parent[i] = p;
        if raw < 0 {
            // Inherited: a copy of the caller's own stream, or /dev/null if it has none.
            match sys::dup_own_stdio(i as RawFd) {
                Ok(fd) => child_fds.push(fd),
                Err(_) => {
                    stdio(Some(&Stdio::null()), false, &mut child_fds, -1)?;
                }
            }
        }
    }
    let [a, b, c]: [OwnedFd; 3] = child_fds
        .try_into()
        .map_err(|_| Error::os("set up stdio", std::io::Error::other("not three streams")))?;
    Ok(([a, b, c], parent))
}

/// The descriptors the child keeps besides 0-2 — `others` (joined namespaces, overlay
/// layers), its own, the landlock ruleset and the passed ones — sorted, as a fixed array
/// and its length.
pub(super) fn keep_list(
    others: impl Iterator<Item = RawFd>,
    fds: &Descriptors,
    landlock_fd: RawFd,
) -> Result<([RawFd; MAX_KEEP], usize)> {
    let mut keep: Vec<RawFd> = others.collect();
    keep.extend(fds.own());
    keep.extend((landlock_fd >= 0).then_some(landlock_fd));
    keep.extend(fds.pass.iter().take(fds.pass_len).map(|(fd, _)| *fd));
    keep.sort_unstable();
    keep.dedup();
    if keep.len() > MAX_KEEP {
        return Err(Error::Invalid {
            what: "namespaces to join, overlay layers and passed descriptors",
            reason: format!("more than {} descriptors to keep", MAX_KEEP),
        });
    }
    let mut out = [-1; MAX_KEEP];
    out[..keep.len()].copy_from_slice(&keep);
    Ok((out, keep.len()))
}

/// The stdio of one stream: (fd the child places on 0/1/2 or -1, the parent's pipe end).
fn stdio(
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
fn passed_fds(cmd: &Command, child_fds: &mut Vec<OwnedFd>) -> Result<(PassList, usize, RawFd)> {
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
