//! Internal: the plan sandbox-core's child replays; not a stable API.
//!
//! [`plan`] turns a [`Rootfs`] and [`Mount`]s into a [`MountPlan`]: an ordered list of
//! [`Op`]s whose strings are already converted to C strings and whose paths are already
//! checked (targets are [`InRoot`] paths, resolved in the child with
//! `openat2(RESOLVE_IN_ROOT)`). `sandbox-core` computes it in the parent and replays it, step
//! by step, in the freshly cloned child, where nothing may allocate or fail with more than an
//! errno. Each step prints as what it does inside the sandbox:
//!
//! ```
//! use sandbox_fs::plan::{plan, PlanOptions};
//! use sandbox_fs::{Mount, Rootfs};
//! let mounts = [Mount::tmpfs("/scratch").size(16 << 20)];
//! let opts = PlanOptions { new_pid_namespace: true, mounts: &mounts, ..Default::default() };
//! let p = plan(&Rootfs::host_readonly(), &opts).unwrap();
//! let steps: Vec<String> = p.ops().iter().map(|op| op.to_string()).collect();
//! assert!(steps.contains(&"bind /usr on /usr (ro)".to_string()), "{steps:?}");
//! assert!(steps.contains(&"mount tmpfs on /scratch".to_string()), "{steps:?}");
//! ```

mod builder;
mod etc;
mod mounts;
mod proc_dev_sys;
mod roots;

pub use proc_dev_sys::{DEVICES, MASKED_DIRS, MASKED_FILES, READONLY_PATHS};

use crate::image::ImageCache;
use crate::kernel::MOUNT_ATTR_RDONLY as RDONLY;
use crate::{check_target, Error, Mount, Rootfs};
use builder::{cbytes, cstr, Builder};
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where the host's tree is reachable while a new root is built.
const OLDROOT: &str = "/oldroot";
/// Where the new root is mounted in the staging tmpfs.
const NEWROOT: &str = "/newroot";

/// What the plan needs to know about the sandbox it is for.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions<'a> {
    /// The sandbox has a PID namespace of its own, so it gets a fresh `/proc`.
    pub new_pid_namespace: bool,
    /// The sandbox has a network namespace of its own (a fresh `sysfs` is possible, and
    /// `/etc/resolv.conf` names no server).
    pub new_net_namespace: bool,
    /// The sandbox's hostname, for the generated `/etc/hostname` and `/etc/hosts`.
    pub hostname: Option<&'a str>,
    /// Extra mounts, placed in order after the root is built.
    pub mounts: &'a [Mount],
    /// A user namespace whose maps say how host ids show inside: when given, overlay lower
    /// layers are mounted idmapped through it.
    pub idmap_userns: Option<BorrowedFd<'a>>,
    /// The host uid and gid of the sandbox's root, who must own a kept overlay upper
    /// directory.
    pub root_owner: Option<(u32, u32)>,
    /// The sandbox's own address (on a bridge), listed for its hostname in `/etc/hosts`
    /// instead of 127.0.1.1.
    pub own_address: Option<std::net::IpAddr>,
    /// More `/etc/hosts` entries: other sandboxes, names the caller added.
    pub hosts: &'a [(String, std::net::IpAddr)],
    /// The `/etc/resolv.conf` of a sandbox with a network namespace of its own and a way
    /// out (a bridge with NAT); `None`: one naming no server.
    pub resolv_conf: Option<&'a [u8]>,
}

/// A `fsconfig(2)` option of a fresh filesystem: `key=value`, or a flag.
#[derive(Debug, Clone)]
pub struct FsOption {
    /// The option's name.
    pub key: CString,
    /// Its value (`None` for a flag).
    pub value: Option<CString>,
}

/// Whether a mount target is (or is created as) a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A directory.
    Dir,
    /// A non-directory (file, device node).
    File,
}

/// A path inside the new root, resolved component by component with
/// `openat2(root, prefix, RESOLVE_IN_ROOT)`, so symlinks and `..` never lead out of it.
#[derive(Debug, Clone)]
pub struct InRoot {
    shown: String,
    /// `a`, `a/b`, `a/b/c`: the prefixes resolved in turn.
    prefixes: Vec<CString>,
    /// `a`, `b`, `c`: the name created in the previous prefix when missing.
    names: Vec<CString>,
    kind: TargetKind,
    create: bool,
    optional: bool,
}

impl InRoot {
    fn new(path: &Path, kind: TargetKind, create: bool) -> Result<InRoot, Error> {
        let comps = check_target(path)?;
        let mut prefixes = Vec::with_capacity(comps.len());
        let mut names = Vec::with_capacity(comps.len());
        let mut acc: Vec<u8> = Vec::new();
        for c in comps {
            if !acc.is_empty() {
                acc.push(b'/');
            }
            acc.extend_from_slice(c.as_bytes());
            prefixes.push(cbytes(&acc, path)?);
            names.push(cbytes(c.as_bytes(), path)?);
        }
        Ok(InRoot {
            shown: format!("/{}", String::from_utf8_lossy(&acc)),
            prefixes,
            names,
            kind,
            create,
            optional: false,
        })
    }

    fn rel(path: &str, kind: TargetKind, create: bool) -> InRoot {
        // Only called on literal relative paths without NUL or `..`.
        InRoot::new(&Path::new("/").join(path), kind, create).unwrap_or_else(|_| InRoot {
            shown: path.into(),
            prefixes: Vec::new(),
            names: Vec::new(),
            kind,
            create,
            optional: true,
        })
    }

    fn optional(mut self) -> InRoot {
        self.optional = true;
        self
    }

    /// `(prefix, name)` pairs, outermost first.
    pub fn steps(&self) -> impl Iterator<Item = (&CStr, &CStr)> {
        self.prefixes
            .iter()
            .map(CString::as_c_str)
            .zip(self.names.iter().map(CString::as_c_str))
    }

    /// The number of components.
    pub fn depth(&self) -> usize {
        self.prefixes.len()
    }

    /// The last component.
    pub fn name(&self) -> &CStr {
        self.names.last().map_or(c"", CString::as_c_str)
    }

    /// Directory or file.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// Missing components are created (directories; the last one as [`InRoot::kind`] says).
    pub fn create(&self) -> bool {
        self.create
    }

    /// A target that is missing (and cannot be created) is skipped, not an error.
    pub fn is_optional(&self) -> bool {
        self.optional
    }
}

impl fmt::Display for InRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Where a mount goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// An absolute path of the staging tmpfs (trusted: the child made it).
    Staging(CString),
    /// A path inside the new root.
    Root(InRoot),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Staging(p) => f.write_str(&shown_staging(p)),
            Target::Root(r) => r.fmt(f),
        }
    }
}

/// One step of a [`MountPlan`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op {
    /// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)`: nothing mounted later propagates back
    /// to the host.
    MakePrivate,
    /// A tmpfs on `/tmp`, then `pivot_root` into it with the old root at `/oldroot`: the
    /// staging area where the new root is built.
    Stage,
    /// A `mount(2)` call on a trusted path (the host's `/proc` of a `host` root, or a
    /// staging path).
    Mount {
        /// Source (a name such as `proc`, or a path).
        source: Option<CString>,
        /// Where it is mounted.
        target: CString,
        /// Filesystem type (`None` for binds and remounts).
        fstype: Option<CString>,
        /// `MS_*` flags.
        flags: libc::c_ulong,
        /// Filesystem options.
        data: Option<CString>,
        /// A missing target (`ENOENT`) skips the step (a masked path this kernel lacks).
        optional: bool,
    },
    /// Creates an empty file in the staging area (an existing one is fine).
    Touch {
        /// The file.
        path: CString,
    },
    /// Creates a symbolic link in the staging area.
    Link {
        /// What the link points at.
        points_to: CString,
        /// The link.
        path: CString,
    },
    /// Moves a mount built in the staging area (with what is mounted below it) onto a
    /// target: `move_mount(from, target fd)`.
    Move {
        /// The staging path of the mount.
        from: CString,
        /// Where it goes.
        to: Target,
    },
    /// Creates a directory in the staging area (an existing one is fine).
    Mkdir {
        /// The directory.
        path: CString,
        /// Its permission bits.
        mode: libc::mode_t,
    },
    /// Writes a file in the staging area (a generated `/etc/hosts`, a [`Mount::file`]).
    WriteFile {
        /// The file.
        path: CString,
        /// Its contents.
        contents: Vec<u8>,
        /// Its permission bits.
        mode: libc::mode_t,
    },
    /// Attaches a detached tree the parent made (an idmapped layer) at a staging path.
    Attach {
        /// The tree (kept open in the child).
        fd: RawFd,
        /// The staging directory.
        path: CString,
        /// The host path it copies, for messages.
        shown: String,
    },
    /// Opens the new root: the directory every [`InRoot`] is resolved in.
    OpenRoot {
        /// Its path in the staging area (or `/oldroot` for the host's tree).
        path: CString,
    },
    /// A bind mount: `open_tree(source, OPEN_TREE_CLONE)`, `mount_setattr`, `move_mount`
    /// onto the target's fd.
    Bind {
        /// A trusted absolute path (`/oldroot/…` or a staging file).
        source: CString,
        /// Where it goes.
        target: Target,
        /// Also what is mounted below the source.
        recursive: bool,
        /// `MOUNT_ATTR_*` to set.
        attr: u64,
    },
    /// A fresh filesystem: `fsopen`, `fsconfig`, `fsmount`, `move_mount` onto the target.
    Fresh {
        /// `tmpfs`, `proc`, `sysfs`, `devpts`.
        fstype: CString,
        /// Its options.
        options: Vec<FsOption>,
        /// Where it goes.
        target: Target,
        /// `MOUNT_ATTR_*` of the mount.
        attr: u64,
    },
    /// Creates a directory (and its parents) inside the root.
    MakeDir {
        /// The directory.
        target: InRoot,
        /// Its permission bits.
        mode: libc::mode_t,
    },
    /// Creates a symbolic link inside the root (an existing one is fine).
    Symlink {
        /// What the link points at.
        points_to: CString,
        /// The link.
        link: InRoot,
    },
    /// Binds a path of the root onto itself, read-only.
    ReadOnly {
        /// The path.
        target: InRoot,
    },
    /// Makes the new root's own mount read-only (after every mount point in it exists).
    SealRoot,
    /// `fchdir(root); pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/")`: the new
    /// root becomes `/`, the staging area and the host's tree are detached.
    EnterRoot,
}

fn show(c: &CStr) -> String {
    String::from_utf8_lossy(c.to_bytes()).into_owned()
}

/// A staging path as the sandbox will see it (`/newroot/etc` → `/etc`), or marked as a
/// staging path.
fn shown_staging(c: &CStr) -> String {
    let s = show(c);
    if s == NEWROOT {
        return "/".into();
    }
    match s.strip_prefix(NEWROOT) {
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => format!("(staging){s}"),
    }
}

fn attrs(attr: u64) -> &'static str {
    if attr & RDONLY != 0 {
        " (ro)"
    } else {
        ""
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::MakePrivate => write!(f, "make / private"),
            Op::Stage => write!(f, "mount the staging tmpfs on /tmp and pivot into it"),
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                ..
            } => {
                // Staging paths of /proc, /dev, /sys are where those trees end up.
                let t = show(target);
                let target = t
                    .strip_prefix(NEWROOT)
                    .filter(|r| r.starts_with('/'))
                    .unwrap_or(&t);
                if flags & libc::MS_REMOUNT != 0 && flags & libc::MS_RDONLY != 0 {
                    write!(f, "make {target} read-only")
                } else if flags & libc::MS_REMOUNT != 0 {
                    write!(f, "set nosuid/nodev/noexec on {target}")
                } else if flags & libc::MS_BIND != 0 {
                    let src = source.as_deref().map(show).unwrap_or_default();
                    if src.starts_with("/rw/") {
                        write!(f, "place a writable directory on {target}")
                    } else if src == "/empty" {
                        write!(f, "mask {target}")
                    } else if src == target {
                        write!(f, "make {target} a mount point")
                    } else {
                        let src = src.strip_prefix(OLDROOT).unwrap_or(&src);
                        write!(f, "bind {src} on {target}")
                    }
                } else {
                    let ty = fstype.as_deref().map(show).unwrap_or_default();
                    if target == NEWROOT {
                        write!(f, "mount {ty} as the root")
                    } else {
                        write!(f, "mount {ty} on {target}")
                    }
                }
            }
            Op::Mkdir { path, .. } => write!(f, "mkdir {}", shown_staging(path)),
            Op::Touch { path } => write!(f, "create {}", shown_staging(path)),
            Op::Link { points_to, path } => {
                write!(f, "symlink {} -> {}", shown_staging(path), show(points_to))
            }
            Op::Move { from, to } => match show(from).as_str() {
                // The trees built in the staging area: name them by where they end up.
                "/proc" | "/dev" | "/sys" => write!(f, "place the new {} on {to}", show(from)),
                other => write!(f, "move (staging){other} onto {to}"),
            },
            Op::WriteFile { path, .. } => write!(f, "write (staging){}", show(path)),
            Op::Attach { shown, .. } => write!(f, "attach the idmapped copy of {shown}"),
            Op::OpenRoot { path } => write!(f, "open the new root {}", show(path)),
            Op::Bind {
                source,
                target,
                attr,
                ..
            } => {
                let s = show(source);
                match s.strip_prefix(OLDROOT) {
                    Some(host) => write!(f, "bind {host} on {target}{}", attrs(*attr)),
                    None => write!(f, "place the file {target}{}", attrs(*attr)),
                }
            }
            Op::Fresh {
                fstype,
                target,
                attr,
                ..
            } => write!(f, "mount {} on {target}{}", show(fstype), attrs(*attr)),
            Op::MakeDir { target, .. } => write!(f, "mkdir {target}"),
            Op::Symlink { points_to, link } => {
                write!(f, "symlink {link} -> {}", show(points_to))
            }
            Op::ReadOnly { target } => write!(f, "make {target} read-only"),
            Op::SealRoot => write!(f, "make / read-only"),
            Op::EnterRoot => write!(f, "pivot_root into the new root"),
        }
    }
}

/// The ordered mount steps for one sandbox, ready to be replayed in the child, and the
/// descriptors (detached trees) they use.
#[derive(Debug, Default)]
pub struct MountPlan {
    ops: Vec<Op>,
    fds: Vec<OwnedFd>,
}

impl MountPlan {
    /// The steps, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The descriptors the child must keep open for [`Op::Attach`]. The parent closes its
    /// copies once the child is cloned.
    pub fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }

    /// Raw numbers of the descriptors still held (see [`MountPlan::take_fds`]).
    pub fn fds(&self) -> Vec<RawFd> {
        self.fds.iter().map(|f| f.as_raw_fd()).collect()
    }
}

/// Checks extra mounts on their own, as planning a root does first: absolute targets without
/// `..`, existing bind sources, sensible sizes and modes. Creates nothing.
pub fn check_mounts(mounts: &[Mount]) -> Result<(), Error> {
    let mut b = Builder {
        ops: Vec::new(),
        fds: Vec::new(),
        files: 0,
        rw: false,
        empty: false,
    };
    let opts = PlanOptions {
        mounts,
        ..Default::default()
    };
    b.user_mounts(&opts, true)
}

/// Turns a [`Rootfs`] and the extra mounts of `opts` into the steps that build them.
/// Checks everything it can in the parent: roots and bind sources exist, targets are
/// absolute and cannot climb out, sizes and modes make sense; imports an image into its
/// cache on first use.
pub fn plan(rootfs: &Rootfs, opts: &PlanOptions<'_>) -> Result<MountPlan, Error> {
    // Bad mounts are refused before anything is created on the host (a kept upper
    // directory, an image in the cache).
    check_mounts(opts.mounts)?;
    let mut b = Builder {
        ops: vec![Op::MakePrivate],
        fds: Vec::new(),
        files: 0,
        rw: false,
        empty: false,
    };
    match rootfs {
        Rootfs::Host => {
            if opts.mounts.is_empty() {
                if opts.new_pid_namespace {
                    b.ops.push(Op::Mount {
                        source: Some(cstr("proc")),
                        target: cstr("/proc"),
                        fstype: Some(cstr("proc")),
                        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: None,
                        optional: false,
                    });
                }
            } else {
                // The host's tree is the root: nothing is created in it, targets must exist.
                b.ops.push(Op::Stage);
                b.ops.push(Op::OpenRoot {
                    path: cstr(OLDROOT),
                });
                if opts.new_pid_namespace {
                    b.proc(opts, InRoot::rel("proc", TargetKind::Dir, false));
                }
                b.user_mounts(opts, false)?;
                b.ops.push(Op::EnterRoot);
            }
        }
        Rootfs::HostReadonly => b.host_readonly(opts)?,
        Rootfs::Dir { path, writable } => b.dir(opts, path, *writable)?,
        Rootfs::Overlay { lower, upper } => b.overlay(opts, lower, upper.as_deref())?,
        Rootfs::Image { path, cache, upper } => {
            let cache = ImageCache::new(cache.clone().unwrap_or_else(ImageCache::default_dir));
            let imported = cache.import(path)?;
            b.overlay(opts, &[imported.root], upper.as_deref())?
        }
    }
    Ok(MountPlan {
        ops: b.ops,
        fds: b.fds,
    })
}

#[cfg(test)]
mod tests {
    //! The steps' helpers for every plan test; a host root without a PID namespace of its own is
    //! only made private.

    use super::*;

    pub(super) fn steps(p: &MountPlan) -> Vec<String> {
        p.ops().iter().map(|o| o.to_string()).collect()
    }

    pub(super) fn pid() -> PlanOptions<'static> {
        PlanOptions {
            new_pid_namespace: true,
            new_net_namespace: true,
            ..Default::default()
        }
    }

    #[test]
    fn host_without_pid_namespace_only_goes_private() {
        let p = plan(&Rootfs::host(), &PlanOptions::default()).unwrap();
        assert_eq!(steps(&p), ["make / private"]);
        let p = plan(&Rootfs::host(), &pid()).unwrap();
        assert_eq!(steps(&p), ["make / private", "mount proc on /proc"]);
    }
}
