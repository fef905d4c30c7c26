//! Importing container images into a content-addressed cache.
//!
//! An [`ImageCache`] turns a container image into one extracted, flattened tree under
//! `<dir>/<format>/sha256/<hex>/rootfs`, once: a later import of the same image finds the tree
//! by its digest and returns it without extracting anything. The tree is meant to be used as a
//! read-only overlay lower layer. An image is one of:
//!
//! - an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`);
//! - a tar archive of one (plain or gzip), as `skopeo copy … oci-archive:…`,
//!   `podman save --format oci-archive` and, since Docker 25, `docker save` write: its blobs
//!   are read in place (a gzip-compressed archive is first decompressed into the cache's
//!   `tmp/`, once it is known to be an OCI layout or a `docker save` archive), never loaded
//!   into memory;
//! - a `docker save` archive of the older format (`manifest.json`, a config `<id>.json` and one
//!   `layer.tar` per layer; `podman save --format docker-archive` too): the layers named by
//!   `manifest.json` are applied in order, each checked against the config's `diff_ids`;
//! - any other tar archive (plain or gzip), taken as a root filesystem as `docker export`
//!   writes it.
//!
//! A tarball is an image archive, not a root filesystem, when every top-level name in it is
//! one an image archive uses (`oci-layout`, `index.json`, `manifest.json`, `repositories`,
//! `blobs/`, `<hex>/`, `<hex>.json`, `<hex>.tar`): no root filesystem is made of those alone,
//! while a root can legitimately be almost anything else (a scratch image holding one static
//! binary has no `/bin`), so nothing else is refused for its shape. A gzip-compressed tarball
//! is told by the same rule, applied to the same entries while it is decompressed on the fly:
//! the first entry that is not an image file makes it a root filesystem, and image files that
//! make neither an OCI layout nor a `docker save` archive are refused before anything is
//! written to the cache. An image archive that cannot be imported is refused with a typed
//! error; it is never extracted as a root. Its index (kept in memory) is bounded: at most
//! 100 000 entries, none named longer than `PATH_MAX`, 16 MiB of names in all.
//!
//! Extraction treats the archive as hostile. Entry names with a `..` component are refused;
//! the parent directory of every entry is opened beneath the tree's root without following any
//! symbolic link (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), and the entry itself
//! is created with `*at` calls that never follow one, so an archive cannot write outside the
//! tree through a link planted by an earlier entry. Relative symbolic links that climb above the
//! root, and hard links whose target has a `..` component, are refused too. Everything is
//! extracted into `<dir>/tmp/` and renamed into place only when complete; on any error the
//! partial tree is removed.
//!
//! Cache layout:
//!
//! - `<dir>/<format>/sha256/<hex>/rootfs`: the tree of the image of that [`ImageFormat`] whose
//!   digest is `sha256:<hex>`. Each format has a key space of its own, because one file can be
//!   two things at once (a JSON document can be both a valid OCI manifest and a valid Docker
//!   image config, naming different layers): `oci/` is keyed by the OCI manifest's digest (for
//!   a layout directory and an archive of one alike), `docker-config/` by a `docker save`
//!   archive's image config's digest (Docker's image ID), `tarball/` by the sha256 of a
//!   `docker export` tarball's bytes;
//! - `<dir>/refs/<key>`: the format and digest of a tarball (`oci sha256:<hex>`), keyed by its
//!   identity (canonical path, device, inode, size and modification time), so that an
//!   unchanged tarball is not read again;
//! - `<dir>/tmp/`: trees being extracted (and other work files). Each entry is created under a
//!   shared `flock` of `<dir>/tmp.lock` and holds an exclusive `flock` on itself for as long as
//!   its import runs. An import that finds an entry it can lock, while it holds `tmp.lock`
//!   exclusively, knows the entry's owner is gone (killed, crashed) and removes it: the kernel
//!   drops a dead process's locks, whatever PID namespace it was in. On a filesystem that
//!   cannot lock at all, entries are left unlocked and never swept; any other locking failure
//!   fails the import.
//!
//! Earlier versions kept every tree under `<dir>/sha256/<hex>`, whatever its format, and wrote
//! refs holding a bare digest. Those are not used (such a ref is taken as absent, and the image
//! is imported again into the new layout); `<dir>/sha256/` can be removed once no sandbox uses
//! a tree from it.
//!
//! ```no_run
//! use sandbox_fs::image::ImageCache;
//! use std::path::Path;
//!
//! let cache = ImageCache::new(ImageCache::default_dir());
//! let image = cache.import(Path::new("debian.tar"))?;
//! println!("{} is at {}", image.digest, image.root.display());
//! # Ok::<(), sandbox_fs::image::ImageError>(())
//! ```

mod archive;
mod cache;
mod digest;
mod docker;
mod error;
mod extract;
#[cfg(test)]
mod fixtures;
mod names;
mod oci;
mod source;
mod tarball;
mod tree;
mod whiteout;

pub use error::ImageError;

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use archive::{neither_layout_nor_save, ArchiveKind, Contents};
use cache::{identity, memo, ref_key};
use source::Source;

/// A content-addressed cache of extracted container images, kept in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCache {
    dir: PathBuf,
    /// The most bytes a gzip-compressed image archive may decompress to (tests only; otherwise
    /// what the cache's filesystem can take).
    unpack_limit: Option<u64>,
}

/// What an image is, and so what its digest is the digest of. Each format has its own key
/// space in the cache: the same digest in two formats names two different trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageFormat {
    /// An OCI image (a layout directory, or a tar archive of one), known by the digest of its
    /// manifest.
    Oci,
    /// A `docker save` archive of the format before OCI layouts, known by the digest of its
    /// image config (Docker's image ID).
    DockerSave,
    /// A root filesystem tarball (`docker export`), known by the digest of its bytes.
    RootTarball,
}

impl ImageFormat {
    const ALL: [ImageFormat; 3] = [
        ImageFormat::Oci,
        ImageFormat::DockerSave,
        ImageFormat::RootTarball,
    ];

    /// The cache's directory for trees of this format, and its name in refs.
    fn dir_name(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::DockerSave => "docker-config",
            ImageFormat::RootTarball => "tarball",
        }
    }
}

/// An image present in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// What the image is: what [`Imported::digest`] is the digest of.
    pub format: ImageFormat,
    /// The image's digest, `sha256:<hex>`: that of an OCI image's manifest, of a `docker save`
    /// image's config (its image ID), or of a `docker export` tarball's bytes. Only with
    /// [`Imported::format`] does it name one tree.
    pub digest: String,
    /// The extracted tree, usable as a read-only overlay lower layer.
    pub root: PathBuf,
    /// Whether this call extracted the tree (`false` when it was already in the cache, or when
    /// a concurrent import put it there first).
    pub extracted: bool,
}

impl ImageCache {
    /// A cache kept in `dir` (created when something is first imported).
    pub fn new(dir: impl Into<PathBuf>) -> ImageCache {
        ImageCache {
            dir: dir.into(),
            unpack_limit: None,
        }
    }

    /// This cache, letting a gzip-compressed image archive decompress to `limit` bytes.
    #[cfg(test)]
    fn with_unpack_limit(mut self, limit: u64) -> ImageCache {
        self.unpack_limit = Some(limit);
        self
    }

    /// The default cache directory: `/var/cache/sandbox/images` for root; otherwise
    /// `$XDG_CACHE_HOME/sandbox/images` (when that is an absolute path) or
    /// `$HOME/.cache/sandbox/images`.
    pub fn default_dir() -> PathBuf {
        default_dir_for(
            nix::unistd::geteuid(),
            std::env::var_os("XDG_CACHE_HOME"),
            std::env::var_os("HOME"),
        )
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Imports `path` into the cache, once: later calls for the same image return the cached
    /// tree without extracting it again. `path` is an OCI image layout directory, or a tar
    /// archive (plain or gzip-compressed) of an OCI image layout, of a `docker save` image or of
    /// a root filesystem (`docker export`); see the [module documentation](self) for how a
    /// tarball's kind is told.
    ///
    /// For an OCI layout holding several manifests, the one for `linux` on the host's
    /// architecture is used; its layers are applied in order, whiteouts included, into one
    /// tree. A `docker save` archive must hold one image. Ownership is taken from the archive
    /// only when running as root.
    ///
    /// A gzip-compressed image archive is decompressed into the cache's `tmp/` (and removed
    /// once imported); the copy may take all the space free on the cache's filesystem but a
    /// margin of a twentieth of the filesystem's size (at least 64 MiB), and the import fails
    /// with [`ImageError::TooLarge`] when it would take more.
    ///
    /// Work files that an import killed or crashed left in the cache's `tmp/` are removed
    /// first; those of imports still running (in any process) are left alone.
    pub fn import(&self, path: &Path) -> Result<Imported, ImageError> {
        if let Some(hit) = self.imported(path) {
            return Ok(hit);
        }
        self.sweep();
        // Taken before the import: an image replaced meanwhile is not remembered under the
        // old one's tree.
        let id = identity(path);
        let meta = fs::metadata(path).map_err(|source| ImageError::Missing {
            path: path.to_path_buf(),
            source,
        })?;
        let imported = if meta.is_dir() {
            self.import_oci(path)
        } else if meta.is_file() {
            self.import_tarball(path)
        } else {
            Err(ImageError::NotAnImage {
                path: path.to_path_buf(),
                reason: "neither a regular file nor a directory".into(),
            })
        }?;
        if let Some(id) = id.filter(|id| identity(path).as_ref() == Some(id)) {
            let key = (self.dir.clone(), path.to_path_buf());
            memo()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (id, imported.clone()));
        }
        Ok(imported)
    }

    /// The tree of an image this process already imported into this cache, when neither
    /// the image (its file, or an OCI layout's `index.json`) nor the tree changed since:
    /// two `stat`s, no hashing, no reading. `None` means [`ImageCache::import`] has work to
    /// do (maybe only a lookup in the cache's refs).
    pub fn imported(&self, path: &Path) -> Option<Imported> {
        let key = (self.dir.clone(), path.to_path_buf());
        let (id, hit) = memo()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()?;
        if identity(path)? != id || !hit.root.is_dir() {
            return None;
        }
        Some(Imported {
            extracted: false,
            ..hit
        })
    }

    fn import_tarball(&self, image: &Path) -> Result<Imported, ImageError> {
        let missing = |source| ImageError::Missing {
            path: image.to_path_buf(),
            source,
        };
        let canonical = fs::canonicalize(image).map_err(missing)?;
        let mut file = File::open(&canonical).map_err(missing)?;
        let stat = file.metadata().map_err(missing)?;
        let key = ref_key(&canonical, &stat);
        if let Some(hit) = self.lookup_ref(&key) {
            return Ok(hit);
        }
        let (archive, unpacked) = match self.classify(image, &file)? {
            Contents::Root => return self.import_root_tarball(image, &mut file, &key),
            Contents::Archive { archive, unpacked } => (archive, unpacked),
        };
        let source = Source::Archive(&archive);
        let imported = match archive.kind() {
            ArchiveKind::Oci => self.import_layout(image, &source)?,
            ArchiveKind::DockerSave => self.import_docker_save(image, &source)?,
            ArchiveKind::Unknown => return Err(neither_layout_nor_save(image)),
        };
        drop(unpacked);
        self.write_ref(&key, imported.format, &imported.digest);
        Ok(imported)
    }
}

/// [`ImageCache::default_dir`] for a caller of effective uid `euid` whose environment has
/// `xdg_cache_home` and `home`.
fn default_dir_for(
    euid: nix::unistd::Uid,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    if euid.is_root() {
        return PathBuf::from("/var/cache/sandbox/images");
    }
    if let Some(xdg) = xdg_cache_home {
        if Path::new(&xdg).is_absolute() {
            return PathBuf::from(xdg).join("sandbox/images");
        }
    }
    if let Some(home) = home.filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join(".cache/sandbox/images");
    }
    if let Ok(Some(user)) = nix::unistd::User::from_uid(euid) {
        return user.dir.join(".cache/sandbox/images");
    }
    std::env::temp_dir().join(format!("sandbox-{euid}/images"))
}

#[cfg(test)]
mod tests {
    //! What is not an image is refused with a typed error naming it, before anything is written;
    //! the default cache directory is the system's for root and the caller's own otherwise.

    use super::*;
    use crate::image::fixtures::*;

    #[test]
    fn non_images_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let missing = tmp.path().join("nope.tar");
        let err = cache.import(&missing).unwrap_err();
        assert!(
            matches!(&err, ImageError::Missing { path, .. } if *path == missing),
            "{err}"
        );
        let dir = tmp.path().join("dir");
        fs::create_dir(&dir).unwrap();
        let err = cache.import(&dir).unwrap_err();
        assert!(
            matches!(&err, ImageError::NotAnImage { path, .. } if *path == dir),
            "{err}"
        );
        assert!(err.to_string().contains("oci-layout"), "{err}");
        let err = cache.import(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(err, ImageError::NotAnImage { .. }), "{err}");
        assert_clean(cache.dir());

        let text = "this is not a tar archive\n".repeat(100);
        for bytes in [
            text.as_bytes(),
            b"",
            &[0; 1024],
            &gz(text.as_bytes()),
            &gz(b""),
            &[0x1f, 0x8b, 1, 2],
        ] {
            let err = import_fails(bytes);
            assert!(matches!(err, ImageError::NotAnImage { .. }), "{err}");
            assert!(err.to_string().contains("image.tar"), "{err}");
        }
    }

    #[test]
    fn default_dir_ends_in_sandbox_images() {
        let dir = ImageCache::default_dir();
        assert!(dir.ends_with("sandbox/images"), "{}", dir.display());
    }

    /// Root's images go to the system's cache whatever its environment; anyone else's to a
    /// cache directory of their own: `$XDG_CACHE_HOME` when absolute, `$HOME/.cache` when set,
    /// the home the password database gives, the temp directory last.
    #[test]
    fn default_dir_is_the_system_s_for_root_and_the_caller_s_otherwise() {
        use nix::unistd::{Uid, User};
        let os = |s: &str| Some(OsString::from(s));
        let (root, nobody) = (Uid::from_raw(0), Uid::from_raw(65534));
        // In no password database.
        let unknown = Uid::from_raw(3_999_999_999);
        let dir = default_dir_for;
        assert_eq!(
            dir(root, os("/xdg"), os("/home/me")),
            Path::new("/var/cache/sandbox/images")
        );
        assert_eq!(
            dir(nobody, os("/xdg"), os("/home/me")),
            Path::new("/xdg/sandbox/images")
        );
        assert_eq!(
            dir(nobody, os("xdg"), os("/home/me")),
            Path::new("/home/me/.cache/sandbox/images")
        );
        let from_passwd = User::from_uid(nobody).unwrap().map_or_else(
            || std::env::temp_dir().join("sandbox-65534/images"),
            |user| user.dir.join(".cache/sandbox/images"),
        );
        assert_eq!(dir(nobody, None, os("")), from_passwd);
        assert_eq!(dir(nobody, None, None), from_passwd);
        let temp = std::env::temp_dir().join("sandbox-3999999999/images");
        assert_eq!(dir(unknown, None, None), temp);
    }
}
