//! The last steps, from the working directory to `execve`: session and terminal,
//! capabilities, no_new_privs, landlock, passed descriptors, resource limits, seccomp, and
//! the `execve` of the built-in init or of the program.

use super::caps::drop_capabilities;
use super::fds::{keep_across_exec, place_passed_fds};
use super::landlock::apply_landlock;
use super::seccomp::load_seccomp;
use super::signals::{pdeathsig, unblock_all_signals};
use super::syscall::{chdir, prctl, sys};
use super::timeline::mark;
use super::{At, Fail, R};
use crate::error::Stage;
use crate::spawn::prepare::ChildPlan;
use crate::spawn::timeline::slot;
use core::convert::Infallible;

/// The last steps: execute the built-in init (which forks the program), or the program.
pub(super) fn execute(plan: &ChildPlan) -> Fail {
    let run = || -> R<Infallible> {
        if plan.program_pdeathsig && plan.init_fd < 0 {
            pdeathsig()?;
        }
        chdir(&plan.cwd).at(Stage::Chdir, 0)?;
        // A session of its own: no signal or keystroke reaches the caller's terminal.
        sys!(libc::SYS_setsid).at(Stage::Session, 0)?;
        if plan.controlling_tty >= 0 {
            sys!(libc::SYS_ioctl, plan.controlling_tty, libc::TIOCSCTTY, 0)
                .at(Stage::Terminal, 0)?;
        }
        drop_capabilities(plan).at(Stage::Capabilities, 0)?;
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1).at(Stage::NoNewPrivs, 0)?;
        apply_landlock(plan)?;
        let init_fd = place_passed_fds(plan).at(Stage::FileDescriptors, 1)?;
        // Last but for the filter: an open-files limit must not stop the steps above.
        for &(resource, soft, hard) in plan.rlimits.iter().take(plan.rlimits_len) {
            let rl = libc::rlimit64 {
                rlim_cur: soft,
                rlim_max: hard,
            };
            sys!(
                libc::SYS_prlimit64,
                0,
                resource,
                &rl as *const libc::rlimit64,
                0
            )
            .at(Stage::Limits, resource)?;
        }
        mark(plan, slot::HARDENED);
        if plan.init_fd >= 0 {
            keep_across_exec(plan.sync_fd).at(Stage::Init, 0)?;
            keep_across_exec(plan.status_fd).at(Stage::Init, 0)?;
            load_seccomp(plan)?;
            mark(plan, slot::SECCOMP);
            let e = sys!(
                libc::SYS_execveat,
                init_fd,
                c"".as_ptr(),
                plan.init_argv.as_ptr(),
                plan.envp.as_ptr(),
                libc::AT_EMPTY_PATH
            );
            return Err(e.err().unwrap_or(libc::EINVAL)).at(Stage::Init, 0);
        }
        unblock_all_signals()?;
        load_seccomp(plan)?;
        mark(plan, slot::SECCOMP);
        let e = sys!(
            libc::SYS_execve,
            plan.program.as_ptr(),
            plan.argv.as_ptr(),
            plan.envp.as_ptr()
        );
        Err(e.err().unwrap_or(libc::EINVAL)).at(Stage::Exec, 0)
    };
    match run() {
        Ok(never) => match never {},
        Err(f) => f,
    }
}
