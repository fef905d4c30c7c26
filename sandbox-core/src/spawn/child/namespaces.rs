//! Namespaces made inside the sandbox after the clone: the time namespace (with its clock
//! offsets).

use super::syscall::{close, open, sys, write_all};
use crate::spawn::prepare::ChildPlan;
use libc::c_int;

/// A new time namespace for the processes this one executes. (`execve` enters it, since
/// Linux 6.0; a process sharing memory, as this one does, may not `setns` into it itself.)
pub(super) fn time_namespace(plan: &ChildPlan) -> Result<(), c_int> {
    sys!(libc::SYS_unshare, libc::CLONE_NEWTIME)?;
    if let Some(offsets) = &plan.time_offsets {
        let fd = open(c"/proc/self/timens_offsets", libc::O_WRONLY, 0)?;
        let r = write_all(fd, offsets.as_bytes());
        close(fd);
        r?;
    }
    Ok(())
}
