//! File descriptors: stdio placed and the rest closed right after the clone; the
//! descriptors passed on purpose placed, and the init's kept open, just before `execve`.

use super::syscall::sys;
use super::{At, R};
use crate::error::Stage;
use crate::spawn::prepare::ChildPlan;
use libc::{c_int, c_uint};

/// Places the program's stdio on 0, 1, 2 and closes every other descriptor but the ones
/// the plan keeps (sync channel, status pipe, init memfd, namespaces to join).
pub(super) fn arrange_fds(plan: &ChildPlan) -> R {
    for (target, &src) in (0..).zip(plan.stdio.iter()) {
        if src >= 0 {
            // The parent made every source >= 3, so source and target never coincide.
            sys!(libc::SYS_dup3, src, target as c_int, 0).at(Stage::FileDescriptors, 0)?;
        }
    }
    let mut lo: c_uint = 3;
    for &fd in plan.keep.iter().take(plan.keep_len) {
        let fd = fd as c_uint;
        if fd > lo {
            sys!(libc::SYS_close_range, lo, fd.saturating_sub(1), 0)
                .at(Stage::FileDescriptors, 0)?;
        }
        if fd >= lo {
            lo = fd.saturating_add(1);
        }
    }
    sys!(libc::SYS_close_range, lo, c_uint::MAX, 0)
        .at(Stage::FileDescriptors, 0)
        .map(drop)
}

/// Places the descriptors passed on purpose at their numbers (without close-on-exec), and
/// returns the init's memfd, moved above them if it was in the way. Every number inside is
/// below the plan's floor, and the sync channel and status pipe are above it; the rest of
/// what sits below (namespace and mount descriptors) is no longer needed.
pub(super) fn place_passed_fds(plan: &ChildPlan) -> Result<c_int, c_int> {
    let mut init_fd = plan.init_fd;
    if plan.pass_len == 0 {
        return Ok(init_fd);
    }
    if init_fd >= 0 && init_fd < plan.pass_floor {
        init_fd = sys!(
            libc::SYS_fcntl,
            init_fd,
            libc::F_DUPFD_CLOEXEC,
            plan.pass_floor
        )? as c_int;
    }
    // Every source sits at or above the floor (the parent copied it there) and every target
    // below it, so no placement clobbers a source still to be placed.
    for &(src, target) in plan.pass.iter().take(plan.pass_len) {
        sys!(libc::SYS_dup3, src, target, 0)?;
    }
    Ok(init_fd)
}

/// Makes the fds the init needs survive its `execve` (it closes them on the program's).
pub(super) fn keep_across_exec(fd: c_int) -> Result<(), c_int> {
    if fd < 0 {
        return Ok(());
    }
    sys!(libc::SYS_fcntl, fd, libc::F_SETFD, 0).map(drop)
}
