//! The built-in init, embedded: `init/init.c` compiled by `build.rs` into a static,
//! freestanding executable of a few kilobytes. It is written once per process into a
//! sealed memfd, which the sandbox's first process executes with `execveat(AT_EMPTY_PATH)`
//! (no path needed, so it works whatever the sandbox's root filesystem holds).

use crate::sys;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;

static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sandbox-init"));

static MEMFD: OnceLock<OwnedFd> = OnceLock::new();

fn create() -> io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"sandbox-init";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: valid name; MFD_EXEC (Linux 6.3+) asks explicitly for an executable memfd.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above, for kernels without MFD_EXEC.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by no one else.
    let fd = sys::above_stdio(unsafe { OwnedFd::from_raw_fd(fd) })?;
    let mut f = std::fs::File::from(fd);
    f.write_all(INIT)?;
    let fd = OwnedFd::from(f);
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_ADD_SEALS(nix::fcntl::SealFlag::from_bits_truncate(seals)),
    )?;
    Ok(fd)
}

/// The memfd holding the init (created on first use, kept for the life of the process).
pub(crate) fn memfd() -> io::Result<BorrowedFd<'static>> {
    if let Some(fd) = MEMFD.get() {
        return Ok(fd.as_fd());
    }
    let fd = create()?;
    Ok(MEMFD.get_or_init(|| fd).as_fd())
}
