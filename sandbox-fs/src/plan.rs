//! Turning a [`Rootfs`] and [`Mount`]s into the steps the child replays.

use crate::image::ImageCache;
use crate::kernel::{
    MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_NOEXEC as NOEXEC, MOUNT_ATTR_NOSUID as NOSUID,
    MOUNT_ATTR_RDONLY as RDONLY,
};
use crate::{check_target, Error, Mount, Rootfs};
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The device nodes bound into a private `/dev`.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Where the host's tree is reachable while a new root is built.
const OLDROOT: &str = "/oldroot";
/// Where the new root is mounted in the staging tmpfs.
const NEWROOT: &str = "/newroot";

/// Files masked with `/dev/null`, as runc masks them.
const MASKED_FILES: [&str; 6] = [
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
];
/// Directories masked with an empty read-only tmpfs.
const MASKED_DIRS: [&str; 5] = [
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];
/// Paths made read-only.
const READONLY_PATHS: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

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

fn cbytes(b: &[u8], path: &Path) -> Result<CString, Error> {
    CString::new(b).map_err(|_| Error::Nul {
        path: path.to_path_buf(),
    })
}

fn cpath(p: &Path) -> Result<CString, Error> {
    cbytes(p.as_os_str().as_bytes(), p)
}

fn cstr(s: &str) -> CString {
    // Only called on literals and formatted numbers, without NUL bytes.
    CString::new(s).unwrap_or_default()
}

/// `/oldroot` + an absolute host path.
fn host(p: &Path) -> Result<CString, Error> {
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

struct Builder {
    ops: Vec<Op>,
    fds: Vec<OwnedFd>,
    /// Files written to the staging area so far.
    files: usize,
    /// `/rw` (backing of writable directories) and `/empty` (masks) exist in staging.
    rw: bool,
    empty: bool,
}

impl Builder {
    fn fresh(&mut self, fstype: &str, options: Vec<FsOption>, target: Target, attr: u64) {
        self.ops.push(Op::Fresh {
            fstype: cstr(fstype),
            options,
            target,
            attr,
        });
    }

    fn tmpfs(&mut self, target: Target, mode: u32, size: Option<u64>, attr: u64) {
        let mut o = vec![opt("mode", Some(format!("{mode:o}")))];
        if let Some(s) = size {
            o.push(opt("size", Some(s.to_string())));
        }
        self.fresh("tmpfs", o, target, attr);
    }

    fn bind(&mut self, source: CString, target: Target, recursive: bool, attr: u64) {
        self.ops.push(Op::Bind {
            source,
            target,
            recursive,
            attr,
        });
    }

    fn staging_file(&mut self, contents: Vec<u8>, mode: u32) -> CString {
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

    fn proc(&mut self, opts: &PlanOptions<'_>, target: InRoot) {
        if opts.new_pid_namespace {
            self.fresh(
                "proc",
                Vec::new(),
                Target::Root(target),
                NOSUID | NODEV | NOEXEC,
            );
        } else {
            // A proc instance belongs to a PID namespace: without one of its own, the
            // sandbox sees the host's.
            self.bind(
                host(Path::new("/proc")).unwrap_or_default(),
                Target::Root(target),
                true,
                0,
            );
        }
    }

    fn sysfs(&mut self, opts: &PlanOptions<'_>, target: InRoot) {
        if opts.new_net_namespace {
            self.fresh(
                "sysfs",
                Vec::new(),
                Target::Root(target),
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        } else {
            // sysfs may only be mounted by the owner of the network namespace.
            self.bind(
                host(Path::new("/sys")).unwrap_or_default(),
                Target::Root(target),
                true,
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        }
    }

    /// A `mount(2)` on a staging path.
    fn smount(
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

    fn smkdir(&mut self, path: &str, mode: libc::mode_t) {
        self.ops.push(Op::Mkdir {
            path: cstr(path),
            mode,
        });
    }

    /// A directory of the staging tmpfs (mode set exactly, whatever the umask), bound at
    /// the staging path `at` with `flags` (`MS_NOSUID`...). Every writable directory of a
    /// new root is one of these: a bind costs a tenth of a fresh tmpfs to mount and tear
    /// down, and the staging tmpfs is the sandbox's own already.
    fn scratch(&mut self, name: &str, mode: libc::mode_t, at: &str, flags: libc::c_ulong) {
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
    fn mask_dir(&mut self, at: &str) {
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
    fn place(&mut self, name: &str, trusted: bool, create: bool, optional: bool) -> Target {
        if trusted {
            let path = format!("{NEWROOT}/{name}");
            self.smkdir(&path, 0o755);
            return Target::Staging(cstr(&path));
        }
        let t = InRoot::rel(name, TargetKind::Dir, create);
        Target::Root(if optional { t.optional() } else { t })
    }

    /// `/proc`, built in the staging area (fresh for the sandbox's PID namespace, masked and
    /// partly read-only as runc does it), then moved onto `target` in one step.
    fn staged_proc(&mut self, opts: &PlanOptions<'_>, target: Target) {
        let fresh = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        self.smkdir("/proc", 0o555);
        if opts.new_pid_namespace {
            self.smount(Some("proc"), "/proc", Some("proc"), fresh, None, false);
        } else {
            // A proc instance belongs to a PID namespace: without one of its own, the
            // sandbox sees the host's, masked the same way.
            let bind = libc::MS_BIND | libc::MS_REC;
            self.smount(Some("/oldroot/proc"), "/proc", None, bind, None, false);
        }
        for f in MASKED_FILES {
            let at = format!("/{f}");
            self.smount(
                Some("/oldroot/dev/null"),
                &at,
                None,
                libc::MS_BIND,
                None,
                true,
            );
        }
        for d in MASKED_DIRS.iter().filter(|d| d.starts_with("proc/")) {
            self.mask_dir(&format!("/{d}"));
        }
        for p in READONLY_PATHS {
            let at = format!("/{p}");
            let bind = libc::MS_BIND | libc::MS_REC;
            self.smount(Some(&at), &at, None, bind, None, true);
            let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | fresh;
            self.smount(None, &at, None, ro, None, true);
        }
        self.ops.push(Op::Move {
            from: cstr("/proc"),
            to: target,
        });
    }

    /// A private `/dev`, built in the staging area — a directory holding only the harmless
    /// device nodes (bound from the host), the usual links, a new `devpts` instance and
    /// `/dev/shm` — then moved onto `target`.
    fn staged_dev(&mut self, target: Target) {
        self.smkdir("/dev", 0o755);
        let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
        self.scratch("dev", 0o755, "/dev", flags);
        for name in DEVICES {
            let at = format!("/dev/{name}");
            self.ops.push(Op::Touch { path: cstr(&at) });
            // A device the host lacks is left out.
            let src = format!("/oldroot/dev/{name}");
            self.smount(Some(&src), &at, None, libc::MS_BIND, None, true);
        }
        for (link, points_to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            self.ops.push(Op::Link {
                points_to: cstr(points_to),
                path: cstr(&format!("/dev/{link}")),
            });
        }
        self.smkdir("/dev/pts", 0o755);
        self.smount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            flags,
            Some("newinstance,ptmxmode=0666,mode=620"),
            false,
        );
        self.smkdir("/dev/shm", 0o755);
        self.scratch("shm", 0o1777, "/dev/shm", libc::MS_NOSUID | libc::MS_NODEV);
        self.ops.push(Op::Move {
            from: cstr("/dev"),
            to: target,
        });
    }

    /// `/sys`, read-only (fresh when the sandbox owns its network namespace, the host's
    /// otherwise), masked as runc does it, built in the staging area and moved onto
    /// `target`.
    fn staged_sys(&mut self, opts: &PlanOptions<'_>, target: Target) {
        let fresh = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        self.smkdir("/sys", 0o555);
        if opts.new_net_namespace {
            let flags = libc::MS_RDONLY | fresh;
            self.smount(Some("sysfs"), "/sys", Some("sysfs"), flags, None, false);
        } else {
            // sysfs may only be mounted by the owner of the network namespace.
            self.bind(
                cstr("/oldroot/sys"),
                Target::Staging(cstr("/sys")),
                true,
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        }
        for d in MASKED_DIRS.iter().filter(|d| d.starts_with("sys/")) {
            self.mask_dir(&format!("/{d}"));
        }
        self.ops.push(Op::Move {
            from: cstr("/sys"),
            to: target,
        });
    }

    /// Generated `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, bound read-only where
    /// the root has (or can take) them.
    fn etc(&mut self, opts: &PlanOptions<'_>) {
        let name = opts.hostname.unwrap_or("localhost");
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        if let Some(h) = opts.hostname {
            files.push(("etc/hostname", format!("{h}\n").into_bytes()));
        }
        let own = opts
            .own_address
            .map_or_else(|| "127.0.1.1".to_string(), |a| a.to_string());
        let mut hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}\t{name}\n"
        );
        for (n, a) in opts.hosts {
            hosts.push_str(&format!("{a}\t{n}\n"));
        }
        files.push(("etc/hosts", hosts.into_bytes()));
        let resolv = if let (true, Some(r)) = (opts.new_net_namespace, opts.resolv_conf) {
            r.to_vec()
        } else if opts.new_net_namespace {
            b"# this sandbox has no network of the host's (no name server)\n".to_vec()
        } else {
            std::fs::read("/etc/resolv.conf").unwrap_or_default()
        };
        files.push(("etc/resolv.conf", resolv));
        for (path, contents) in files {
            let src = self.staging_file(contents, 0o644);
            let t = InRoot::rel(path, TargetKind::File, true).optional();
            self.bind(
                src,
                Target::Root(t),
                false,
                RDONLY | NOSUID | NODEV | NOEXEC,
            );
        }
    }

    fn user_mounts(&mut self, opts: &PlanOptions<'_>, new_root: bool) -> Result<(), Error> {
        for m in opts.mounts {
            self.user_mount(opts, m, new_root)?;
        }
        Ok(())
    }

    fn user_mount(
        &mut self,
        opts: &PlanOptions<'_>,
        m: &Mount,
        new_root: bool,
    ) -> Result<(), Error> {
        let dir = |p: &Path| InRoot::new(p, TargetKind::Dir, new_root);
        let on_host = |what: &str| {
            Error::BadTarget {
            target: m.target().to_path_buf(),
            reason: match what {
                "dir" => "a dir mount needs a root of the sandbox's own (it would be created on the host)",
                _ => "a symlink mount needs a root of the sandbox's own (it would be created on the host)",
            },
        }
        };
        match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                let canon = std::fs::canonicalize(source).map_err(|e| Error::BindSource {
                    path: source.clone(),
                    source: e,
                })?;
                let meta = std::fs::metadata(&canon).map_err(|e| Error::BindSource {
                    path: source.clone(),
                    source: e,
                })?;
                let kind = if meta.is_dir() {
                    TargetKind::Dir
                } else {
                    TargetKind::File
                };
                let t = InRoot::new(target, kind, new_root)?;
                let ro = if *readonly { RDONLY } else { 0 };
                self.bind(host(&canon)?, Target::Root(t), true, ro | NOSUID | NODEV);
            }
            Mount::Tmpfs { target, size, mode } => {
                if *size == Some(0) {
                    return Err(Error::Invalid {
                        what: "tmpfs size",
                        reason: format!(
                            "{}: 0 bytes (the kernel would read it as no limit)",
                            target.display()
                        ),
                    });
                }
                let mode = mode.unwrap_or(0o755);
                if mode > 0o7777 {
                    return Err(Error::Invalid {
                        what: "tmpfs mode",
                        reason: format!("{}: {mode:o} is not a permission mode", target.display()),
                    });
                }
                self.tmpfs(Target::Root(dir(target)?), mode, *size, NOSUID | NODEV);
            }
            Mount::Proc { target } => self.proc(opts, dir(target)?),
            Mount::Sysfs { target } => self.sysfs(opts, dir(target)?),
            Mount::File {
                target,
                contents,
                mode,
                readonly,
            } => {
                let t = InRoot::new(target, TargetKind::File, new_root)?;
                let mode = mode.unwrap_or(0o644);
                if mode > 0o7777 {
                    return Err(Error::Invalid {
                        what: "file mode",
                        reason: format!("{}: {mode:o} is not a permission mode", target.display()),
                    });
                }
                let src = self.staging_file(contents.clone(), mode);
                let ro = if *readonly { RDONLY } else { 0 };
                self.bind(src, Target::Root(t), false, ro | NOSUID | NODEV);
            }
            Mount::Symlink { link, points_to } => {
                if !new_root {
                    return Err(on_host("symlink"));
                }
                let l = InRoot::new(link, TargetKind::File, true)?;
                self.ops.push(Op::Symlink {
                    points_to: cpath(points_to)?,
                    link: l,
                });
            }
            Mount::Dir { target, mode } => {
                if !new_root {
                    return Err(on_host("dir"));
                }
                let mode = mode.unwrap_or(0o755);
                if mode > 0o7777 {
                    return Err(Error::Invalid {
                        what: "directory mode",
                        reason: format!("{}: {mode:o} is not a permission mode", target.display()),
                    });
                }
                self.ops.push(Op::MakeDir {
                    target: dir(target)?,
                    mode,
                });
            }
        }
        Ok(())
    }

    /// Everything after the root itself: `/proc`, `/dev`, `/sys`, `/etc` files, the
    /// caller's mounts; then into the new root. `trusted`: the root is a tmpfs of this
    /// sandbox's (its skeleton is placed by staging path); `create`: missing mount points
    /// may be created in the root.
    fn tail(
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

    fn host_readonly(&mut self, opts: &PlanOptions<'_>) -> Result<(), Error> {
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

    fn dir(&mut self, opts: &PlanOptions<'_>, path: &Path, writable: bool) -> Result<(), Error> {
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

    fn overlay(
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

/// The files every new root gets generated (bound over what the tree has).
const ETC_FILES: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Whether a tree has no entry for one of [`ETC_FILES`] it would get (`/etc/hostname` only
/// with a hostname): its `/etc` resolved inside it, as the sandbox would, the file itself
/// not followed (a dangling link is an entry a layer could not replace either).
fn lacks_etc_files(root: &Path, hostname: bool) -> bool {
    use nix::fcntl::{open, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
    let Ok(dir) = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) else {
        return false;
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let Ok(etc) = openat2(&dir, "etc", how) else {
        return true;
    };
    ETC_FILES
        .iter()
        .filter(|f| hostname || **f != "etc/hostname")
        .filter_map(|f| f.strip_prefix("etc/"))
        .any(|name| {
            nix::sys::stat::fstatat(&etc, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                == Err(nix::Error::ENOENT)
        })
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

/// Checks extra mounts on their own, as [`plan`] does first: absolute targets without
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
    use super::*;

    fn steps(p: &MountPlan) -> Vec<String> {
        p.ops().iter().map(|o| o.to_string()).collect()
    }

    fn pid() -> PlanOptions<'static> {
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
    fn targets_must_be_absolute_and_stay_inside() {
        for (t, want) in [
            ("relative/x", "not an absolute path"),
            ("/a/../../etc", "contains `..`"),
            ("/", "the root itself"),
        ] {
            let m = [Mount::tmpfs(t)];
            let opts = PlanOptions {
                mounts: &m,
                ..pid()
            };
            let e = plan(&Rootfs::host_readonly(), &opts).unwrap_err();
            assert!(matches!(e, Error::BadTarget { .. }), "{e}");
            assert!(
                e.to_string().contains(want) && e.to_string().contains(t),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_bind_source_names_it() {
        let m = [Mount::bind("/no/such/source", "/data")];
        let opts = PlanOptions {
            mounts: &m,
            ..pid()
        };
        let e = plan(&Rootfs::host_readonly(), &opts).unwrap_err();
        assert!(matches!(e, Error::BindSource { .. }), "{e}");
        assert!(e.to_string().contains("/no/such/source"), "{e}");
    }

    #[test]
    fn zero_sized_tmpfs_is_refused() {
        let m = [Mount::tmpfs("/t").size(0)];
        let opts = PlanOptions {
            mounts: &m,
            ..pid()
        };
        let e = plan(&Rootfs::host_readonly(), &opts).unwrap_err();
        assert!(e.to_string().contains("0 bytes"), "{e}");
    }

    #[test]
    fn dirs_and_symlinks_are_not_created_on_the_host() {
        let m = [Mount::dir("/newdir")];
        let opts = PlanOptions {
            mounts: &m,
            ..pid()
        };
        let e = plan(&Rootfs::host(), &opts).unwrap_err();
        assert!(e.to_string().contains("created on the host"), "{e}");
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

    #[test]
    fn serde_form() {
        let r = Rootfs::dir("/srv/busybox");
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"dir","path":"/srv/busybox","writable":false}"#
        );
        assert_eq!(serde_json::from_str::<Rootfs>(&j).unwrap(), r);
        let h: Rootfs = serde_json::from_str(r#"{"kind":"host_readonly"}"#).unwrap();
        assert_eq!(h, Rootfs::HostReadonly);
        let o: Rootfs = serde_json::from_str(r#"{"kind":"overlay","lower":["/a","/b"]}"#).unwrap();
        assert_eq!(o, Rootfs::overlay(["/a", "/b"]));
        let m = Mount::tmpfs("/t").size(1024).mode(0o700);
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"tmpfs","target":"/t","size":1024,"mode":448}"#
        );
        assert_eq!(serde_json::from_str::<Mount>(&j).unwrap(), m);
    }
}
