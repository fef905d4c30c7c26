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
//! - makes **raw system calls** (inline assembly, [`sc`]), never libc's wrappers: they write
//!   `errno`, which lives in the spawner thread's thread-local storage that this process
//!   shares, and some of them (`setuid`, `setgroups`) signal threads that are not ours;
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
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use super::prepare::{ChildPlan, Identity, IfConfig};
use super::report::{Frame, GO, KIND_ERROR, KIND_USERNS};
use crate::error::Stage;
use crate::sys::CloneArgs;
use core::convert::Infallible;
use core::ffi::CStr;
use libc::{c_int, c_long, c_uint};
use sandbox_fs::Op;

/// Exit code of a child whose setup failed.
const SETUP_FAILED: c_int = 127;

#[derive(Clone, Copy)]
struct Fail {
    stage: Stage,
    errno: c_int,
    detail: u32,
}

type R<T = ()> = Result<T, Fail>;

// ---- raw system calls ------------------------------------------------------------------

/// A raw system call: returns the kernel's result, `-errno` on failure. Touches no memory
/// but what its arguments point to; in particular not `errno`.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "x86_64")]
unsafe fn sc(n: c_long, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: the `syscall` instruction with the kernel's calling convention; it clobbers
    // rcx and r11 only. The caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d, in("r8") e, in("r9") f,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// See the x86_64 version.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "aarch64")]
unsafe fn sc(n: c_long, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let ret: isize;
    // SAFETY: `svc 0` with the kernel's calling convention; only x0 changes. The caller
    // vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a => ret,
            in("x1") b, in("x2") c, in("x3") d, in("x4") e, in("x5") f,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("sandbox-core's child supports x86_64 and aarch64");

fn ret(r: isize) -> Result<usize, c_int> {
    if r < 0 {
        Err(r.unsigned_abs() as c_int)
    } else {
        Ok(r as usize)
    }
}

/// A system call with plain arguments (integers, or pointers to data the plan or this
/// stack owns).
macro_rules! sys {
    ($n:expr $(, $a:expr)* $(,)?) => {{
        let args: [usize; 6] = sys!(@pad $($a as usize),*);
        let [a, b, c, d, e, f] = args;
        // SAFETY: every call site passes integers, valid C strings from the plan or this
        // module, or pointers to live values on this stack, as system call `$n` expects.
        ret(unsafe { sc($n, a, b, c, d, e, f) })
    }};
    (@pad) => { [0, 0, 0, 0, 0, 0] };
    (@pad $a:expr) => { [$a, 0, 0, 0, 0, 0] };
    (@pad $a:expr, $b:expr) => { [$a, $b, 0, 0, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr) => { [$a, $b, $c, 0, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr, $d:expr) => { [$a, $b, $c, $d, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => { [$a, $b, $c, $d, $e, 0] };
}

/// `clone3` onto a new stack: the child starts in `entry(plan)`, which never returns; the
/// parent gets the child's pid (or `-errno`).
///
/// # Safety
/// `args` must describe a clone with its own stack (`stack`, `stack_size`; with `CLONE_VM`,
/// memory that stays mapped while the child runs), and `plan` must outlive the child's use.
pub(super) unsafe fn clone_onto_stack(
    args: &CloneArgs,
    entry: extern "C" fn(*const ChildPlan) -> !,
    plan: *const ChildPlan,
) -> isize {
    let ret: isize;
    let size = core::mem::size_of::<CloneArgs>();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the parent path returns from the syscall with rax only changed (rcx, r11
    // declared clobbered). The child path starts on the new, 16-byte aligned stack top that
    // the kernel installed, with r12/r13 preserved, and calls `entry`, which never returns.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") size,
            in("r12") entry,
            in("r13") plan,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as for x86_64: x9 and x10 survive `svc`, the child calls `entry` on its new
    // stack and never returns.
    unsafe {
        core::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x29, xzr",
            "mov x30, xzr",
            "mov x0, x10",
            "blr x9",
            "brk #0",
            "2:",
            in("x8") libc::SYS_clone3,
            inlateout("x0") args as *const CloneArgs => ret,
            in("x1") size,
            in("x9") entry,
            in("x10") plan,
            options(nostack),
        );
    }
    ret
}

// ---- small steps -----------------------------------------------------------------------

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
    loop {
        let _ = sys!(libc::SYS_exit_group, code);
    }
}

fn close(fd: c_int) {
    let _ = sys!(libc::SYS_close, fd);
}

fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), c_int> {
    while !buf.is_empty() {
        match sys!(libc::SYS_write, fd, buf.as_ptr(), buf.len()) {
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn send_frame(fd: c_int, kind: u32, f: Fail) {
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

fn prctl(option: c_int, arg: usize) -> Result<(), c_int> {
    sys!(libc::SYS_prctl, option, arg).map(drop)
}

/// The sandbox dies with the thread that cloned it (a long-lived spawner thread).
fn pdeathsig() -> R {
    prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize).at(Stage::ParentDeathSignal, 0)
}

/// Exits quietly if the parent is gone (its end of the sync channel is closed): a parent
/// that died before `pdeathsig` was (re)armed would otherwise leave us running.
fn exit_if_parent_gone(sync_fd: c_int) {
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
fn reset_signal_handlers() {
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

fn unblock_all_signals() -> R {
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

/// Places the program's stdio on 0, 1, 2 and closes every other descriptor but the ones
/// the plan keeps (sync channel, status pipe, init memfd, namespaces to join).
fn arrange_fds(plan: &ChildPlan) -> R {
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

/// Blocks until the parent says GO. End of file means the parent gave up (or died): leave.
fn wait_go(sync_fd: c_int) -> R {
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

fn become_ids(plan: &ChildPlan, id: &Identity) -> R {
    let switch = || -> R {
        if id.clear_groups {
            match sys!(libc::SYS_setgroups, 0, 0) {
                Ok(_) => {}
                Err(libc::EPERM) if id.groups_best_effort => {}
                Err(e) => return Err(e).at(Stage::SetGroups, 0),
            }
        }
        sys!(libc::SYS_setresgid, id.gid, id.gid, id.gid).at(Stage::SetGid, id.gid)?;
        sys!(libc::SYS_setresuid, id.uid, id.uid, id.uid).at(Stage::SetUid, id.uid)?;
        Ok(())
    };
    let r = switch();
    if plan.share_memory {
        // A change of ids makes the memory non-dumpable, and this memory is the caller's:
        // give the caller its setting back, whether the switch succeeded or not. (Nothing
        // else can reach this process meanwhile: its user namespace is new.)
        let _ = prctl(libc::PR_SET_DUMPABLE, plan.parent_dumpable as usize);
    }
    r
}

fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int, c_int> {
    sys!(
        libc::SYS_openat,
        libc::AT_FDCWD,
        path.as_ptr(),
        flags | libc::O_CLOEXEC,
        mode
    )
    .map(|fd| fd as c_int)
}

/// A new time namespace for the processes this one executes. (`execve` enters it, since
/// Linux 6.0; a process sharing memory, as this one does, may not `setns` into it itself.)
fn time_namespace(plan: &ChildPlan) -> Result<(), c_int> {
    sys!(libc::SYS_unshare, libc::CLONE_NEWTIME)?;
    if let Some(offsets) = &plan.time_offsets {
        let fd = open(c"/proc/self/timens_offsets", libc::O_WRONLY, 0)?;
        let r = write_all(fd, offsets.as_bytes());
        close(fd);
        r?;
    }
    Ok(())
}

fn loopback_up() -> Result<(), c_int> {
    let s = sys!(
        libc::SYS_socket,
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        0
    )? as c_int;
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    let r = sys!(
        libc::SYS_ioctl,
        s,
        libc::SIOCSIFFLAGS,
        &ifr as *const libc::ifreq
    );
    close(s);
    r.map(drop)
}

fn sockaddr_in(addr: u32) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: addr },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; both are plain data.
    unsafe { core::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// `eth0` of a bridged network (the parent created it in this namespace): address,
/// netmask, up, default route through the bridge. ioctls on a datagram socket, as
/// `ifconfig` and `route` do.
fn configure_interface(c: &IfConfig) -> Result<(), c_int> {
    let s = Fd(sys!(
        libc::SYS_socket,
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        0
    )? as c_int);
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(c.name.iter()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_addr = sockaddr_in(c.addr);
    sys!(
        libc::SYS_ioctl,
        s.0,
        libc::SIOCSIFADDR,
        &mut ifr as *mut libc::ifreq
    )?;
    ifr.ifr_ifru.ifru_netmask = sockaddr_in(c.mask);
    sys!(
        libc::SYS_ioctl,
        s.0,
        libc::SIOCSIFNETMASK,
        &mut ifr as *mut libc::ifreq
    )?;
    sys!(
        libc::SYS_ioctl,
        s.0,
        libc::SIOCGIFFLAGS,
        &mut ifr as *mut libc::ifreq
    )?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    sys!(
        libc::SYS_ioctl,
        s.0,
        libc::SIOCSIFFLAGS,
        &mut ifr as *mut libc::ifreq
    )?;
    // SAFETY: rtentry is plain data; all-zero is valid (destination and mask 0.0.0.0).
    let mut rt: libc::rtentry = unsafe { core::mem::zeroed() };
    rt.rt_dst = sockaddr_in(0);
    rt.rt_genmask = sockaddr_in(0);
    rt.rt_gateway = sockaddr_in(c.gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    rt.rt_dev = c.name.as_ptr() as *mut libc::c_char;
    sys!(
        libc::SYS_ioctl,
        s.0,
        libc::SIOCADDRT,
        &mut rt as *mut libc::rtentry
    )
    .map(drop)
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
    sys!(
        libc::SYS_mount,
        source,
        target.as_ptr(),
        fstype,
        flags,
        data
    )
    .map(drop)
}

fn chdir(path: &CStr) -> Result<(), c_int> {
    sys!(libc::SYS_chdir, path.as_ptr()).map(drop)
}

// ---- the filesystem -------------------------------------------------------------------

use sandbox_fs::kernel::{
    MountAttr, OpenHow, AT_RECURSIVE, FSCONFIG_CMD_CREATE, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING,
    FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH,
    OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
};
use sandbox_fs::{InRoot, Target, TargetKind};

/// An fd this module opened, closed when dropped (a plain integer: no allocation).
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// `openat2(dir, path, O_PATH, RESOLVE_IN_ROOT)`: `path` resolved as if `dir` were `/`.
fn open_in_root(root: c_int, path: &CStr) -> Result<Fd, c_int> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    sys!(
        libc::SYS_openat2,
        root,
        path.as_ptr(),
        &how as *const OpenHow,
        core::mem::size_of::<OpenHow>()
    )
    .map(|fd| Fd(fd as c_int))
}

/// Creates `name` in `dir` (a directory, or an empty file), not following a symlink that
/// may already be there. An existing entry is fine.
fn create_in(dir: &Fd, name: &CStr, kind: TargetKind, mode: libc::mode_t) -> Result<(), c_int> {
    let r = match kind {
        TargetKind::Dir => sys!(libc::SYS_mkdirat, dir.0, name.as_ptr(), mode).map(drop),
        TargetKind::File => sys!(
            libc::SYS_openat,
            dir.0,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode
        )
        .map(|fd| close(fd as c_int)),
    };
    match r {
        Err(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Opens (creating what is missing, when asked) a path inside the root, one component at
/// a time, each resolved with `RESOLVE_IN_ROOT`: whatever symlinks the tree holds, the
/// result is inside it.
fn resolve(root: c_int, t: &InRoot, mode: libc::mode_t) -> Result<Fd, c_int> {
    walk(root, t, t.depth(), t.kind(), mode)
}

/// [`resolve`] of the first `upto` components, the last of them being of kind `kind`.
fn walk(
    root: c_int,
    t: &InRoot,
    upto: usize,
    kind: TargetKind,
    mode: libc::mode_t,
) -> Result<Fd, c_int> {
    // Most targets exist: one lookup of the whole path. Only a missing one is walked
    // component by component to create what is missing.
    if let Some((full, _)) = t.steps().nth(upto.wrapping_sub(1)) {
        match open_in_root(root, full) {
            Err(libc::ENOENT) if t.create() => {}
            r => return r,
        }
    }
    let mut parent: Option<Fd> = None;
    for (i, (prefix, name)) in (1..).zip(t.steps().take(upto)) {
        let last = i == upto;
        let fd = match open_in_root(root, prefix) {
            Err(libc::ENOENT) if t.create() => {
                let (k, m) = if last {
                    (kind, mode)
                } else {
                    (TargetKind::Dir, 0o755)
                };
                match &parent {
                    Some(p) => create_in(p, name, k, m)?,
                    None => create_in(&Fd(dup(root)?), name, k, m)?,
                }
                open_in_root(root, prefix)?
            }
            r => r?,
        };
        parent = Some(fd);
    }
    parent.ok_or(libc::EINVAL)
}

fn dup(fd: c_int) -> Result<c_int, c_int> {
    sys!(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, 0).map(|fd| fd as c_int)
}

/// The fd a mount is moved onto; `None` when an optional target is missing.
fn target_fd(root: c_int, t: &Target) -> Result<Option<Fd>, c_int> {
    match t {
        Target::Staging(path) => {
            let fd = open(path, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
            Ok(Some(Fd(fd)))
        }
        Target::Root(t) => match resolve(root, t, 0o755) {
            Ok(fd) => Ok(Some(fd)),
            Err(libc::ENOENT | libc::EROFS | libc::EACCES | libc::EPERM | libc::ENOTDIR)
                if t.is_optional() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        },
    }
}

fn set_attr(tree: &Fd, attr: u64, recursive: bool) -> Result<(), c_int> {
    if attr == 0 {
        return Ok(());
    }
    let a = MountAttr {
        attr_set: attr,
        ..Default::default()
    };
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    sys!(
        libc::SYS_mount_setattr,
        tree.0,
        c"".as_ptr(),
        libc::AT_EMPTY_PATH as c_uint | rec,
        &a as *const MountAttr,
        core::mem::size_of::<MountAttr>()
    )
    .map(drop)
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (relative to `dir`).
fn clone_tree(dir: c_int, path: &CStr, flags: c_uint) -> Result<Fd, c_int> {
    sys!(
        libc::SYS_open_tree,
        dir,
        path.as_ptr(),
        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | flags
    )
    .map(|fd| Fd(fd as c_int))
}

fn move_onto(tree: &Fd, target: &Fd) -> Result<(), c_int> {
    sys!(
        libc::SYS_move_mount,
        tree.0,
        c"".as_ptr(),
        target.0,
        c"".as_ptr(),
        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    )
    .map(drop)
}

fn fresh(fstype: &CStr, options: &[sandbox_fs::FsOption], attr: u64) -> Result<Fd, c_int> {
    let fs = Fd(sys!(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC)? as c_int);
    for o in options {
        match &o.value {
            Some(v) => sys!(
                libc::SYS_fsconfig,
                fs.0,
                FSCONFIG_SET_STRING,
                o.key.as_ptr(),
                v.as_ptr(),
                0
            )?,
            None => sys!(
                libc::SYS_fsconfig,
                fs.0,
                FSCONFIG_SET_FLAG,
                o.key.as_ptr(),
                0,
                0
            )?,
        };
    }
    sys!(libc::SYS_fsconfig, fs.0, FSCONFIG_CMD_CREATE, 0, 0, 0)?;
    sys!(libc::SYS_fsmount, fs.0, FSMOUNT_CLOEXEC, attr).map(|fd| Fd(fd as c_int))
}

fn write_file(path: &CStr, contents: &[u8], mode: libc::mode_t) -> Result<(), c_int> {
    let fd = Fd(open(
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
        mode,
    )?);
    write_all(fd.0, contents)?;
    // The umask may have narrowed the mode.
    sys!(libc::SYS_fchmod, fd.0, mode).map(drop)
}

/// Builds the sandbox's filesystem: replays the plan's steps. `root` is the new root's
/// directory once [`Op::OpenRoot`] ran.
fn mount_op(op: &Op, root: &mut Option<Fd>) -> Result<(), c_int> {
    let null = core::ptr::null();
    let root_fd = || root.as_ref().map_or(-1, |f| f.0);
    match op {
        Op::MakePrivate => mount(null, c"/", null, libc::MS_REC | libc::MS_PRIVATE, null),
        Op::Stage => {
            mount(
                c"tmpfs".as_ptr(),
                c"/tmp",
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=755".as_ptr(),
            )?;
            chdir(c"/tmp")?;
            sys!(
                libc::SYS_mkdirat,
                libc::AT_FDCWD,
                c"oldroot".as_ptr(),
                0o755
            )?;
            sys!(
                libc::SYS_mkdirat,
                libc::AT_FDCWD,
                c"newroot".as_ptr(),
                0o755
            )?;
            sys!(libc::SYS_pivot_root, c".".as_ptr(), c"oldroot".as_ptr())?;
            chdir(c"/")
        }
        Op::Mount {
            source,
            target,
            fstype,
            flags,
            data,
            optional,
        } => match mount(opt(source), target, opt(fstype), *flags, opt(data)) {
            Err(libc::ENOENT) if *optional => Ok(()),
            r => r,
        },
        Op::Touch { path } => {
            let fd = open(
                path,
                libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW,
                0o644,
            )?;
            close(fd);
            Ok(())
        }
        Op::Link { points_to, path } => sys!(
            libc::SYS_symlinkat,
            points_to.as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr()
        )
        .map(drop),
        Op::Move { from, to } => {
            let Some(t) = target_fd(root_fd(), to)? else {
                return Ok(());
            };
            sys!(
                libc::SYS_move_mount,
                libc::AT_FDCWD,
                from.as_ptr(),
                t.0,
                c"".as_ptr(),
                MOVE_MOUNT_T_EMPTY_PATH
            )
            .map(drop)
        }
        Op::Mkdir { path, mode } => {
            match sys!(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), *mode) {
                Err(libc::EEXIST) => Ok(()),
                // The umask is 0 here; only the sticky bit needs a chmod.
                Ok(_) if *mode & 0o7000 != 0 => {
                    sys!(libc::SYS_fchmodat, libc::AT_FDCWD, path.as_ptr(), *mode).map(drop)
                }
                r => r.map(drop),
            }
        }
        Op::WriteFile {
            path,
            contents,
            mode,
        } => write_file(path, contents, *mode),
        Op::Attach { fd, path, .. } => {
            let target = Fd(open(path, libc::O_PATH | libc::O_NOFOLLOW, 0)?);
            let r = sys!(
                libc::SYS_move_mount,
                *fd,
                c"".as_ptr(),
                target.0,
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
            );
            close(*fd);
            r.map(drop)
        }
        Op::OpenRoot { path } => {
            let fd = open(path, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            *root = Some(Fd(fd));
            Ok(())
        }
        Op::Bind {
            source,
            target,
            recursive,
            attr,
        } => {
            let Some(t) = target_fd(root_fd(), target)? else {
                return Ok(());
            };
            // The parent canonicalised the source: a symlink on its path now means the
            // tree changed since (another sandbox swapped a directory for a link).
            let how = OpenHow {
                flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
                mode: 0,
                resolve: RESOLVE_NO_SYMLINKS,
            };
            let src = Fd(sys!(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                source.as_ptr(),
                &how as *const OpenHow,
                core::mem::size_of::<OpenHow>()
            )? as c_int);
            let rec = if *recursive { AT_RECURSIVE } else { 0 };
            let tree = clone_tree(src.0, c"", libc::AT_EMPTY_PATH as c_uint | rec)?;
            set_attr(&tree, *attr, *recursive)?;
            move_onto(&tree, &t)
        }
        Op::Fresh {
            fstype,
            options,
            target,
            attr,
        } => {
            let Some(t) = target_fd(root_fd(), target)? else {
                return Ok(());
            };
            let m = fresh(fstype, options, *attr)?;
            move_onto(&m, &t)
        }
        Op::MakeDir { target, mode } => resolve(root_fd(), target, *mode).map(drop),
        Op::Symlink { points_to, link } => {
            // The parent directory, resolved in the root; the link itself is created there
            // (symlinkat never follows the name it creates).
            let depth = link.depth();
            let parent = if depth > 1 {
                walk(
                    root_fd(),
                    link,
                    depth.saturating_sub(1),
                    TargetKind::Dir,
                    0o755,
                )
            } else {
                dup(root_fd()).map(Fd)
            };
            let r = parent.and_then(|parent| {
                sys!(
                    libc::SYS_symlinkat,
                    points_to.as_ptr(),
                    parent.0,
                    link.name().as_ptr()
                )
            });
            match r {
                Err(libc::EEXIST) => Ok(()),
                Err(_) if link.is_optional() => Ok(()),
                r => r.map(drop),
            }
        }
        Op::ReadOnly { target } => {
            let t = match resolve(root_fd(), target, 0) {
                Ok(t) => t,
                Err(libc::ENOENT) if target.is_optional() => return Ok(()),
                Err(e) => return Err(e),
            };
            let tree = clone_tree(t.0, c"", libc::AT_EMPTY_PATH as c_uint | AT_RECURSIVE)?;
            set_attr(&tree, sandbox_fs::kernel::MOUNT_ATTR_RDONLY, true)?;
            move_onto(&tree, &t)
        }
        Op::SealRoot => {
            let r = root.as_ref().ok_or(libc::EINVAL)?;
            set_attr(r, sandbox_fs::kernel::MOUNT_ATTR_RDONLY, false)
        }
        Op::EnterRoot => {
            // pivot_root(".", ".") stacks the old root on top of the new one; detaching it
            // (after making it a slave, so the detach does not propagate) leaves the new.
            let r = root.take().ok_or(libc::EINVAL)?;
            sys!(libc::SYS_fchdir, r.0)?;
            drop(r);
            sys!(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())?;
            mount(null, c".", null, libc::MS_SLAVE | libc::MS_REC, null)?;
            sys!(libc::SYS_umount2, c".".as_ptr(), libc::MNT_DETACH)?;
            chdir(c"/")
        }
        _ => Err(libc::EINVAL),
    }
}

/// Makes the fds the init needs survive its `execve` (it closes them on the program's).
fn keep_across_exec(fd: c_int) -> Result<(), c_int> {
    if fd < 0 {
        return Ok(());
    }
    sys!(libc::SYS_fcntl, fd, libc::F_SETFD, 0).map(drop)
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct` (two of them for 64 capabilities).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Keeps only the plan's capabilities, in every set: bounding (so no `execve` gains one
/// back; root's permitted set after `execve` is its bounding set), effective, permitted,
/// inheritable, and ambient (so a kept one survives `execve` whatever the uid).
fn drop_capabilities(plan: &ChildPlan) -> Result<(), c_int> {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SETPCAP: u32 = 8;
    let keep = plan.caps_keep;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    sys!(
        libc::SYS_capget,
        &mut header as *mut CapHeader,
        data.as_mut_ptr()
    )?;
    // Without CAP_SETPCAP (a caller that is not root, sharing the user namespace) the
    // bounding set cannot shrink, and need not: such a process has no capability to keep,
    // and no_new_privs stops `execve` from granting any.
    if data[0].effective & (1 << CAP_SETPCAP) != 0 {
        for cap in 0..=plan.cap_last.min(63) {
            if keep & (1u64 << cap) == 0 {
                match prctl(libc::PR_CAPBSET_DROP, cap as usize) {
                    Ok(()) | Err(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let (lo, hi) = (keep as u32, (keep >> 32) as u32);
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: lo,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: hi,
        },
    ];
    header.version = VERSION_3;
    sys!(libc::SYS_capset, &header as *const CapHeader, data.as_ptr())?;
    // (Unused arguments are zero, as prctl requires: `sys!` pads them.)
    sys!(
        libc::SYS_prctl,
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL
    )?;
    for cap in 0..=plan.cap_last.min(63) {
        if keep & (1u64 << cap) != 0 {
            sys!(
                libc::SYS_prctl,
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                cap
            )?;
        }
    }
    Ok(())
}

/// `struct landlock_path_beneath_attr` (packed: 12 bytes).
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// Fills the landlock ruleset with the plan's paths, resolved inside the new root, and
/// restricts this process (and so the program) to them.
fn apply_landlock(plan: &ChildPlan) -> R {
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

/// Loads the seccomp filter, last: after it only the `execve` runs.
fn load_seccomp(plan: &ChildPlan) -> R {
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

/// Places the descriptors passed on purpose at their numbers (without close-on-exec), and
/// returns the init's memfd, moved above them if it was in the way. Every number inside is
/// below the plan's floor, and the sync channel and status pipe are above it; the rest of
/// what sits below (namespace and mount descriptors) is no longer needed.
fn place_passed_fds(plan: &ChildPlan) -> Result<c_int, c_int> {
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

/// The last steps: execute the built-in init (which forks the program), or the program.
fn execute(plan: &ChildPlan) -> Fail {
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
        if plan.init_fd >= 0 {
            keep_across_exec(plan.sync_fd).at(Stage::Init, 0)?;
            keep_across_exec(plan.status_fd).at(Stage::Init, 0)?;
            load_seccomp(plan)?;
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
    if plan.wait_go {
        wait_go(plan.sync_fd)?;
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
        // Modes of what the plan creates are exact (`/tmp` is 1777 whatever the caller's
        // umask); the program gets the caller's umask back.
        let umask = sys!(libc::SYS_umask, 0).unwrap_or(0o022);
        let mut root = None;
        for (i, op) in (0..).zip(plan.mounts.ops().iter()) {
            mount_op(op, &mut root).at(Stage::Mount, i)?;
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
