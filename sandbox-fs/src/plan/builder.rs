//! The [`Builder`] a plan is written with: its steps on the staging tmpfs (directories, files,
//! mounts, scratch directories, masks), where a root's skeleton goes, and the order of
//! everything that follows the root itself.

use super::{FsOption, InRoot, Op, PlanOptions, Target, TargetKind, NEWROOT, OLDROOT};
use crate::Error;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(super) struct Builder {
    pub(super) ops: Vec<Op>,
    pub(super) fds: Vec<OwnedFd>,
    /// Files written to the staging area so far.
    pub(super) files: usize,
    /// `/rw` (backing of writable directories) and `/empty` (masks) exist in staging.
    pub(super) rw: bool,
    pub(super) empty: bool,
}

impl Builder {
    pub(super) fn fresh(
        &mut self,
        fstype: &str,
        options: Vec<FsOption>,
        target: Target,
        attr: u64,
    ) {
        self.ops.push(Op::Fresh {
            fstype: cstr(fstype),
            options,
            target,
            attr,
        });
    }

    pub(super) fn tmpfs(&mut self, target: Target, mode: u32, size: Option<u64>, attr: u64) {
        let mut o = vec![opt("mode", Some(format!("{mode:o}")))];
        if let Some(s) = size {
            o.push(opt("size", Some(s.to_string())));
        }
        self.fresh("tmpfs", o, target, attr);
    }

    pub(super) fn bind(&mut self, source: CString, target: Target, recursive: bool, attr: u64) {
        self.ops.push(Op::Bind {
            source,
            target,
            recursive,
            attr,
        });
    }

    pub(super) fn staging_file(&mut self, contents: Vec<u8>, mode: u32) -> CString {
        if self.files == 0 {
            self.ops.push(Op::Mkdir {
                path: cstr("/files"),
                mode: 0o755,
            });
        }
        self.files += 1;
        let path = cstr(&format!("/files/{}", self.files));
        self.ops.push(Op::WriteFile {
            path: path.clone(),
            contents,
            mode,
        });
        path
    }

    /// A `mount(2)` on a staging path.
    pub(super) fn smount(
        &mut self,
        source: Option<&str>,
        target: &str,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
        optional: bool,
    ) {
        self.ops.push(Op::Mount {
            source: source.map(cstr),
            target: cstr(target),
            fstype: fstype.map(cstr),
            flags,
            data: data.map(cstr),
            optional,
        });
    }

    pub(super) fn smkdir(&mut self, path: &str, mode: libc::mode_t) {
        self.ops.push(Op::Mkdir {
            path: cstr(path),
            mode,
        });
    }

    /// A directory of the staging tmpfs (mode set exactly, whatever the umask), bound at
    /// the staging path `at` with `flags` (`MS_NOSUID`...). Every writable directory of a
    /// new root is one of these: a bind costs a tenth of a fresh tmpfs to mount and tear
    /// down, and the staging tmpfs is the sandbox's own already.
    pub(super) fn scratch(
        &mut self,
        name: &str,
        mode: libc::mode_t,
        at: &str,
        flags: libc::c_ulong,
    ) {
        let dir = format!("/rw/{name}");
        if !self.rw {
            self.smkdir("/rw", 0o755);
            self.rw = true;
        }
        self.smkdir(&dir, mode);
        self.smount(Some(&dir), at, None, libc::MS_BIND, None, false);
        if flags != 0 {
            let re = libc::MS_BIND | libc::MS_REMOUNT | flags;
            self.smount(None, at, None, re, None, false);
        }
    }

    /// Masks the directory at the staging path `at` (when it exists) with an empty,
    /// read-only directory.
    pub(super) fn mask_dir(&mut self, at: &str) {
        if !self.empty {
            self.smkdir("/empty", 0o555);
            self.empty = true;
        }
        let ro = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        self.smount(Some("/empty"), at, None, libc::MS_BIND, None, true);
        self.smount(
            None,
            at,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | ro,
            None,
            true,
        );
    }

    /// Where a directory of the root skeleton goes: a staging path when the root is a
    /// tmpfs this sandbox made (nothing in it can be a symlink), a path resolved in the
    /// root otherwise.
    pub(super) fn place(
        &mut self,
        name: &str,
        trusted: bool,
        create: bool,
        optional: bool,
    ) -> Target {
        if trusted {
            let path = format!("{NEWROOT}/{name}");
            self.smkdir(&path, 0o755);
            return Target::Staging(cstr(&path));
        }
        let t = InRoot::rel(name, TargetKind::Dir, create);
        Target::Root(if optional { t.optional() } else { t })
    }

    /// Everything after the root itself: `/proc`, `/dev`, `/sys`, `/etc` files, the
    /// caller's mounts; then into the new root. `trusted`: the root is a tmpfs of this
    /// sandbox's (its skeleton is placed by staging path); `create`: missing mount points
    /// may be created in the root.
    pub(super) fn tail(
        &mut self,
        opts: &PlanOptions<'_>,
        trusted: bool,
        create: bool,
        seal: bool,
    ) -> Result<(), Error> {
        let proc = self.place("proc", trusted, create, false);
        self.staged_proc(opts, proc);
        // A tree without `/dev` or `/sys` that cannot take one (read-only, or not the
        // sandbox's to write) goes without.
        let dev = self.place("dev", trusted, create, true);
        self.staged_dev(dev);
        let sys = self.place("sys", trusted, create, true);
        self.staged_sys(opts, sys);
        self.etc(opts);
        self.user_mounts(opts, true)?;
        if seal {
            self.ops.push(Op::SealRoot);
        }
        self.ops.push(Op::EnterRoot);
        Ok(())
    }
}

pub(super) fn cbytes(b: &[u8], path: &Path) -> Result<CString, Error> {
    CString::new(b).map_err(|_| Error::Nul {
        path: path.to_path_buf(),
    })
}

pub(super) fn cpath(p: &Path) -> Result<CString, Error> {
    cbytes(p.as_os_str().as_bytes(), p)
}

pub(super) fn cstr(s: &str) -> CString {
    // Only called on literals and formatted numbers, without NUL bytes.
    CString::new(s).unwrap_or_default()
}

/// `/oldroot` + an absolute host path.
pub(super) fn host(p: &Path) -> Result<CString, Error> {
    let mut b = OLDROOT.as_bytes().to_vec();
    if p != Path::new("/") {
        b.extend_from_slice(p.as_os_str().as_bytes());
    }
    cbytes(&b, p)
}

fn opt(key: &str, value: Option<String>) -> FsOption {
    FsOption {
        key: cstr(key),
        value: value.map(|v| cstr(&v)),
    }
}
