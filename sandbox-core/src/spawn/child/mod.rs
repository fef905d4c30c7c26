//! # The child: everything between `clone3` and `execve`
//!
//! The code in this module runs in a process made by `clone3(CLONE_VM)` from a spawner
//! thread of a multi-threaded (tokio) program: like `posix_spawn`'s child, it runs on a
//! stack of its own but **shares the caller's memory**, while the caller's other threads go
//! on running. Sharing is what makes a spawn cost the same whatever the caller's size (a
//! fork-like clone copies the page tables and makes every page of the caller copy-on-write
//! until the child executes). So this code:
//!
//! - **never allocates or frees** (no `Vec`, `String`, `format!`, `Box`), never locks, never
//!   prints, never panics (indexing, `unwrap` and overflowing arithmetic are denied below):
//!   the allocator's state and locks are the caller's, live;
//! - **writes no memory but its own stack** and the few fields of the plan meant for it: it
//!   only reads the [`ChildPlan`] the parent prepared (C strings, pointer arrays, fd numbers);
//! - makes **raw system calls** (inline assembly, [`sc`](syscall::sc)), never libc's
//!   wrappers: they write `errno`, which lives in the spawner thread's thread-local storage
//!   that this process shares, and some of them (`setuid`, `setgroups`) signal threads that
//!   are not ours;
//! - changes no per-memory setting of the caller: a change of ids makes the (shared) memory
//!   non-dumpable, so the caller's setting is put back at once. A child that *joins*
//!   existing namespaces (where other processes could reach it) does not share: it gets a
//!   private copy, non-dumpable from its first instruction;
//! - ends in `execve` (the program, or the built-in init from its memfd) or `_exit`, never by
//!   returning.
//!
//! On failure it writes `(stage, errno, detail)` to the sync channel and exits with 127; the
//! parent turns that into [`Error::Setup`](crate::Error::Setup). The test
//! `tests/no_alloc_in_child.rs` runs every path here under a counting allocator.
//!
//! ## The steps, in order, and where they live
//!
//! [`run`] (the entry point, on the first stack) and [`setup_first`]:
//! 1. memory non-dumpable (a private copy only), parent-death signal, signal handlers
//!    reset: `signals.rs`;
//! 2. stdio placed on 0, 1, 2 and every other descriptor closed: `fds.rs`;
//! 3. the parent's GO awaited, on the sync channel: `handshake.rs`;
//! 4. namespaces joined; a late user namespace (the parent writes its id maps); the
//!    sandbox's ids: `ids.rs`; the namespaces still to create unshared.
//!
//! When the PID namespace was entered after the clone, [`run`] clones a sibling into it
//! ([`relayed`], on the second stack: `syscall.rs` holds the `clone3`) and exits. Then
//! [`setup_rest`]:
//! 5. time namespace (`namespaces.rs`), cgroup namespace, hostname;
//! 6. loopback up and `eth0` configured: `net.rs`;
//! 7. the filesystem, replayed from the plan's mount steps: `mount.rs`.
//!
//! Then `execute` (`exec.rs`): working directory, session and terminal, capabilities
//! (`caps.rs`), no_new_privs, landlock (`landlock.rs`), passed descriptors (`fds.rs`),
//! resource limits, seccomp (`seccomp.rs`), and `execve`. Any failure goes to [`fail`].
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod caps;
mod exec;
mod fds;
mod handshake;
mod ids;
mod landlock;
mod mount;
mod namespaces;
mod net;
mod seccomp;
mod signals;
mod syscall;
mod timeline;

pub(super) use syscall::clone_onto_stack;

use super::prepare::ChildPlan;
use super::report::{KIND_ERROR, KIND_USERNS};
use crate::error::Stage;
use crate::spawn::timeline::slot;
use crate::sys::CloneArgs;
use exec::execute;
use fds::arrange_fds;
use handshake::{exit_if_parent_gone, send_frame, wait_go};
use ids::become_ids;
use libc::c_int;
use mount::mount_op;
use namespaces::time_namespace;
use net::{configure_interface, loopback_up};
use signals::{pdeathsig, reset_signal_handlers};
use syscall::{close, exit, prctl, ret, sys};
use timeline::mark;

/// Exit code of a child whose setup failed.
const SETUP_FAILED: c_int = 127;

/// Where the setup failed: the step, the kernel's errno, and a step-specific detail (the
/// index of the mount step or landlock rule, the uid, the namespace flag, ...).
#[derive(Clone, Copy)]
struct Fail {
    stage: Stage,
    errno: c_int,
    detail: u32,
}

/// The result of a step.
type R<T = ()> = Result<T, Fail>;

/// Names the step (and detail) of a raw system call's errno.
trait At<T> {
    fn at(self, stage: Stage, detail: u32) -> R<T>;
}

impl<T> At<T> for Result<T, c_int> {
    fn at(self, stage: Stage, detail: u32) -> R<T> {
        self.map_err(|errno| Fail {
            stage,
            errno,
            detail,
        })
    }
}

/// Steps up to (and including) the namespaces entered or created after the clone.
fn setup_first(plan: &ChildPlan) -> R {
    if !plan.share_memory {
        // A private copy of the caller's memory, about to join namespaces where others may
        // see it: nobody but the host's root may read it (no ptrace, no /proc/<pid>/mem, no
        // core dump). Never undone; `execve` gives the program its own setting.
        prctl(libc::PR_SET_DUMPABLE, 0).at(Stage::Dumpable, 0)?;
    }
    pdeathsig()?;
    reset_signal_handlers();
    arrange_fds(plan)?;
    mark(plan, slot::FDS);
    if plan.wait_go {
        wait_go(plan.sync_fd)?;
        mark(plan, slot::GO);
    }
    for (i, &(fd, nstype)) in (0..).zip(plan.joins.iter()) {
        sys!(libc::SYS_setns, fd, nstype).at(Stage::JoinNamespace, i)?;
        close(fd);
    }
    if plan.late_userns {
        sys!(libc::SYS_unshare, libc::CLONE_NEWUSER)
            .at(Stage::Unshare, libc::CLONE_NEWUSER as u32)?;
        send_frame(
            plan.sync_fd,
            KIND_USERNS,
            Fail {
                stage: Stage::Handshake,
                errno: 0,
                detail: 0,
            },
        );
        wait_go(plan.sync_fd)?;
        mark(plan, slot::GO);
    }
    if let Some(id) = &plan.identity {
        become_ids(plan, id)?;
        // Changing ids cleared the parent-death signal.
        pdeathsig()?;
    }
    exit_if_parent_gone(plan.sync_fd);
    if plan.unshare_flags != 0 {
        sys!(libc::SYS_unshare, plan.unshare_flags)
            .at(Stage::Unshare, plan.unshare_flags as u32)?;
    }
    mark(plan, slot::NAMESPACES);
    Ok(())
}

/// Steps inside the sandbox's PID namespace, up to the `execve`.
fn setup_rest(plan: &ChildPlan) -> Fail {
    let run = || -> R {
        if plan.time_ns {
            time_namespace(plan).at(Stage::TimeNamespace, 0)?;
        }
        if plan.cgroup_ns {
            sys!(libc::SYS_unshare, libc::CLONE_NEWCGROUP).at(Stage::CgroupNamespace, 0)?;
        }
        if let Some(h) = &plan.hostname {
            sys!(libc::SYS_sethostname, h.as_ptr(), h.as_bytes().len()).at(Stage::Hostname, 0)?;
        }
        if plan.lo_up {
            loopback_up().at(Stage::Loopback, 0)?;
        }
        if let Some(c) = &plan.eth0 {
            configure_interface(c).at(Stage::Network, 0)?;
        }
        mark(plan, slot::NETWORK);
        // Modes of what the plan creates are exact (`/tmp` is 1777 whatever the caller's
        // umask); the program gets the caller's umask back.
        let umask = sys!(libc::SYS_umask, 0).unwrap_or(0o022);
        let mut root = None;
        for (i, op) in (0..).zip(plan.mounts.ops().iter()) {
            mount_op(op, &mut root).at(Stage::Mount, i)?;
            mark(plan, slot::FIRST_MOUNT.saturating_add(i as usize));
        }
        let _ = sys!(libc::SYS_umask, umask);
        Ok(())
    };
    match run() {
        Ok(()) => execute(plan),
        Err(f) => f,
    }
}

fn fail(plan: &ChildPlan, f: Fail) -> ! {
    send_frame(plan.sync_fd, KIND_ERROR, f);
    exit(SETUP_FAILED)
}

/// The process that runs in the sandbox when the PID namespace is entered after the clone
/// (joined, or created by `unshare`): a sibling of the first child (`CLONE_PARENT`), so the
/// caller waits for it directly.
extern "C" fn relayed(plan: *const ChildPlan) -> ! {
    // SAFETY: the parent keeps the plan alive (and unchanged) until this process has
    // executed or exited.
    let plan = unsafe { &*plan };
    if let Err(f) = pdeathsig() {
        fail(plan, f);
    }
    exit_if_parent_gone(plan.sync_fd);
    let f = setup_rest(plan);
    fail(plan, f)
}

/// The child's entry point, on its own stack. Never returns.
pub(super) extern "C" fn run(plan: *const ChildPlan) -> ! {
    // SAFETY: the parent keeps the plan alive (and unchanged) until this process has
    // executed or exited.
    let plan = unsafe { &*plan };
    mark(plan, slot::STARTED);
    if let Err(f) = setup_first(plan) {
        fail(plan, f);
    }
    if plan.relay {
        let args = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_PARENT | libc::CLONE_PARENT_SETTID) as u64,
            parent_tid: plan.stacks.relayed_pid().as_ptr() as u64,
            stack: plan.stacks.second_base() as u64,
            stack_size: plan.stacks.size() as u64,
            ..Default::default()
        };
        // SAFETY: the second stack of the plan is for this sibling alone, and the plan lives
        // until it has executed or exited (the parent waits for the end of file on the sync
        // channel, which this process holds until then).
        let r = unsafe { clone_onto_stack(&args, relayed, plan) };
        if let Err(e) = ret(r) {
            fail(
                plan,
                Fail {
                    stage: Stage::Fork,
                    errno: e,
                    detail: 0,
                },
            );
        }
        // The sibling carries on in the sandbox; this process has done its part.
        exit(0);
    }
    let f = setup_rest(plan);
    fail(plan, f)
}
