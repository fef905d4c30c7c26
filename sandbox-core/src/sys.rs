//! Thin wrappers over the system calls the *parent* makes that `nix` does not offer
//! (pidfds, `waitid(P_PIDFD)`, `clone3`, namespace ioctls). Each `unsafe` block says why it
//! is sound. The child's calls live in `spawn/child/` (`syscall.rs`), which may not allocate.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The argument block of `clone3(2)` (`struct clone_args`, version 2, 88 bytes).
#[repr(C)]
#[derive(Default, Debug)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sends `sig` to the process behind `pidfd` (cannot hit a recycled pid).
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain integers and a null siginfo, which the kernel accepts.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt(r).map(drop)
}

/// Opens a pidfd for `pid`.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain integers.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just returned this new descriptor, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reaps the process behind `pidfd` if it has ended (or waits for it unless `nohang`).
/// Returns the wait status in `wait(2)` encoding.
pub(crate) fn waitid_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<i32>> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t; P_PIDFD takes the fd as the id.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: waitid filled `info` for a CLD_* event (or left si_pid 0 with WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => (status & 0xff) << 8,
    }))
}

/// The `CLONE_NEW*` type of the namespace behind `fd` (`ioctl(NS_GET_NSTYPE)`).
pub(crate) fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns an int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Blocks every signal in the calling thread (the spawner thread lives this way, so a child
/// it clones starts with every signal blocked).
pub(crate) fn block_all_signals() -> io::Result<()> {
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigfillset(&mut set) };
    // SAFETY: valid set pointer, null old-set pointer.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Duplicates `fd` to a number of at least 3 (close-on-exec), so that it can never be
/// clobbered when the child places its stdio on 0, 1 and 2.
pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    at_least(fd, 3)
}

/// Duplicates a borrowed fd into a new owned one, numbered at least 3, close-on-exec.
pub(crate) fn dup_above_stdio(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    dup_at_least(fd, 3)
}

/// A close-on-exec copy (numbered at least 3) of the caller's own standard stream `n`
/// (0, 1 or 2), or an error if it is not open.
pub(crate) fn dup_own_stdio(n: RawFd) -> io::Result<OwnedFd> {
    if !(0..=2).contains(&n) {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_DUPFD_CLOEXEC on any number returns a new fd or -1 (EBADF when closed).
    let new = unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A new memfd (close-on-exec, numbered at least 3) named `name`.
pub(crate) fn memfd(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: a valid NUL-ended name and flags; returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by no one else.
    above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connected pair of `SOCK_SEQPACKET` sockets, close-on-exec, numbered at least 3: one
/// message per send, descriptors passed with it.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((above_stdio(a)?, above_stdio(b)?))
}

/// `fd` itself when numbered at least `floor`, else a close-on-exec copy that is (and `fd`
/// is closed).
pub(crate) fn at_least(fd: OwnedFd, floor: RawFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= floor {
        return Ok(fd);
    }
    dup_at_least(fd.as_fd(), floor)
}

/// A close-on-exec copy of `fd` numbered at least `floor`.
pub(crate) fn dup_at_least(fd: BorrowedFd<'_>, floor: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A pipe with both ends close-on-exec, both numbered at least 3.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

/// A connected pair of stream sockets, close-on-exec, numbered at least 3.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((above_stdio(a)?, above_stdio(b)?))
}

/// A user namespace with the given maps and no process in it, to describe an idmapped
/// mount. A forked child creates it, says so, closes every descriptor and waits; the parent
/// writes its maps, opens it, and kills the child.
pub(crate) fn userns_with_maps(uid_map: &str, gid_map: &str) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = pipe()?;
    // SAFETY: the child only makes async-signal-safe system calls (unshare, write,
    // close_range, pause) and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: plain system calls on a descriptor it holds and a one-byte buffer; the
        // child holds no descriptor of the caller's after close_range (none stays open in a
        // process the caller does not wait for), and waits to be killed.
        unsafe {
            // Gone with the caller, should it die before killing this helper.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
            let b = [u8::from(ok)];
            libc::write(ready_w.as_raw_fd(), b.as_ptr().cast(), 1);
            libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0);
            loop {
                libc::pause();
            }
        }
    }
    drop(ready_w);
    // A pidfd to reap by: waitpid would block on every child of the caller's if it set
    // SIGCHLD to SIG_IGN.
    let pidfd = pidfd_open(pid);
    let result = (|| {
        let mut b = [0u8; 1];
        let n = nix::unistd::read(&ready_r, &mut b)?;
        if n != 1 || b[0] != 1 {
            return Err(io::Error::other(
                "the helper could not create a user namespace",
            ));
        }
        std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
        let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        Ok(OwnedFd::from(f))
    })();
    match &pidfd {
        Ok(fd) => {
            let _ = pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = waitid_pidfd(fd.as_fd(), false);
        }
        Err(_) => {
            let mut status = 0;
            // SAFETY: kills and reaps the child forked above, by its pid, which nothing
            // else waits for.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
        }
    }
    result
}

/// Whether the process behind `pidfd` has exited (its pidfd is readable), without
/// reaping it.
pub(crate) fn pidfd_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLIN != 0
}

/// A descriptor the caller owns (a socket) registered with the runtime, for readability;
/// on failure it comes back with the error.
pub(crate) fn async_readable(
    fd: OwnedFd,
) -> std::result::Result<tokio::io::unix::AsyncFd<OwnedFd>, (OwnedFd, io::Error)> {
    async_pidfd(fd)
}

/// A pidfd registered with the runtime (readable once its process has ended); on failure
/// the pidfd comes back with the error.
pub(crate) fn async_pidfd(
    pidfd: OwnedFd,
) -> std::result::Result<tokio::io::unix::AsyncFd<OwnedFd>, (OwnedFd, io::Error)> {
    // SAFETY: the AsyncFd owns the pidfd for its whole life; the fd is not closed or
    // replaced while registered.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts())
}
