//! The roots a sandbox can get besides the host's own tree, each built in the staging area:
//! the host's system directories read-only, an existing directory (layered when it lacks the
//! generated `/etc` files), and an overlay (an image's tree is one's lower layer), with its
//! writes on a tmpfs or in a kept directory.

use super::builder::{cpath, cstr, host, Builder};
use super::etc::lacks_etc_files;
use super::{Op, PlanOptions, Target, NEWROOT};
use crate::kernel::{MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_RDONLY as RDONLY};
use crate::{Error, Rootfs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

impl Builder {
    pub(super) fn host_readonly(&mut self, opts: &PlanOptions<'_>) -> Result<(), Error> {
        self.ops.push(Op::Stage);
        // The root: the staging directory bound onto itself (a mount point, as pivot_root
        // needs), made read-only once every mount point exists in it.
        let flags = libc::MS_NOSUID | libc::MS_NODEV;
        self.smount(Some(NEWROOT), NEWROOT, None, libc::MS_BIND, None, false);
        let re = libc::MS_BIND | libc::MS_REMOUNT | flags;
        self.smount(None, NEWROOT, None, re, None, false);
        self.ops.push(Op::OpenRoot {
            path: cstr(NEWROOT),
        });
        for d in [
            "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
        ] {
            let p = Path::new("/").join(d);
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(to) = std::fs::read_link(&p) {
                    self.ops.push(Op::Link {
                        points_to: cpath(&to)?,
                        path: cstr(&format!("{NEWROOT}/{d}")),
                    });
                }
            } else if meta.is_dir() {
                let at = self.place(d, true, true, false);
                self.bind(host(&p)?, at, true, RDONLY | NODEV);
            }
        }
        for (d, mode) in [
            ("tmp", 0o1777),
            ("run", 0o755),
            ("home", 0o755),
            ("root", 0o700),
        ] {
            let at = format!("{NEWROOT}/{d}");
            self.smkdir(&at, 0o755);
            self.scratch(d, mode, &at, flags);
        }
        self.tail(opts, true, true, true)
    }

    pub(super) fn dir(
        &mut self,
        opts: &PlanOptions<'_>,
        path: &Path,
        writable: bool,
    ) -> Result<(), Error> {
        let root = std::fs::canonicalize(path).map_err(|source| Error::RootfsMissing {
            path: path.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(Error::NotADirectory {
                path: path.to_path_buf(),
            });
        }
        if !writable && lacks_etc_files(&root, opts.hostname.is_some()) {
            // A read-only tree that cannot take the generated /etc files (a busybox tree
            // has no /etc at all) gets them through a copy-on-write layer of the
            // sandbox's own, and is sealed read-only again once they are in place. Its
            // lower layer is idmapped for a root caller (so the layer may create /etc);
            // a file system that cannot be idmapped (overlayfs, NFS) keeps the plain
            // read-only bind, as a tree with the files gets.
            let premade = match opts.idmap_userns {
                None => None,
                Some(userns) => match crate::kernel::idmapped_tree(&root, userns) {
                    Ok(fd) => Some(fd),
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS)
                        ) =>
                    {
                        return self.plain_dir(opts, root, writable);
                    }
                    Err(source) => return Err(Error::Idmap { path: root, source }),
                },
            };
            return self.layers_with(opts, std::slice::from_ref(&root), None, true, premade);
        }
        self.plain_dir(opts, root, writable)
    }

    /// A tree bound as the root as it is (read-only unless `writable`).
    fn plain_dir(
        &mut self,
        opts: &PlanOptions<'_>,
        root: PathBuf,
        writable: bool,
    ) -> Result<(), Error> {
        if !writable && !root.join("proc").is_dir() {
            return Err(Error::MissingMountPoint {
                root,
                path: PathBuf::from("/proc"),
            });
        }
        self.ops.push(Op::Stage);
        // Device nodes in the tree are not devices inside (the sandbox has its own /dev).
        let ro = if writable { 0 } else { RDONLY };
        self.bind(
            host(&root)?,
            Target::Staging(cstr(NEWROOT)),
            true,
            ro | NODEV,
        );
        self.ops.push(Op::OpenRoot {
            path: cstr(NEWROOT),
        });
        self.tail(opts, false, writable, false)
    }

    pub(super) fn overlay(
        &mut self,
        opts: &PlanOptions<'_>,
        lower: &[PathBuf],
        upper: Option<&Path>,
    ) -> Result<(), Error> {
        self.layers_with(opts, lower, upper, false, None)
    }

    /// An overlay root over `lower`; `seal`: made read-only once built; `premade`: the
    /// idmapped tree of a single lower layer, made already.
    fn layers_with(
        &mut self,
        opts: &PlanOptions<'_>,
        lower: &[PathBuf],
        upper: Option<&Path>,
        seal: bool,
        mut premade: Option<OwnedFd>,
    ) -> Result<(), Error> {
        if lower.is_empty() {
            return Err(Error::NoLowerLayer);
        }
        let mut layers = Vec::with_capacity(lower.len());
        for l in lower {
            let canon = std::fs::canonicalize(l).map_err(|source| Error::RootfsMissing {
                path: l.clone(),
                source,
            })?;
            if !canon.is_dir() {
                return Err(Error::NotADirectory { path: l.clone() });
            }
            layers.push(canon);
        }
        self.ops.push(Op::Stage);
        // overlayfs lists lower layers top first. Each is attached at /lowerN of the
        // staging area: idmapped (a detached tree the parent made) or bound from the host,
        // resolved without symlinks (the parent canonicalised the path).
        let mut lowerdirs = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().rev().enumerate() {
            let at = format!("/lower{i}");
            self.smkdir(&at, 0o755);
            match opts.idmap_userns {
                Some(userns) => {
                    let fd = match premade.take() {
                        Some(fd) => fd,
                        None => crate::kernel::idmapped_tree(l, userns).map_err(|source| {
                            Error::Idmap {
                                path: l.clone(),
                                source,
                            }
                        })?,
                    };
                    self.ops.push(Op::Attach {
                        fd: fd.as_raw_fd(),
                        path: cstr(&at),
                        shown: l.display().to_string(),
                    });
                    self.fds.push(fd);
                }
                None => self.bind(host(l)?, Target::Staging(cstr(&at)), false, 0),
            }
            lowerdirs.push(at);
        }
        // The writes: on the staging tmpfs, or in a kept directory (created last, once
        // everything else checked out), bound at /keep.
        let (upperdir, workdir) = match upper {
            Some(dir) => {
                let keep = keep_dir(dir, opts.root_owner)?;
                self.smkdir("/keep", 0o755);
                self.bind(host(&keep)?, Target::Staging(cstr("/keep")), false, 0);
                ("/keep/upper", "/keep/work")
            }
            None => {
                for d in ["/upper", "/upper/u", "/upper/w"] {
                    self.smkdir(d, 0o755);
                }
                ("/upper/u", "/upper/w")
            }
        };
        let data = format!(
            "lowerdir={},upperdir={upperdir},workdir={workdir},userxattr",
            lowerdirs.join(":")
        );
        // Device nodes of a lower tree are not devices inside (the sandbox has its /dev).
        self.smount(
            Some("overlay"),
            NEWROOT,
            Some("overlay"),
            libc::MS_NODEV,
            Some(&data),
            false,
        );
        self.ops.push(Op::OpenRoot {
            path: cstr(NEWROOT),
        });
        self.tail(opts, false, true, seal)
    }
}

impl Rootfs {
    /// Whether the root is built as an overlay: [`Rootfs::Overlay`], [`Rootfs::Image`],
    /// and a read-only [`Rootfs::Dir`] without an entry for `/etc/hosts`,
    /// `/etc/resolv.conf` or (for a sandbox with a `hostname`) `/etc/hostname`: it gets
    /// them on a copy-on-write layer of the sandbox's own, sealed read-only again, so
    /// nothing is written to the tree (unless its file system cannot be idmapped for a
    /// root caller: then it stays a plain read-only bind without them).
    pub fn is_layered(&self, hostname: bool) -> bool {
        match self {
            Rootfs::Overlay { .. } | Rootfs::Image { .. } => true,
            Rootfs::Dir {
                path,
                writable: false,
            } => std::fs::canonicalize(path).is_ok_and(|root| lacks_etc_files(&root, hostname)),
            _ => false,
        }
    }
}

/// Creates (when missing) `dir/upper` and `dir/work` for a kept overlay upper layer,
/// owned by the sandbox's root; returns `dir`, canonical. Symlinks are not followed.
fn keep_dir(dir: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let err = |source| Error::UpperDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(err)?;
    let canon = std::fs::canonicalize(dir).map_err(err)?;
    for sub in ["upper", "work"] {
        let p = canon.join(sub);
        match std::fs::DirBuilder::new().mode(0o755).create(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(err(e)),
            _ => {}
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&p)
            .map_err(err)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(err)?;
        }
    }
    Ok(canon)
}

#[cfg(test)]
mod tests {
    //! Each kind of root is built as described: read-only unless asked, refused when missing or
    //! without its mount points, layered and sealed when it lacks the `/etc` files, overlay
    //! layers attached at fixed paths, a kept upper directory created only once all else is
    //! valid.

    use crate::plan::etc::ETC_FILES;
    use crate::plan::tests::{pid, steps};
    use crate::plan::{plan, Op, PlanOptions};
    use crate::{Error, Rootfs};
    use std::path::{Path, PathBuf};

    /// A tree with the files every root gets generated over its own.
    fn with_etc(root: &Path) {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        for f in ETC_FILES {
            std::fs::write(root.join(f), "").unwrap();
        }
    }

    #[test]
    fn dir_plan_binds_mounts_and_pivots() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("proc")).unwrap();
        std::fs::create_dir(t.path().join("dev")).unwrap();
        with_etc(t.path());
        let root = std::fs::canonicalize(t.path()).unwrap();
        let r = root.display();
        let p = plan(&Rootfs::dir(t.path()), &pid()).unwrap();
        let s = steps(&p);
        assert_eq!(s[0], "make / private");
        assert_eq!(s[1], "mount the staging tmpfs on /tmp and pivot into it");
        assert_eq!(s[2], format!("bind {r} on / (ro)"));
        for step in [
            "mount proc on /proc",
            "place a writable directory on /dev",
            "bind /dev/null on /dev/null",
            "mount devpts on /dev/pts",
            "bind /dev/null on /proc/keys",
            "make /proc/sys read-only",
            "mount sysfs on /sys",
            "mask /sys/firmware",
            "mask /proc/acpi",
            "place the new /proc on /proc",
            "place the new /dev on /dev",
            "place the new /sys on /sys",
        ] {
            assert!(s.contains(&step.to_string()), "{step}: {s:?}");
        }
        assert!(!s.iter().any(|x| x.contains("devtmpfs")));
        assert_eq!(s.last().unwrap(), "pivot_root into the new root");
    }

    #[test]
    fn writable_dir_is_not_read_only() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(&Rootfs::dir(t.path()).writable(), &PlanOptions::default()).unwrap();
        assert!(!steps(&p).iter().any(|s| s.contains("on / (ro)")));
    }

    #[test]
    fn missing_rootfs_is_a_typed_error_naming_the_path() {
        let e = plan(&Rootfs::dir("/no/such/root"), &PlanOptions::default()).unwrap_err();
        assert!(matches!(e, Error::RootfsMissing { .. }));
        assert!(e.to_string().contains("/no/such/root"), "{e}");
    }

    #[test]
    fn file_as_rootfs_is_rejected() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = plan(&Rootfs::dir(f.path()), &PlanOptions::default()).unwrap_err();
        assert!(matches!(e, Error::NotADirectory { .. }), "{e}");
    }

    #[test]
    fn read_only_rootfs_without_proc_is_rejected() {
        let t = tempfile::tempdir().unwrap();
        with_etc(t.path());
        let e = plan(&Rootfs::dir(t.path()), &pid()).unwrap_err();
        assert!(e.to_string().contains("missing mount point /proc"), "{e}");
    }

    #[test]
    fn read_only_tree_without_etc_files_is_layered_and_sealed() {
        let t = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(t.path()).unwrap();
        assert!(Rootfs::dir(t.path()).is_layered(false));
        let p = plan(&Rootfs::dir(t.path()), &pid()).unwrap();
        let s = steps(&p);
        assert!(
            s.contains(&format!("bind {} on (staging)/lower0", r.display())),
            "{s:?}"
        );
        assert!(
            s.contains(&"mount overlay as the root".to_string()),
            "{s:?}"
        );
        assert_eq!(
            s[s.len() - 2..],
            ["make / read-only", "pivot_root into the new root"]
        );
        // An entry counts, even a link the sandbox could not follow (a layer could not
        // replace it either); /etc/hostname only for a sandbox with a hostname.
        with_etc(t.path());
        assert!(!Rootfs::dir(t.path()).is_layered(true));
        std::fs::remove_file(t.path().join("etc/resolv.conf")).unwrap();
        std::os::unix::fs::symlink("/run/resolv.conf", t.path().join("etc/resolv.conf")).unwrap();
        assert!(!Rootfs::dir(t.path()).is_layered(true));
        std::fs::remove_file(t.path().join("etc/hostname")).unwrap();
        assert!(!Rootfs::dir(t.path()).is_layered(false));
        assert!(Rootfs::dir(t.path()).is_layered(true));
        assert!(!Rootfs::dir(t.path()).writable().is_layered(true));
        // /etc itself may be a link inside the tree.
        let u = tempfile::tempdir().unwrap();
        with_etc(&u.path().join("real"));
        std::os::unix::fs::symlink("/real/etc", u.path().join("etc")).unwrap();
        assert!(!Rootfs::dir(u.path()).is_layered(true));
    }

    #[test]
    fn host_readonly_binds_system_dirs_read_only_and_seals_the_root() {
        let p = plan(&Rootfs::host_readonly(), &pid()).unwrap();
        let s = steps(&p);
        assert!(s.contains(&"bind /usr on /usr (ro)".to_string()), "{s:?}");
        assert!(s.contains(&"bind /etc on /etc (ro)".to_string()), "{s:?}");
        assert!(
            s.contains(&"symlink /bin -> usr/bin".to_string())
                || s.contains(&"mkdir /bin".to_string()),
            "{s:?}"
        );
        for d in ["/tmp", "/run", "/home", "/root"] {
            assert!(
                s.contains(&format!("place a writable directory on {d}")),
                "{d}: {s:?}"
            );
        }
        assert!(
            s.contains(&"place the file /etc/hosts (ro)".to_string()),
            "{s:?}"
        );
        let seal = s.iter().position(|x| x == "make / read-only").unwrap();
        assert_eq!(seal + 2, s.len());
    }

    #[test]
    fn overlay_needs_a_lower_layer_and_attaches_layers_by_fixed_paths() {
        let e = plan(&Rootfs::overlay(Vec::<PathBuf>::new()), &pid()).unwrap_err();
        assert!(matches!(e, Error::NoLowerLayer));
        let t = tempfile::tempdir().unwrap();
        // A name overlayfs's option parser could not take is fine: layers are bound at
        // fixed staging paths first.
        let l = t.path().join("a:b,c");
        std::fs::create_dir(&l).unwrap();
        let p = plan(&Rootfs::overlay([&l]), &pid()).unwrap();
        let data = p
            .ops()
            .iter()
            .find_map(|o| match o {
                Op::Mount { data: Some(d), .. } => Some(d.to_string_lossy().into_owned()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            data,
            "lowerdir=/lower0,upperdir=/upper/u,workdir=/upper/w,userxattr"
        );
        let s = steps(&p);
        let canon = std::fs::canonicalize(&l).unwrap();
        assert!(
            s.contains(&format!("bind {} on (staging)/lower0", canon.display())),
            "{s:?}"
        );
    }

    #[test]
    fn kept_upper_is_created_only_when_everything_else_is_valid() {
        let t = tempfile::tempdir().unwrap();
        let keep = t.path().join("keep");
        let r = Rootfs::overlay([t.path().join("missing")]).upper_dir(&keep);
        assert!(plan(&r, &pid()).is_err());
        assert!(!keep.exists());
        let r = Rootfs::overlay([t.path()]).upper_dir(&keep);
        plan(&r, &pid()).unwrap();
        assert!(keep.join("upper").is_dir() && keep.join("work").is_dir());
    }
}
