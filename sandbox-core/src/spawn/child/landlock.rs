//! Landlock: the plan's rules, resolved inside the new root, added to the ruleset the
//! parent created, which then restricts this process and the program.

use super::syscall::{close, sys};
use super::{At, R};
use crate::error::Stage;
use crate::spawn::prepare::ChildPlan;
use libc::c_int;

/// `struct landlock_path_beneath_attr` (packed: 12 bytes).
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// Fills the landlock ruleset with the plan's paths, resolved inside the new root, and
/// restricts this process (and so the program) to them.
pub(super) fn apply_landlock(plan: &ChildPlan) -> R {
    use crate::security::landlock_access::FILE;
    const RULE_PATH_BENEATH: usize = 1;
    if plan.landlock_fd < 0 {
        return Ok(());
    }
    for (i, (path, rights)) in (0..).zip(plan.landlock_rules.iter()) {
        let fd = sys!(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC
        )
        .at(Stage::Landlock, i)? as c_int;
        // SAFETY: `stat` is plain integers, for which all zeroes is a valid value.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        let r = sys!(libc::SYS_fstat, fd, &mut st as *mut libc::stat);
        if let Err(e) = r {
            close(fd);
            return Err(e).at(Stage::Landlock, i);
        }
        // A file takes only the rights about files.
        let allowed = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            *rights
        } else {
            *rights & FILE
        };
        let attr = PathBeneath {
            allowed_access: allowed,
            parent_fd: fd,
        };
        let r = sys!(
            libc::SYS_landlock_add_rule,
            plan.landlock_fd,
            RULE_PATH_BENEATH,
            &attr as *const PathBeneath,
            0
        );
        close(fd);
        r.at(Stage::Landlock, i)?;
    }
    let n = plan.landlock_rules.len() as u32;
    sys!(libc::SYS_landlock_restrict_self, plan.landlock_fd, 0).at(Stage::Landlock, n)?;
    close(plan.landlock_fd);
    Ok(())
}
