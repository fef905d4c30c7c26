//! Root filesystems, mounts and images for sandboxes.
//!
//! A sandbox sees the filesystem its [`Rootfs`] and its extra [`Mount`]s describe, both plain
//! serde values. This crate checks that description ([`check_mounts`] checks the mounts on
//! their own) and turns it into a mount plan: an ordered list of steps whose strings are
//! already converted to C strings and whose paths are already checked. The plan is computed
//! in the parent, where allocating and failing with a good error ([`Error`]) are allowed; the
//! spawning code (in `sandbox-core`) replays it in the freshly cloned child, where neither is.
//!
//! Root filesystems:
//! - [`Rootfs::host()`]: the caller's own tree, through a private copy of its mount table,
//!   with a fresh `/proc` (the fastest; not a container root);
//! - [`Rootfs::host_readonly()`]: the host's `/usr`, `/bin`, `/sbin`, `/lib*` and `/etc`
//!   bound read-only into an otherwise empty root, with fresh `/tmp`, `/run`, `/home`,
//!   `/root`, `/dev`, `/proc` and `/sys`;
//! - [`Rootfs::dir(path)`](Rootfs::dir): an existing tree, read-only unless
//!   [`writable`](Rootfs::writable);
//! - [`Rootfs::overlay(lower…)`](Rootfs::overlay): copy-on-write over read-only trees, the
//!   writes landing on a per-sandbox tmpfs (or a kept directory);
//! - [`Rootfs::image(path)`](Rootfs::image): an OCI layout, or a tarball of one, of a
//!   `docker save` image or of a `docker export` root, imported once into a content-addressed
//!   cache ([`image`]) and used as an overlay lower.
//!
//! How the child builds a new root (every kind but `host`): it makes `/` recursively
//! private, mounts a small staging tmpfs and `pivot_root`s into it (the host's tree stays
//! reachable at `/oldroot` until the end), mounts the new root at `/newroot`, then places
//! every mount *by file descriptor*: each target is opened with `openat2(RESOLVE_IN_ROOT)`
//! relative to the new root, so a symlink in the tree (even one pointing at the host's
//! `/etc`) resolves inside it, and the mount is attached with `move_mount` onto that fd —
//! no string path into the new root is ever handed to `mount(2)`. Then it mounts a fresh
//! `proc` and `sysfs`, a private tmpfs `/dev` (only `null zero full random urandom tty`, a
//! new `devpts`, `/dev/shm`, the `fd stdin stdout stderr` links), masks `/proc` and `/sys`
//! paths as runc does, binds generated read-only `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf`, and `pivot_root`s into the new root, detaching the old one.
//!
//! What it does not do: run anything, or know how a sandbox is spawned; mount over paths
//! of the host (the child's mount namespace is private from its first step).
//!
//! ```
//! use sandbox_fs::{check_mounts, Error, Mount, Rootfs};
//! // A container image whose writes are kept between runs, and two extra mounts.
//! let root = Rootfs::image("debian.tar").upper_dir("/var/lib/box/writes");
//! assert!(root.is_new_root());
//! let mounts = [
//!     Mount::tmpfs("/scratch").size(16 << 20),
//!     Mount::file("/etc/motd", "hello\n").readonly(),
//! ];
//! // Checked before anything is spawned: a target stays inside the sandbox.
//! check_mounts(&mounts).unwrap();
//! let err = check_mounts(&[Mount::tmpfs("/a/../../etc")]).unwrap_err();
//! assert!(matches!(err, Error::BadTarget { .. }), "{err}");
//! ```
#![deny(missing_docs)]

pub mod image;
#[doc(hidden)]
pub mod kernel;
mod mountinfo;
#[doc(hidden)]
pub mod plan;

pub use mountinfo::mountinfo_path;
pub use plan::check_mounts;
/// What a new root's `/dev`, `/proc` and `/sys` hold and hide: the device nodes bound in,
/// the files and directories masked, the paths made read-only.
pub use plan::{DEVICES, MASKED_DIRS, MASKED_FILES, READONLY_PATHS};

use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

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
    /// A directory the plan must mount on does not exist in a read-only root.
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
    /// A mount target is not an absolute path inside the sandbox.
    #[error("mount target {target}: {reason}")]
    BadTarget {
        /// The target as given.
        target: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source of a bind mount cannot be used.
    #[error("bind source {path}: {source}")]
    BindSource {
        /// The source as given.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: std::io::Error,
    },
    /// An overlay was asked for without any lower layer.
    #[error("overlay: at least one lower directory is needed")]
    NoLowerLayer,
    /// The kept upper directory of an overlay could not be prepared.
    #[error("overlay upper directory {path}: {source}")]
    UpperDir {
        /// The directory.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: std::io::Error,
    },
    /// An idmapped copy of a lower layer could not be made.
    #[error("idmapped mount of {path}: {source}")]
    Idmap {
        /// The layer.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Importing an image failed.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// A mount option is out of range.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was checked.
        what: &'static str,
        /// Why it was refused.
        reason: String,
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
    /// The host's system directories bound read-only into an empty root.
    HostReadonly,
    /// An existing directory, entered with `pivot_root`.
    Dir {
        /// The directory that becomes `/`.
        path: PathBuf,
        /// Whether the sandbox may write to it (it is bound read-only otherwise).
        #[serde(default)]
        writable: bool,
    },
    /// Copy-on-write over read-only lower trees.
    Overlay {
        /// The lower trees, bottom first (the last one wins where they overlap).
        lower: Vec<PathBuf>,
        /// Where the writes go: `None` for a per-sandbox tmpfs, thrown away with the
        /// sandbox; a directory to keep them (its `upper` and `work` subdirectories).
        #[serde(default)]
        upper: Option<PathBuf>,
    },
    /// An image (an OCI layout, or a tarball of one, of a `docker save` image or of a
    /// `docker export` root) imported into a cache and used as the lower layer of an overlay.
    Image {
        /// The tarball or OCI layout directory.
        path: PathBuf,
        /// The cache directory ([`image::ImageCache::default_dir`] when `None`).
        #[serde(default)]
        cache: Option<PathBuf>,
        /// Where the writes go, as for [`Rootfs::Overlay`].
        #[serde(default)]
        upper: Option<PathBuf>,
    },
}

impl Rootfs {
    /// The caller's own tree, with a fresh `/proc` for the sandbox's PID namespace.
    pub fn host() -> Rootfs {
        Rootfs::Host
    }

    /// The host's `/usr`, `/bin`, `/sbin`, `/lib*` and `/etc` bound read-only into an empty,
    /// read-only root, with fresh writable tmpfs `/tmp`, `/run`, `/home`, `/root`, and a
    /// private `/dev`, `/proc` and `/sys`. Needs nothing downloaded.
    ///
    /// Under the default id maps the host's files show up as owned by `nobody` inside: the
    /// sandbox's root has no power over them.
    pub fn host_readonly() -> Rootfs {
        Rootfs::HostReadonly
    }

    /// An existing directory tree, entered with `pivot_root` and bound read-only.
    ///
    /// The generated `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` are bound over
    /// the tree's. A tree that lacks one of them (a busybox tree has no `/etc` at all) is
    /// built as an overlay with a layer of the sandbox's own that takes them and any
    /// missing mount point, then sealed read-only: writes still fail with `EROFS`, and
    /// nothing is written to the tree (see [`Rootfs::is_layered`]). Two limits of that
    /// layer: file systems mounted inside the tree are not seen through it (overlayfs does
    /// not cross mounts), and an entry the tree has, even a dangling link such as
    /// `resolv.conf -> ../run/systemd/…`, stays as it is. A tree on a file system that
    /// cannot be idmapped (for a root caller) stays a plain bind without the files.
    pub fn dir(path: impl Into<PathBuf>) -> Rootfs {
        Rootfs::Dir {
            path: path.into(),
            writable: false,
        }
    }

    /// Copy-on-write over `lower` (bottom first): the sandbox may write anywhere, the writes
    /// land on a tmpfs of its own, the lower trees are never changed and may be shared by
    /// any number of sandboxes at once.
    ///
    /// When the caller is the host's root and the sandbox's ids are remapped, the lower
    /// trees are mounted idmapped (host id 0 shows as the sandbox's 0), so the sandbox's
    /// root owns what the host's root owns in them, as in a container.
    pub fn overlay<I, P>(lower: I) -> Rootfs
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Rootfs::Overlay {
            lower: lower.into_iter().map(Into::into).collect(),
            upper: None,
        }
    }

    /// A container image: an OCI image layout directory, or a tarball (plain or gzip) of an
    /// OCI layout (`oci-archive`, Docker ≥ 25 `docker save`), of an older `docker save` image
    /// or of a root filesystem (`docker export`); see [`image`] for how they are told apart.
    /// It is imported into the cache on first use, then used as the lower layer of an overlay
    /// (no extraction on later spawns).
    pub fn image(path: impl Into<PathBuf>) -> Rootfs {
        Rootfs::Image {
            path: path.into(),
            cache: None,
            upper: None,
        }
    }

    /// Makes a [`Rootfs::dir`] writable (no effect on other kinds).
    pub fn writable(mut self) -> Rootfs {
        if let Rootfs::Dir { writable, .. } = &mut self {
            *writable = true;
        }
        self
    }

    /// Keeps the writes of an overlay or image in `dir` (its `upper` and `work`
    /// subdirectories, created when missing) instead of a throw-away tmpfs. No effect on
    /// other kinds.
    pub fn upper_dir(mut self, dir: impl Into<PathBuf>) -> Rootfs {
        match &mut self {
            Rootfs::Overlay { upper, .. } | Rootfs::Image { upper, .. } => {
                *upper = Some(dir.into())
            }
            _ => {}
        }
        self
    }

    /// The image cache directory of a [`Rootfs::image`] (no effect on other kinds).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Rootfs {
        if let Rootfs::Image { cache, .. } = &mut self {
            *cache = Some(dir.into());
        }
        self
    }

    /// Whether the sandbox gets a root of its own (entered with `pivot_root`).
    pub fn is_new_root(&self) -> bool {
        !matches!(self, Rootfs::Host)
    }
}

/// An extra mount inside the sandbox, placed after its root is built. Each is a plain
/// serde value; the builders below set the usual options. Binds, tmpfs and files are
/// `nosuid,nodev` as container runtimes mount them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Mount {
    /// The host's `source` (file or directory, with what is mounted below it) at `target`.
    Bind {
        /// A path on the host.
        source: PathBuf,
        /// An absolute path inside the sandbox.
        target: PathBuf,
        /// Refuse writes (`EROFS`).
        #[serde(default)]
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// An absolute path inside the sandbox.
        target: PathBuf,
        /// Its size limit in bytes (the kernel's default, half of RAM, when `None`).
        #[serde(default)]
        size: Option<u64>,
        /// Permission bits of its root (0755 when `None`).
        #[serde(default)]
        mode: Option<u32>,
    },
    /// A fresh `proc` for the sandbox's PID namespace.
    Proc {
        /// An absolute path inside the sandbox.
        target: PathBuf,
    },
    /// A fresh, read-only `sysfs` (needs the sandbox's own network namespace; the host's
    /// `/sys`, bound read-only, otherwise).
    Sysfs {
        /// An absolute path inside the sandbox.
        target: PathBuf,
    },
    /// A file with the given contents (a submission, a config).
    File {
        /// An absolute path inside the sandbox.
        target: PathBuf,
        /// What the file holds.
        contents: Vec<u8>,
        /// Permission bits (0644 when `None`).
        #[serde(default)]
        mode: Option<u32>,
        /// Refuse writes (`EROFS`).
        #[serde(default)]
        readonly: bool,
    },
    /// A symbolic link at `link` pointing at `points_to` (created in a writable place of
    /// the root).
    Symlink {
        /// An absolute path inside the sandbox.
        link: PathBuf,
        /// What the link points at (any text).
        points_to: PathBuf,
    },
    /// A directory (with its missing parents).
    Dir {
        /// An absolute path inside the sandbox.
        target: PathBuf,
        /// Permission bits (0755 when `None`).
        #[serde(default)]
        mode: Option<u32>,
    },
}

impl Mount {
    /// Binds the host's `source` at `target` (writable; see [`Mount::readonly`]).
    pub fn bind(source: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Mount {
        Mount::Bind {
            source: source.into(),
            target: target.into(),
            readonly: false,
        }
    }

    /// A fresh tmpfs at `target`.
    pub fn tmpfs(target: impl Into<PathBuf>) -> Mount {
        Mount::Tmpfs {
            target: target.into(),
            size: None,
            mode: None,
        }
    }

    /// A fresh `proc` at `target`.
    pub fn proc(target: impl Into<PathBuf>) -> Mount {
        Mount::Proc {
            target: target.into(),
        }
    }

    /// A read-only `sysfs` at `target`.
    pub fn sysfs(target: impl Into<PathBuf>) -> Mount {
        Mount::Sysfs {
            target: target.into(),
        }
    }

    /// A file holding `contents` at `target`.
    pub fn file(target: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Mount {
        Mount::File {
            target: target.into(),
            contents: contents.into(),
            mode: None,
            readonly: false,
        }
    }

    /// A symbolic link at `link` pointing at `points_to`.
    pub fn symlink(link: impl Into<PathBuf>, points_to: impl Into<PathBuf>) -> Mount {
        Mount::Symlink {
            link: link.into(),
            points_to: points_to.into(),
        }
    }

    /// A directory at `target`.
    pub fn dir(target: impl Into<PathBuf>) -> Mount {
        Mount::Dir {
            target: target.into(),
            mode: None,
        }
    }

    /// Makes a bind or file read-only (no effect on other kinds).
    pub fn readonly(mut self) -> Mount {
        match &mut self {
            Mount::Bind { readonly, .. } | Mount::File { readonly, .. } => *readonly = true,
            _ => {}
        }
        self
    }

    /// Sets the size limit of a tmpfs in bytes (no effect on other kinds).
    pub fn size(mut self, bytes: u64) -> Mount {
        if let Mount::Tmpfs { size, .. } = &mut self {
            *size = Some(bytes);
        }
        self
    }

    /// Sets the permission bits of a tmpfs root, file or directory (no effect on other
    /// kinds).
    pub fn mode(mut self, bits: u32) -> Mount {
        match &mut self {
            Mount::Tmpfs { mode, .. } | Mount::File { mode, .. } | Mount::Dir { mode, .. } => {
                *mode = Some(bits)
            }
            _ => {}
        }
        self
    }

    /// The path inside the sandbox this mount is about.
    pub fn target(&self) -> &Path {
        match self {
            Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Proc { target }
            | Mount::Sysfs { target }
            | Mount::File { target, .. }
            | Mount::Dir { target, .. } => target,
            Mount::Symlink { link, .. } => link,
        }
    }
}

/// Checks a target inside the sandbox: absolute, no `..`, not `/` itself. Returns its
/// components (normal names only).
pub(crate) fn check_target(target: &Path) -> Result<Vec<&std::ffi::OsStr>, Error> {
    let bad = |reason| Error::BadTarget {
        target: target.to_path_buf(),
        reason,
    };
    if !target.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    let mut out = Vec::new();
    for c in target.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return Err(bad("contains `..` (it could escape the root)")),
            Component::Prefix(_) => return Err(bad("not a Unix path")),
        }
    }
    if out.is_empty() {
        return Err(bad("is the root itself"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! A root and its mounts keep the serde form callers write in their configurations.

    use super::*;

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
