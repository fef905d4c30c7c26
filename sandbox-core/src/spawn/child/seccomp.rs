//! Seccomp: the filter the parent compiled, loaded last, just before `execve`.

use super::syscall::sys;
use super::{At, R};
use crate::error::Stage;
use crate::spawn::prepare::ChildPlan;

/// Loads the seccomp filter, last: after it only the `execve` runs.
pub(super) fn load_seccomp(plan: &ChildPlan) -> R {
    if let Some(c) = &plan.seccomp {
        sys!(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            c.fprog() as *const crate::security::SockFprog
        )
        .at(Stage::Seccomp, 0)?;
    }
    Ok(())
}
