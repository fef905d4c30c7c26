//! The tree being extracted, reached only beneath its root: directories opened with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or one `O_NOFOLLOW` component at a time where
//! there is no `openat2`) and created when missing, entries removed without following links,
//! and the directories' final metadata kept until every layer is in.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::fs::DirBuilder;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::names::join;

/// Flags for opening a directory of the tree.
pub(super) const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// What a directory gets once every layer has been extracted (directories stay `0700` until
/// then, so that they can be filled whatever their final mode, and their times are set last).
#[derive(Clone, Copy)]
pub(super) struct DirMeta {
    pub(super) mode: u32,
    pub(super) mtime: Option<i64>,
    pub(super) owner: Option<(u32, u32)>,
}

/// A directory the archive does not describe (the root, or a missing parent).
const IMPLICIT_DIR: DirMeta = DirMeta {
    mode: 0o755,
    mtime: None,
    owner: None,
};

/// A tree being extracted.
pub(super) struct Tree {
    root: OwnedFd,
    pub(super) as_root: bool,
    pub(super) dirs: BTreeMap<Vec<u8>, DirMeta>,
    pub(super) buf: Vec<u8>,
}

impl Tree {
    pub(super) fn create(path: &Path) -> io::Result<Tree> {
        DirBuilder::new().mode(0o700).create(path)?;
        let root = nix::fcntl::open(path, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())?;
        Ok(Tree {
            root,
            as_root: nix::unistd::geteuid().is_root(),
            dirs: BTreeMap::from([(Vec::new(), IMPLICIT_DIR)]),
            buf: vec![0; 128 << 10],
        })
    }

    /// Opens directory `rel` beneath the root, following no symbolic link.
    pub(super) fn open_dir(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        let path = if rel.is_empty() {
            c".".to_owned()
        } else {
            CString::new(rel).map_err(|_| Errno::EINVAL)?
        };
        match openat2_beneath(self.root.as_fd(), &path, DIR_FLAGS) {
            // No openat2 (Linux < 5.6): walk down one component at a time instead.
            Err(Errno::ENOSYS) => self.walk(rel, &mut None),
            other => other,
        }
    }

    /// Opens directory `rel`, creating what is missing of it.
    pub(super) fn ensure_dir(&mut self, rel: &[u8]) -> Result<OwnedFd, Errno> {
        match self.open_dir(rel) {
            Err(Errno::ENOENT) => {
                let mut made = Some(Vec::new());
                let fd = self.walk(rel, &mut made);
                for dir in made.unwrap_or_default() {
                    self.dirs.entry(dir).or_insert(IMPLICIT_DIR);
                }
                fd
            }
            other => other,
        }
    }

    /// Opens directory `rel` one component at a time with `O_NOFOLLOW`; when `made` is
    /// `Some`, creates missing components and records them there.
    fn walk(&self, rel: &[u8], made: &mut Option<Vec<Vec<u8>>>) -> Result<OwnedFd, Errno> {
        let mut dir = nix::fcntl::openat(&self.root, c".", DIR_FLAGS, Mode::empty())?;
        let mut path = Vec::new();
        for name in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            path = join(&path, name);
            let flags = DIR_FLAGS | OFlag::O_NOFOLLOW;
            dir = match nix::fcntl::openat(&dir, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if made.is_some() => {
                    match nix::sys::stat::mkdirat(&dir, name, Mode::S_IRWXU) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    if let Some(made) = made {
                        made.push(path.clone());
                    }
                    nix::fcntl::openat(&dir, name, flags, Mode::empty())?
                }
                Err(Errno::ENOTDIR | Errno::ELOOP) if is_symlink(&dir, name) => {
                    return Err(Errno::ELOOP)
                }
                Err(e) => return Err(e),
            };
        }
        Ok(dir)
    }

    /// Forgets what was recorded about directory `rel` and those beneath it (removed).
    pub(super) fn forget(&mut self, rel: &[u8]) {
        if rel.is_empty() {
            return;
        }
        self.dirs.remove(rel);
        let mut low = rel.to_vec();
        low.push(b'/');
        let mut high = rel.to_vec();
        high.push(b'/' + 1);
        let doomed: Vec<Vec<u8>> = self.dirs.range(low..high).map(|(k, _)| k.clone()).collect();
        for dir in doomed {
            self.dirs.remove(&dir);
        }
    }

    /// Makes room for entry `name` in `dir`: removes what is there, except a directory when
    /// `keep_dir` (a directory over a directory keeps its contents). Returns whether a
    /// directory was kept.
    pub(super) fn clear(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        keep_dir: bool,
    ) -> Result<bool, Errno> {
        match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e),
            Ok(stat) if is_dir(&stat) => {
                if keep_dir {
                    return Ok(true);
                }
                remove_tree_at(dir, name)?;
                self.forget(rel);
                Ok(false)
            }
            Ok(_) => nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map(|()| false),
        }
    }
}

/// `openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`:
/// opens `path` only if resolving it stays beneath `dir` and meets no symbolic link.
fn openat2_beneath(dir: BorrowedFd<'_>, path: &CStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    // SAFETY: `open_how` is three integers (and `#[non_exhaustive]`, so not constructible
    // here): all zeroes is a valid value, the one the kernel expects for unused fields.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = u64::from(flags.bits().unsigned_abs());
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let mut retries = 0;
    loop {
        // SAFETY: `path` is a NUL-terminated string and `how` an initialised `open_how` whose
        // size is passed along; both outlive the call, which only reads them. The kernel
        // returns a new file descriptor or -1.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if ret >= 0 {
            let fd = RawFd::try_from(ret).map_err(|_| Errno::EBADF)?;
            // SAFETY: `fd` was just returned by openat2: it is open and owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        match Errno::last() {
            // EAGAIN: a concurrent rename somewhere in the filesystem; try again.
            Errno::EINTR | Errno::EAGAIN if retries < 64 => retries += 1,
            e => return Err(e),
        }
    }
}

pub(super) fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_symlink(dir: &OwnedFd, name: &[u8]) -> bool {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
}

/// The names in a directory, except `.` and `..`.
pub(super) fn list_dir(dir: &OwnedFd) -> Result<Vec<Vec<u8>>, Errno> {
    let mut stream = nix::dir::Dir::openat(dir, c".", DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` in `dir`, recursively, never following a symbolic link.
pub(super) fn remove_tree_at(dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    let stat = match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if is_dir(&stat) {
        let sub = nix::fcntl::openat(dir, name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())?;
        for child in list_dir(&sub)? {
            remove_tree_at(&sub, &child)?;
        }
        nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir)
    } else {
        nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
    }
}

#[cfg(test)]
mod tests {
    //! Without `openat2`, the walk down the tree still creates what is missing and never passes
    //! a symbolic link.

    use super::*;

    #[test]
    fn component_walk_creates_and_refuses_symlinks() {
        // The fallback for kernels without openat2.
        let tmp = tempfile::tempdir().unwrap();
        let mut tree = Tree::create(&tmp.path().join("rootfs")).unwrap();
        let mut made = Some(Vec::new());
        tree.walk(b"a/b/c", &mut made).unwrap();
        assert_eq!(
            made.unwrap(),
            [b"a".to_vec(), b"a/b".to_vec(), b"a/b/c".to_vec()]
        );
        assert!(tmp.path().join("rootfs/a/b/c").is_dir());
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("rootfs/a/l")).unwrap();
        assert_eq!(tree.walk(b"a/l", &mut None).unwrap_err(), Errno::ELOOP);
        assert_eq!(
            tree.walk(b"a/l/x", &mut Some(Vec::new())).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(tree.open_dir(b"a/l").unwrap_err(), Errno::ELOOP);
        assert_eq!(tree.walk(b"a/nope", &mut None).unwrap_err(), Errno::ENOENT);
        tree.ensure_dir(b"a/b/c/d").unwrap();
        assert!(tree.dirs.contains_key(b"a/b/c/d".as_slice()));
    }
}
