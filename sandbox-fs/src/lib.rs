//! Root filesystems and mount plans for sandboxes.
//!
//! A sandbox sees the filesystem its [`Rootfs`] describes. This crate turns that description
//! into a [`MountPlan`]: an ordered list of [`Op`]s whose paths are already absolute,
//! checked and converted to C strings. The plan is computed in the parent, where allocating
//! and failing with a good error are allowed; the spawning code (in `sandbox-core`) then
//! replays it in the freshly cloned child, where neither is.
//!
//! What it does:
//! - [`Rootfs::host()`]: the caller's own tree, seen through a private copy of its mount
//!   table, with a fresh `/proc` for the sandbox's PID namespace;
//! - [`Rootfs::dir(path)`](Rootfs::dir): an existing tree (a busybox or debootstrap tree)
//!   entered with `pivot_root`, read-only unless [`Rootfs::writable`] is asked for, with a
//!   fresh `/proc` and a small private `/dev` (a tmpfs holding only `null zero full random
//!   urandom tty`, a new `devpts` instance, `/dev/shm`, and the `fd stdin stdout stderr`
//!   links — never the host's `devtmpfs`).
//!
//! What it does not do (yet): overlays, images, extra bind mounts, masking of `/proc`
//! paths; nor does it know how a sandbox is spawned.
//!
//! ```
//! use sandbox_fs::{plan, PlanOptions, Rootfs};
//! let p = plan(&Rootfs::host(), &PlanOptions { new_pid_namespace: true }).unwrap();
//! let steps: Vec<String> = p.ops().iter().map(|op| op.to_string()).collect();
//! assert_eq!(steps, ["make / private", "mount proc on /proc"]);
//! ```
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Errors found while planning a root filesystem. Each names the path it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The root directory does not exist or cannot be resolved.
    #[error("rootfs {path}: {source}")]
    RootfsMissing {
        /// The directory that was asked for.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: std::io::Error,
    },
    /// The root exists but is not a directory.
    #[error("rootfs {path}: not a directory")]
    NotADirectory {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// A directory the plan must mount on does not exist in the root.
    #[error("rootfs {root}: missing mount point {path} (create it in the tree)")]
    MissingMountPoint {
        /// The root directory.
        root: PathBuf,
        /// The path inside the root, e.g. `/proc`.
        path: PathBuf,
    },
    /// A path contains a NUL byte and cannot be passed to the kernel.
    #[error("path contains a NUL byte: {path:?}")]
    Nul {
        /// The offending path.
        path: PathBuf,
    },
}

/// The root filesystem of a sandbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Rootfs {
    /// The caller's own tree (through a private copy of its mount table) with a fresh `/proc`.
    #[default]
    Host,
    /// An existing directory, entered with `pivot_root`.
    Dir {
        /// The directory that becomes `/`.
        path: PathBuf,
        /// Whether the sandbox may write to it (it is bound read-only otherwise).
        #[serde(default)]
        writable: bool,
    },
}

impl Rootfs {
    /// The caller's own tree, with a fresh `/proc` for the sandbox's PID namespace.
    pub fn host() -> Rootfs {
        Rootfs::Host
    }

    /// An existing directory tree, entered with `pivot_root` and bound read-only.
    pub fn dir(path: impl Into<PathBuf>) -> Rootfs {
        Rootfs::Dir {
            path: path.into(),
            writable: false,
        }
    }

    /// Makes a [`Rootfs::dir`] writable (no effect on [`Rootfs::host`]).
    pub fn writable(mut self) -> Rootfs {
        if let Rootfs::Dir { writable, .. } = &mut self {
            *writable = true;
        }
        self
    }
}

/// What the plan needs to know about the sandbox it is for.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// The sandbox has a PID namespace of its own, so it gets a fresh `/proc`.
    pub new_pid_namespace: bool,
}

/// Mount flags, as `mount(2)` takes them.
pub type MountFlags = libc::c_ulong;

/// One step of a [`MountPlan`]. Every path is absolute, as seen by the child before
/// `pivot_root`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`: nothing mounted later propagates back
    /// to the host.
    MakePrivate,
    /// A `mount(2)` call.
    Mount {
        /// Source (a path for binds, a name such as `proc` otherwise).
        source: Option<CString>,
        /// Where it is mounted.
        target: CString,
        /// Filesystem type (`None` for binds and remounts).
        fstype: Option<CString>,
        /// `MS_*` flags.
        flags: MountFlags,
        /// Filesystem options (`mode=755`, ...).
        data: Option<CString>,
    },
    /// Creates a directory (an existing one is fine).
    Mkdir {
        /// The directory.
        path: CString,
        /// Its permission bits.
        mode: libc::mode_t,
    },
    /// Creates an empty file to bind something onto (an existing one is fine).
    Touch {
        /// The file.
        path: CString,
        /// Its permission bits.
        mode: libc::mode_t,
    },
    /// Creates a symbolic link `link` pointing at `target`.
    Symlink {
        /// What the link points at.
        target: CString,
        /// Where the link is created.
        link: CString,
    },
    /// `chdir(new_root); pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/")`.
    PivotRoot {
        /// The directory that becomes `/` (already a mount point).
        new_root: CString,
    },
}

fn show(c: &CString) -> String {
    String::from_utf8_lossy(c.as_bytes()).into_owned()
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::MakePrivate => write!(f, "make / private"),
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                ..
            } => {
                let target = show(target);
                if flags & libc::MS_REMOUNT != 0 {
                    write!(f, "remount {target}")
                } else if flags & libc::MS_BIND != 0 {
                    let src = source.as_ref().map(show).unwrap_or_default();
                    write!(f, "bind {src} on {target}")
                } else {
                    let ty = fstype.as_ref().map(show).unwrap_or_default();
                    write!(f, "mount {ty} on {target}")
                }
            }
            Op::Mkdir { path, .. } => write!(f, "mkdir {}", show(path)),
            Op::Touch { path, .. } => write!(f, "create {}", show(path)),
            Op::Symlink { target, link } => write!(f, "symlink {} -> {}", show(link), show(target)),
            Op::PivotRoot { new_root } => write!(f, "pivot_root into {}", show(new_root)),
        }
    }
}

/// The ordered mount steps for one sandbox, ready to be replayed in the child.
#[derive(Debug, Clone, Default)]
pub struct MountPlan {
    ops: Vec<Op>,
}

impl MountPlan {
    /// The steps, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

fn cpath(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Nul {
        path: p.to_path_buf(),
    })
}

fn cstr(s: &str) -> CString {
    // Only called on literals without NUL bytes.
    CString::new(s).unwrap_or_default()
}

/// The device nodes bound into a private `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

struct Builder {
    ops: Vec<Op>,
}

impl Builder {
    fn mount(
        &mut self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: MountFlags,
        data: Option<&str>,
    ) -> Result<(), Error> {
        self.ops.push(Op::Mount {
            source: source.map(cstr),
            target: cpath(target)?,
            fstype: fstype.map(cstr),
            flags,
            data: data.map(cstr),
        });
        Ok(())
    }

    fn bind(&mut self, source: &Path, target: &Path, flags: MountFlags) -> Result<(), Error> {
        self.ops.push(Op::Mount {
            source: Some(cpath(source)?),
            target: cpath(target)?,
            fstype: None,
            flags: libc::MS_BIND | flags,
            data: None,
        });
        Ok(())
    }

    fn proc(&mut self, target: &Path) -> Result<(), Error> {
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        self.mount(Some("proc"), target, Some("proc"), flags, None)
    }

    /// A private `/dev`: tmpfs, the harmless device nodes bound from the host, a new devpts.
    fn dev(&mut self, dev: &Path) -> Result<(), Error> {
        let nosuid = libc::MS_NOSUID;
        self.mount(
            Some("tmpfs"),
            dev,
            Some("tmpfs"),
            nosuid | libc::MS_NOEXEC | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        for name in DEVICES {
            let target = dev.join(name);
            self.ops.push(Op::Touch {
                path: cpath(&target)?,
                mode: 0o666,
            });
            self.bind(&Path::new("/dev").join(name), &target, 0)?;
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            self.ops.push(Op::Symlink {
                target: cstr(target),
                link: cpath(&dev.join(link))?,
            });
        }
        let pts = dev.join("pts");
        self.ops.push(Op::Mkdir {
            path: cpath(&pts)?,
            mode: 0o755,
        });
        self.mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            nosuid | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        )?;
        let shm = dev.join("shm");
        self.ops.push(Op::Mkdir {
            path: cpath(&shm)?,
            mode: 0o1777,
        });
        self.mount(
            Some("tmpfs"),
            &shm,
            Some("tmpfs"),
            nosuid | libc::MS_NODEV,
            Some("mode=1777"),
        )
    }
}

/// Turns a [`Rootfs`] into the steps that build it. Checks everything it can in the parent:
/// the root exists, is a directory, and has the mount points the plan needs.
pub fn plan(rootfs: &Rootfs, opts: &PlanOptions) -> Result<MountPlan, Error> {
    let mut b = Builder {
        ops: vec![Op::MakePrivate],
    };
    match rootfs {
        Rootfs::Host => {
            if opts.new_pid_namespace {
                b.proc(Path::new("/proc"))?;
            }
        }
        Rootfs::Dir { path, writable } => {
            let root = std::fs::canonicalize(path).map_err(|source| Error::RootfsMissing {
                path: path.clone(),
                source,
            })?;
            if !root.is_dir() {
                return Err(Error::NotADirectory { path: path.clone() });
            }
            cpath(&root)?;
            b.bind(&root, &root, libc::MS_REC)?;
            if !writable {
                // A read-only remount of a bind must repeat the flags the kernel locked on
                // the source (nosuid, nodev, ...), or a user namespace refuses it (EPERM).
                let locked = locked_flags(&root);
                b.ops.push(Op::Mount {
                    source: None,
                    target: cpath(&root)?,
                    fstype: None,
                    flags: libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
                    data: None,
                });
            }
            if opts.new_pid_namespace {
                let proc = root.join("proc");
                if !proc.is_dir() {
                    return Err(Error::MissingMountPoint {
                        root,
                        path: PathBuf::from("/proc"),
                    });
                }
                b.proc(&proc)?;
            }
            let dev = root.join("dev");
            if dev.is_dir() {
                b.dev(&dev)?;
            }
            b.ops.push(Op::PivotRoot {
                new_root: cpath(&root)?,
            });
        }
    }
    Ok(MountPlan { ops: b.ops })
}

/// The per-mount flags of the filesystem holding `path` that a remount must keep.
fn locked_flags(path: &Path) -> MountFlags {
    let Ok(c) = cpath(path) else { return 0 };
    // SAFETY: `statvfs` is plain data; an all-zero value is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    let mut out = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            out |= ms_flag;
        }
    }
    out
}

/// Lossless conversion of an [`OsStr`] to a C string, or the typed error naming it.
pub fn to_cstring(s: &OsStr) -> Result<CString, Error> {
    cpath(Path::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(p: &MountPlan) -> Vec<String> {
        p.ops().iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn host_without_pid_namespace_only_goes_private() {
        let p = plan(&Rootfs::host(), &PlanOptions::default()).unwrap();
        assert_eq!(steps(&p), ["make / private"]);
    }

    #[test]
    fn dir_plan_binds_mounts_and_pivots() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("proc")).unwrap();
        std::fs::create_dir(t.path().join("dev")).unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        let r = root.display();
        let p = plan(
            &Rootfs::dir(t.path()),
            &PlanOptions {
                new_pid_namespace: true,
            },
        )
        .unwrap();
        let s = steps(&p);
        assert_eq!(s[0], "make / private");
        assert_eq!(s[1], format!("bind {r} on {r}"));
        assert_eq!(s[2], format!("remount {r}"));
        assert_eq!(s[3], format!("mount proc on {r}/proc"));
        assert_eq!(s[4], format!("mount tmpfs on {r}/dev"));
        assert!(s.contains(&format!("bind /dev/null on {r}/dev/null")));
        assert!(s.contains(&format!("mount devpts on {r}/dev/pts")));
        assert!(!s.iter().any(|x| x.contains("devtmpfs")));
        assert_eq!(s.last().unwrap(), &format!("pivot_root into {r}"));
    }

    #[test]
    fn writable_dir_has_no_readonly_remount() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(&Rootfs::dir(t.path()).writable(), &PlanOptions::default()).unwrap();
        assert!(!steps(&p).iter().any(|s| s.starts_with("remount")));
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
    fn rootfs_without_proc_is_rejected_when_a_pid_namespace_needs_it() {
        let t = tempfile::tempdir().unwrap();
        let opts = PlanOptions {
            new_pid_namespace: true,
        };
        let e = plan(&Rootfs::dir(t.path()), &opts).unwrap_err();
        assert!(e.to_string().contains("missing mount point /proc"), "{e}");
    }

    #[test]
    fn serde_form() {
        let r = Rootfs::dir("/srv/busybox");
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"dir","path":"/srv/busybox","writable":false}"#
        );
        assert_eq!(serde_json::from_str::<Rootfs>(&j).unwrap(), r);
        let h: Rootfs = serde_json::from_str(r#"{"kind":"host"}"#).unwrap();
        assert_eq!(h, Rootfs::Host);
    }
}
