//! Internal: the kernel's mount API as sandbox-core's child uses it; not a stable API.
//!
//! Constants and structures of the kernel's mount API that `libc` does not carry yet, and
//! the two parent-side calls that make an idmapped copy of a tree.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `open_tree(2)`: make a detached copy of the tree.
pub const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `open_tree(2)`: close-on-exec.
pub const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
/// `open_tree(2)`, `mount_setattr(2)`: the whole tree, not only its top mount.
pub const AT_RECURSIVE: libc::c_uint = 0x8000;
/// `move_mount(2)`: the source is the fd itself.
pub const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `move_mount(2)`: the target is the fd itself.
pub const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
/// `fsopen(2)`: close-on-exec.
pub const FSOPEN_CLOEXEC: libc::c_uint = 1;
/// `fsmount(2)`: close-on-exec.
pub const FSMOUNT_CLOEXEC: libc::c_uint = 1;
/// `fsconfig(2)`: a flag option without value.
pub const FSCONFIG_SET_FLAG: libc::c_uint = 0;
/// `fsconfig(2)`: a string option.
pub const FSCONFIG_SET_STRING: libc::c_uint = 1;
/// `fsconfig(2)`: create the superblock.
pub const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// Mount attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Mount attribute: ignore set-user-id bits.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// Mount attribute: no device nodes.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// Mount attribute: no execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// Mount attribute: an idmapped mount (`userns_fd` gives the mapping).
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `openat2(2)` resolution: no magic links (`/proc/self/fd/N`).
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `openat2(2)` resolution: no symlinks at all.
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `openat2(2)` resolution: treat the directory fd as `/` (symlinks and `..` cannot leave it).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// The kernel's `struct mount_attr` (first version, 32 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MountAttr {
    /// Attributes to set.
    pub attr_set: u64,
    /// Attributes to clear.
    pub attr_clr: u64,
    /// Propagation type.
    pub propagation: u64,
    /// A user namespace fd, for `MOUNT_ATTR_IDMAP`.
    pub userns_fd: u64,
}

/// The kernel's `struct open_how`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenHow {
    /// `O_*` flags.
    pub flags: u64,
    /// Mode for `O_CREAT`.
    pub mode: u64,
    /// `RESOLVE_*` flags.
    pub resolve: u64,
}

/// An idmapped, detached copy of the mount at `path` (not what is mounted below it: an
/// overlay layer does not show submounts anyway, and `proc` or `sysfs` below would refuse
/// the idmapping): files owned by host id `n` appear owned by whatever `n` maps to in
/// `userns`. Needs `CAP_SYS_ADMIN` over the filesystem (in practice: the caller is the
/// host's root).
pub fn idmapped_tree(path: &Path, userns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let c = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid C string; open_tree returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let mut tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    if tree.as_raw_fd() <= 2 {
        // The child places its stdio on 0-2: keep this one clear of them.
        // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd (>= 3) or -1.
        let new = unsafe { libc::fcntl(tree.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if new < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `new` is a fresh descriptor owned by no one else.
        tree = unsafe { OwnedFd::from_raw_fd(new) };
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        // Out of the host's peer groups.
        propagation: libc::MS_PRIVATE,
        ..Default::default()
    };
    // SAFETY: `tree` is a valid fd, the path is empty with AT_EMPTY_PATH, and `attr` is a
    // valid mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}
