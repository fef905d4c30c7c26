//! # The child: everything between `clone3` and `execve`
//!
//! The code in this module runs in a process made by `clone3` from the spawner thread of a
//! multi-threaded (tokio) program. Such a process is a copy of *one* thread: every lock that
//! another thread held at the moment of the clone (malloc's arenas, stdout, std's
//! environment lock, tokio's internals) stays locked forever in it, and glibc's fork
//! handlers, which would reset some of them, did not run. So this code:
//!
//! - **never allocates or frees** (no `Vec`, `String`, `format!`, `Box`), never locks, never
//!   prints, never panics (indexing, `unwrap` and overflowing arithmetic are denied below);
//! - only makes system calls on data the parent prepared ([`ChildPlan`]: C strings, pointer
//!   arrays, fd numbers), reached through the copy-on-write image of the parent's memory;
//! - never drops anything it did not create (the parent's tokio objects share their epoll
//!   set with the parent);
//! - avoids the glibc wrappers that act on the whole process (`setuid`, `setgroups`,
//!   `fork`): they signal the parent's other threads, which do not exist here. The raw system
//!   calls are used instead;
//! - ends in `execve` or `_exit`, never by returning.
//!
//! On failure it writes `(stage, errno, detail)` to the sync channel and exits with 127; the
//! parent turns that into [`Error::Setup`](crate::Error::Setup). The test
//! `tests/no_alloc_in_child.rs` runs every path here under a counting allocator.
//!
//! The same rules hold for the built-in init and the relay, which are forks of this process
//! and never execute anything.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use super::prepare::{ChildPlan, Identity};
use super::report::{Frame, StatusFrame, GO, KIND_ERROR, KIND_USERNS, STATUS_EXIT, STATUS_PID};
use crate::error::Stage;
use crate::sys::CloneArgs;
use core::convert::Infallible;
use core::ffi::CStr;
use libc::{c_int, c_long, c_uint};
use sandbox_fs::Op;

/// Signals the init and the relay pass on to the process they supervise.
const FORWARDED: [c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Exit code of a child whose setup failed.
const SETUP_FAILED: c_int = 127;

#[derive(Clone, Copy)]
struct Fail {
    stage: Stage,
    errno: c_int,
    detail: u32,
}

type R<T = ()> = Result<T, Fail>;

fn errno() -> c_int {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn ret(r: c_long) -> Result<c_long, c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

fn ret_int(r: c_int) -> Result<c_int, c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

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

fn exit(code: c_int) -> ! {
    // SAFETY: _exit ends the process without running atexit handlers or flushing stdio.
    unsafe { libc::_exit(code) }
}

fn close(fd: c_int) {
    // SAFETY: closing a descriptor number; errors (EBADF) are harmless here.
    unsafe { libc::close(fd) };
}

fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), c_int> {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match ret(r as c_long) {
            Ok(n) => buf = buf.get(n as usize..).unwrap_or(&[]),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn as_bytes<T>(v: &T) -> &[u8] {
    // SAFETY: only used on repr(C) plain-data frames without padding; the slice covers
    // exactly the value and lives as long as the borrow.
    unsafe { core::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

fn send_frame(fd: c_int, kind: u32, f: Fail) {
    let frame = Frame {
        kind,
        stage: f.stage as u32,
        errno: f.errno,
        detail: f.detail,
    };
    let _ = write_all(fd, as_bytes(&frame));
}

fn send_status(fd: c_int, kind: u32, value: c_int) {
    if fd >= 0 {
        let _ = write_all(fd, as_bytes(&StatusFrame { kind, value }));
    }
}

fn prctl(option: c_int, arg: libc::c_ulong) -> Result<(), c_int> {
    // SAFETY: the prctl options used here take one integer argument.
    ret_int(unsafe { libc::prctl(option, arg, 0, 0, 0) }).map(drop)
}

/// The sandbox dies with the thread that cloned it (the long-lived spawner thread).
fn pdeathsig() -> R {
    prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).at(Stage::ParentDeathSignal, 0)
}

/// Exits quietly if the parent is gone (its end of the sync channel is closed): a parent
/// that died before `pdeathsig` was (re)armed would otherwise leave us running.
fn exit_if_parent_gone(sync_fd: c_int) {
    let mut p = libc::pollfd {
        fd: sync_fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n > 0 && p.revents & (libc::POLLHUP | libc::POLLRDHUP) != 0 {
        exit(1);
    }
}

/// Every signal back to its default action (the parent's handlers are not ours, and an
/// ignored SIGCHLD would make the kernel reap children behind the init's back). Signals stay
/// blocked, as the spawner thread had them, until just before `execve`.
fn reset_signal_handlers() {
    // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask and no flags.
    let dfl: libc::sigaction = unsafe { core::mem::zeroed() };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `dfl` is a valid sigaction; EINVAL for reserved signals is ignored.
        unsafe { libc::sigaction(sig, &dfl, core::ptr::null_mut()) };
    }
}

fn unblock_all_signals() -> R {
    // SAFETY: an all-zero sigset_t is the empty set.
    let empty: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: valid set pointer, null old-set pointer.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, core::ptr::null_mut()) };
    if r != 0 {
        return Err(Fail {
            stage: Stage::Signals,
            errno: r,
            detail: 0,
        });
    }
    Ok(())
}

fn close_range(first: c_uint, last: c_uint) -> Result<(), c_int> {
    // SAFETY: close_range takes two descriptor numbers and flags.
    ret(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(drop)
}

/// Places the program's stdio on 0, 1, 2 and closes every other descriptor but the ones
/// the plan keeps (sync channel, status pipe, namespaces to join).
fn arrange_fds(plan: &ChildPlan) -> R {
    for (target, &src) in (0..).zip(plan.stdio.iter()) {
        if src >= 0 {
            // SAFETY: dup2 of a descriptor the parent prepared (always >= 3) onto 0..=2.
            ret_int(unsafe { libc::dup2(src, target) }).at(Stage::FileDescriptors, 0)?;
        }
    }
    let mut lo: c_uint = 3;
    for &fd in plan.keep.iter().take(plan.keep_len) {
        let fd = fd as c_uint;
        if fd > lo {
            close_range(lo, fd.saturating_sub(1)).at(Stage::FileDescriptors, 0)?;
        }
        if fd >= lo {
            lo = fd.saturating_add(1);
        }
    }
    close_range(lo, c_uint::MAX).at(Stage::FileDescriptors, 0)
}

/// Blocks until the parent says GO. End of file means the parent gave up (or died): leave.
fn wait_go(sync_fd: c_int) -> R {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: `b` is a valid one-byte buffer.
        let r = unsafe { libc::read(sync_fd, b.as_mut_ptr().cast(), 1) };
        match ret(r as c_long) {
            Ok(1) if b == [GO] => return Ok(()),
            Ok(_) => exit(1),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e).at(Stage::Handshake, 0),
        }
    }
}

fn setns(fd: c_int, nstype: c_int) -> Result<(), c_int> {
    // SAFETY: setns takes a descriptor and a namespace type.
    ret_int(unsafe { libc::setns(fd, nstype) }).map(drop)
}

fn unshare(flags: c_int) -> Result<(), c_int> {
    // SAFETY: unshare takes flags only; this process is single-threaded.
    ret_int(unsafe { libc::unshare(flags) }).map(drop)
}

fn become_ids(id: &Identity) -> R {
    if id.clear_groups {
        // SAFETY: raw setgroups(0, NULL) for this (only) thread; not glibc's broadcasting one.
        let r = unsafe { libc::syscall(libc::SYS_setgroups, 0, core::ptr::null::<libc::gid_t>()) };
        match ret(r) {
            Ok(_) => {}
            Err(libc::EPERM) if id.groups_best_effort => {}
            Err(e) => return Err(e).at(Stage::SetGroups, 0),
        }
    }
    // SAFETY: raw setresgid with three ids.
    let r = unsafe { libc::syscall(libc::SYS_setresgid, id.gid, id.gid, id.gid) };
    ret(r).at(Stage::SetGid, id.gid)?;
    // SAFETY: raw setresuid with three ids.
    let r = unsafe { libc::syscall(libc::SYS_setresuid, id.uid, id.uid, id.uid) };
    ret(r).at(Stage::SetUid, id.uid).map(drop)
}

/// A plain fork through clone3 (no glibc fork handlers, which take malloc's locks).
fn fork() -> R<c_int> {
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM and without a stack has fork semantics: the child
    // returns here with 0 on a copy of this stack.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            size_of::<CloneArgs>(),
        )
    };
    ret(r).at(Stage::Fork, 0).map(|pid| pid as c_int)
}

fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int, c_int> {
    // SAFETY: `path` is a valid C string.
    ret_int(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

/// Whether this process's memory may be read by processes of the same uid (`ptrace`,
/// `/proc/<pid>/mem`). The child is a copy of the embedding application's memory, so it
/// stays non-dumpable, which sandboxed code cannot undo; `execve` gives the program a fresh
/// image and its own setting.
fn dumpable(on: bool) -> Result<(), c_int> {
    prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on))
}

fn time_namespace(plan: &ChildPlan) -> Result<(), c_int> {
    unshare(libc::CLONE_NEWTIME)?;
    if let Some(offsets) = &plan.time_offsets {
        // /proc/self files of a non-dumpable process belong to the host's root; for this
        // one write, while no other process of the sandbox exists, they are ours.
        dumpable(true)?;
        let r = open(c"/proc/self/timens_offsets", libc::O_WRONLY, 0).and_then(|fd| {
            let r = write_all(fd, offsets.as_bytes());
            close(fd);
            r
        });
        dumpable(false)?;
        r?;
    }
    // unshare only moved our future children; enter the namespace ourselves too, so the
    // init (and /proc/<pid>/ns/time) is in it.
    let fd = open(c"/proc/self/ns/time_for_children", libc::O_RDONLY, 0)?;
    let r = setns(fd, libc::CLONE_NEWTIME);
    close(fd);
    r
}

fn loopback_up() -> Result<(), c_int> {
    // SAFETY: socket takes three integers.
    let s =
        ret_int(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    let r = ret_int(unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr) });
    close(s);
    r.map(drop)
}

fn opt(s: &Option<std::ffi::CString>) -> *const libc::c_char {
    match s {
        Some(s) => s.as_ptr(),
        None => core::ptr::null(),
    }
}

fn mount(
    source: *const libc::c_char,
    target: &CStr,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> Result<(), c_int> {
    // SAFETY: every pointer is null or a valid C string prepared by the parent.
    ret_int(unsafe { libc::mount(source, target.as_ptr(), fstype, flags, data.cast()) }).map(drop)
}

fn chdir(path: &CStr) -> Result<(), c_int> {
    // SAFETY: valid C string.
    ret_int(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

fn mount_op(op: &Op) -> Result<(), c_int> {
    let null = core::ptr::null();
    match op {
        Op::MakePrivate => mount(null, c"/", null, libc::MS_REC | libc::MS_PRIVATE, null),
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
        } => mount(opt(source), target, opt(fstype), *flags, opt(data)),
        Op::Mkdir { path, mode } => {
            // SAFETY: valid C string.
            match ret_int(unsafe { libc::mkdir(path.as_ptr(), *mode) }) {
                Err(libc::EEXIST) => Ok(()),
                r => r.map(drop),
            }
        }
        Op::Touch { path, mode } => {
            let fd = open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_NOCTTY, *mode)?;
            close(fd);
            Ok(())
        }
        Op::Symlink { target, link } => {
            // SAFETY: valid C strings.
            match ret_int(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
                Err(libc::EEXIST) => Ok(()),
                r => r.map(drop),
            }
        }
        Op::PivotRoot { new_root } => {
            // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
            // (after making it a slave, so the detach does not propagate) leaves the new.
            chdir(new_root)?;
            // SAFETY: two valid C strings.
            ret(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
            mount(null, c".", null, libc::MS_SLAVE | libc::MS_REC, null)?;
            // SAFETY: valid C string.
            ret_int(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
            chdir(c"/")
        }
        _ => Err(libc::EINVAL),
    }
}

/// The init (PID 1 of the sandbox) or the relay: waits for `child`, passes the forwarded
/// signals on to it, reaps every process that ends, and exits with `child`'s status after
/// sending it to the parent (PID 1 cannot die of a signal, so the parent could not see it).
fn supervise(plan: &ChildPlan, child: c_int, subreaper: bool, name: &CStr) -> ! {
    // Show what we are in `ps` (the command line is still the parent's).
    let _ = prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong);
    // Let the parent see end-of-file once the program executes, and hold none of its stdio.
    close(plan.sync_fd);
    close(0);
    close(1);
    close(2);
    if subreaper {
        let _ = prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise and fill it.
    let mut set: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in FORWARDED.into_iter().chain([libc::SIGCHLD]) {
        // SAFETY: `set` is a valid sigset_t and `sig` a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    loop {
        // Every signal is blocked, so the ones in `set` wait here until taken.
        // SAFETY: valid set; null info and timeout are allowed.
        let sig = unsafe { libc::sigtimedwait(&set, core::ptr::null_mut(), core::ptr::null()) };
        if sig == libc::SIGCHLD {
            loop {
                let mut status: c_int = 0;
                // SAFETY: valid status pointer; null rusage.
                let pid = unsafe {
                    libc::wait4(
                        -1,
                        &mut status,
                        libc::WNOHANG | libc::__WALL,
                        core::ptr::null_mut(),
                    )
                };
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    send_status(plan.status_fd, STATUS_EXIT, status);
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128_i32.saturating_add(libc::WTERMSIG(status))
                    };
                    exit(code);
                }
            }
        } else if sig > 0 {
            // SAFETY: signalling our own child by pid; it cannot have been reaped and
            // recycled, since only this process reaps it.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// The last steps, in the program's own process.
fn exec_program(plan: &ChildPlan) -> Fail {
    let run = || -> R<Infallible> {
        if plan.program_pdeathsig {
            pdeathsig()?;
        }
        chdir(&plan.cwd).at(Stage::Chdir, 0)?;
        unblock_all_signals()?;
        // SAFETY: program, argv and envp are valid, NULL-terminated arrays of C strings.
        unsafe {
            libc::execve(
                plan.program.as_ptr(),
                plan.argv.as_ptr(),
                plan.envp.as_ptr(),
            )
        };
        Err(errno()).at(Stage::Exec, 0)
    };
    match run() {
        Ok(never) => match never {},
        Err(f) => f,
    }
}

fn setup(plan: &ChildPlan) -> R<Infallible> {
    pdeathsig()?;
    reset_signal_handlers();
    arrange_fds(plan)?;
    if plan.wait_go {
        wait_go(plan.sync_fd)?;
    }
    for (i, &(fd, nstype)) in (0..).zip(plan.joins.iter()) {
        setns(fd, nstype).at(Stage::JoinNamespace, i)?;
        close(fd);
    }
    if plan.late_userns {
        unshare(libc::CLONE_NEWUSER).at(Stage::Unshare, libc::CLONE_NEWUSER as u32)?;
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
    }
    // The parent has written our id maps (which needed us dumpable, when it is not root).
    dumpable(false).at(Stage::Dumpable, 0)?;
    if let Some(id) = &plan.identity {
        become_ids(id)?;
        // Changing ids cleared the parent-death signal.
        pdeathsig()?;
    }
    exit_if_parent_gone(plan.sync_fd);
    if plan.unshare_flags != 0 {
        unshare(plan.unshare_flags).at(Stage::Unshare, plan.unshare_flags as u32)?;
    }
    if plan.relay {
        let pid = fork()?;
        if pid > 0 {
            send_status(plan.status_fd, STATUS_PID, pid);
            supervise(plan, pid, false, c"sandbox-relay");
        }
        pdeathsig()?;
    }
    if plan.time_ns {
        time_namespace(plan).at(Stage::TimeNamespace, 0)?;
    }
    if plan.cgroup_ns {
        unshare(libc::CLONE_NEWCGROUP).at(Stage::CgroupNamespace, 0)?;
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: valid buffer of the given length.
        let r = unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) };
        ret_int(r).at(Stage::Hostname, 0)?;
    }
    if plan.lo_up {
        loopback_up().at(Stage::Loopback, 0)?;
    }
    for (i, op) in (0..).zip(plan.mounts.ops().iter()) {
        mount_op(op).at(Stage::Mount, i)?;
    }
    if plan.init {
        let pid = fork()?;
        if pid > 0 {
            supervise(plan, pid, plan.init_subreaper, c"sandbox-init");
        }
    }
    Err(exec_program(plan))
}

/// The child's entry point, called on the child's side of `clone3`. Never returns.
pub(super) fn run(plan: &ChildPlan) -> ! {
    let fail = match setup(plan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    send_frame(plan.sync_fd, KIND_ERROR, fail);
    exit(SETUP_FAILED)
}
