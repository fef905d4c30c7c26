//! The sandbox's user and group ids: supplementary groups cleared, then (in a user
//! namespace of its own or joined) gid and uid set, with the caller's dumpable setting put
//! back.

use super::syscall::{prctl, sys};
use super::{At, R};
use crate::error::Stage;
use crate::spawn::prepare::{ChildPlan, Identity};

pub(super) fn become_ids(plan: &ChildPlan, id: &Identity) -> R {
    let switch = || -> R {
        if id.clear_groups {
            match sys!(libc::SYS_setgroups, 0, 0) {
                Ok(_) => {}
                Err(libc::EPERM) if id.groups_best_effort => {}
                Err(e) => return Err(e).at(Stage::SetGroups, 0),
            }
        }
        if id.set_ids {
            sys!(libc::SYS_setresgid, id.gid, id.gid, id.gid).at(Stage::SetGid, id.gid)?;
            sys!(libc::SYS_setresuid, id.uid, id.uid, id.uid).at(Stage::SetUid, id.uid)?;
        }
        Ok(())
    };
    let r = switch();
    // (Clearing the groups alone changes neither the dumpable setting nor anything else of
    // the caller's: leave it be.)
    if plan.share_memory && id.set_ids {
        // A change of ids makes the memory non-dumpable, and this memory is the caller's:
        // give the caller its setting back, whether the switch succeeded or not. (Nothing
        // else can reach this process meanwhile: its user namespace is new.)
        let _ = prctl(libc::PR_SET_DUMPABLE, plan.parent_dumpable as usize);
    }
    r
}
