//! The sync channel with the parent: wait for its GO, send it a frame (an error, or "my
//! user namespace is ready"), and leave quietly if it is gone.

use super::syscall::{exit, sys, write_all};
use super::{At, Fail, R};
use crate::error::Stage;
use crate::spawn::report::{Frame, GO};
use libc::c_int;

pub(super) fn send_frame(fd: c_int, kind: u32, f: Fail) {
    let frame = Frame {
        kind,
        stage: f.stage as u32,
        errno: f.errno,
        detail: f.detail,
    };
    // SAFETY: Frame is repr(C) plain data without padding; the slice covers exactly it.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (&frame as *const Frame).cast::<u8>(),
            core::mem::size_of::<Frame>(),
        )
    };
    let _ = write_all(fd, bytes);
}

/// Blocks until the parent says GO. End of file means the parent gave up (or died): leave.
pub(super) fn wait_go(sync_fd: c_int) -> R {
    let mut b = [0u8; 1];
    loop {
        match sys!(libc::SYS_read, sync_fd, b.as_mut_ptr(), 1) {
            Ok(1) if b == [GO] => return Ok(()),
            Ok(_) => exit(1),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e).at(Stage::Handshake, 0),
        }
    }
}

/// Exits quietly if the parent is gone (its end of the sync channel is closed): a parent
/// that died before `pdeathsig` was (re)armed would otherwise leave us running.
pub(super) fn exit_if_parent_gone(sync_fd: c_int) {
    let mut p = libc::pollfd {
        fd: sync_fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let n = sys!(
        libc::SYS_ppoll,
        &mut p as *mut libc::pollfd,
        1,
        &zero as *const libc::timespec,
        0,
        8
    );
    if matches!(n, Ok(1..)) && p.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0 {
        exit(1);
    }
}
