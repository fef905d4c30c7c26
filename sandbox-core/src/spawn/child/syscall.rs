//! Raw system calls: [`sc`] (inline assembly, so no `errno` is written), the [`sys!`]
//! macro over it, [`clone_onto_stack`] (the `clone3` that starts the child, and the relayed
//! sibling, on a stack of their own), and the small wrappers every step uses: [`Fd`],
//! `close`, `exit`, `write_all`, `prctl`, `open`, `dup`, `chdir`.

use crate::spawn::prepare::ChildPlan;
use crate::sys::CloneArgs;
use core::ffi::CStr;
use libc::{c_int, c_long};

/// A raw system call: returns the kernel's result, `-errno` on failure. Touches no memory
/// but what its arguments point to; in particular not `errno`.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn sc(
    n: c_long,
    a: usize,
    b: usize,
    c: usize,
    d: usize,
    e: usize,
    f: usize,
) -> isize {
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
pub(super) unsafe fn sc(
    n: c_long,
    a: usize,
    b: usize,
    c: usize,
    d: usize,
    e: usize,
    f: usize,
) -> isize {
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

pub(super) fn ret(r: isize) -> Result<usize, c_int> {
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
        $crate::spawn::child::syscall::ret(unsafe {
            $crate::spawn::child::syscall::sc($n, a, b, c, d, e, f)
        })
    }};
    (@pad) => { [0, 0, 0, 0, 0, 0] };
    (@pad $a:expr) => { [$a, 0, 0, 0, 0, 0] };
    (@pad $a:expr, $b:expr) => { [$a, $b, 0, 0, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr) => { [$a, $b, $c, 0, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr, $d:expr) => { [$a, $b, $c, $d, 0, 0] };
    (@pad $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => { [$a, $b, $c, $d, $e, 0] };
}
pub(super) use sys;

/// `clone3` onto a new stack: the child starts in `entry(plan)`, which never returns; the
/// parent gets the child's pid (or `-errno`).
///
/// # Safety
/// `args` must describe a clone with its own stack (`stack`, `stack_size`; with `CLONE_VM`,
/// memory that stays mapped while the child runs), and `plan` must outlive the child's use.
pub(in crate::spawn) unsafe fn clone_onto_stack(
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

/// An fd this module opened, closed when dropped (a plain integer: no allocation).
pub(super) struct Fd(pub(super) c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        close(self.0);
    }
}

pub(super) fn exit(code: c_int) -> ! {
    loop {
        let _ = sys!(libc::SYS_exit_group, code);
    }
}

pub(super) fn close(fd: c_int) {
    let _ = sys!(libc::SYS_close, fd);
}

pub(super) fn write_all(fd: c_int, mut buf: &[u8]) -> Result<(), c_int> {
    while !buf.is_empty() {
        match sys!(libc::SYS_write, fd, buf.as_ptr(), buf.len()) {
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            Err(libc::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) fn prctl(option: c_int, arg: usize) -> Result<(), c_int> {
    sys!(libc::SYS_prctl, option, arg).map(drop)
}

pub(super) fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<c_int, c_int> {
    sys!(
        libc::SYS_openat,
        libc::AT_FDCWD,
        path.as_ptr(),
        flags | libc::O_CLOEXEC,
        mode
    )
    .map(|fd| fd as c_int)
}

pub(super) fn dup(fd: c_int) -> Result<c_int, c_int> {
    sys!(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, 0).map(|fd| fd as c_int)
}

pub(super) fn chdir(path: &CStr) -> Result<(), c_int> {
    sys!(libc::SYS_chdir, path.as_ptr()).map(drop)
}
