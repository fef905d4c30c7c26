//! Signals: every handler back to its default, the mask cleared just before the program's
//! `execve`, and the parent-death signal (re)armed.

use super::syscall::{prctl, sys};
use super::{At, R};
use crate::error::Stage;

/// The sandbox dies with the thread that cloned it (a long-lived spawner thread).
pub(super) fn pdeathsig() -> R {
    prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize).at(Stage::ParentDeathSignal, 0)
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 share this layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Every signal back to its default action: the parent's handlers are not ours, and an
/// ignored SIGCHLD or SIGPIPE would survive `execve`. Signals stay blocked, as the spawner
/// thread had them, until the program (or the init) takes over.
pub(super) fn reset_signal_handlers() {
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let _ = sys!(
            libc::SYS_rt_sigaction,
            sig,
            &dfl as *const KernelSigaction,
            0,
            8
        );
    }
}

pub(super) fn unblock_all_signals() -> R {
    let empty: u64 = 0;
    sys!(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        0,
        8
    )
    .at(Stage::Signals, 0)
    .map(drop)
}
