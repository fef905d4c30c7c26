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

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, DirBuilder, File};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The layer name used in errors about a `docker export` tarball.
const TARBALL: &str = "tarball";
/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The largest index or manifest blob read into memory.
const MAX_JSON: u64 = 16 << 20;
/// Layer media types that can be extracted (compression is detected from the bytes).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];
/// Media types of image indexes (manifest lists).
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// How many indexes deep a manifest may be nested.
const MAX_INDEX_DEPTH: usize = 4;
/// Flags for opening a directory of the tree.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

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

/// Why an image could not be imported. Each variant names the image, and where relevant the
/// entry or blob it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The image path does not exist or cannot be opened.
    #[error("image {}: {source}", path.display())]
    Missing {
        /// The image path.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: io::Error,
    },
    /// The path is neither a tar archive nor an OCI image layout, or is a tar archive of image
    /// files (`manifest.json`, `blobs/`…) that is neither an OCI layout nor a `docker save`
    /// archive.
    #[error("image {}: not an image: {reason}", path.display())]
    NotAnImage {
        /// The image path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The image's index, a manifest or a config is malformed or names no usable manifest: an
    /// OCI layout's `index.json` or blobs, a `docker save` archive's `manifest.json` or config.
    #[error("image {}: {}: {reason}", image.display(), file.display())]
    InvalidOci {
        /// The image (layout directory or archive).
        image: PathBuf,
        /// The file at fault (`index.json`, `manifest.json` or a blob; inside an archive, its
        /// path there).
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob named by the image (a `docker save` archive's layer or config) is not in it.
    #[error("image {}: blob {} is missing", image.display(), blob.display())]
    MissingBlob {
        /// The image (layout directory or archive).
        image: PathBuf,
        /// Where the blob should be (inside an archive: its path there).
        blob: PathBuf,
    },
    /// A blob's (or the tarball's) sha256 is not the expected one.
    #[error("image {}: {} has digest {actual}, expected {expected}", image.display(), blob.display())]
    DigestMismatch {
        /// The image.
        image: PathBuf,
        /// The blob (inside an archive: its path there), or the tarball itself.
        blob: PathBuf,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A layer's media type is not a plain or gzip-compressed tar (zstd, for instance).
    #[error("image {}: layer {layer} has unsupported media type {media_type:?}", image.display())]
    UnsupportedLayer {
        /// The image (layout directory or archive).
        image: PathBuf,
        /// The layer's digest.
        layer: String,
        /// Its media type.
        media_type: String,
    },
    /// An entry would be written, or would point, outside the image's tree.
    #[error("image {}: layer {layer}: entry {}: {reason}", image.display(), path.display())]
    UnsafePath {
        /// The image.
        image: PathBuf,
        /// The layer's digest (a `docker save` layer's diff ID), or `tarball`.
        layer: String,
        /// The entry's path as written in the archive.
        path: PathBuf,
        /// What is unsafe about it.
        reason: String,
    },
    /// An entry cannot be extracted: unsupported type, malformed header, missing hard link
    /// target…
    #[error("image {}: layer {layer}: entry {}: {reason}", image.display(), path.display())]
    BadEntry {
        /// The image.
        image: PathBuf,
        /// The layer's digest (a `docker save` layer's diff ID), or `tarball`.
        layer: String,
        /// The entry's path as written in the archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating an entry in the tree failed.
    #[error("image {}: layer {layer}: entry {}: {source}", image.display(), path.display())]
    Extract {
        /// The image.
        image: PathBuf,
        /// The layer's digest (a `docker save` layer's diff ID), or `tarball`.
        layer: String,
        /// The entry's path as written in the archive.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Reading the image failed (I/O error, corrupt gzip or tar stream).
    #[error("image {}: reading {}: {source}", image.display(), file.display())]
    Read {
        /// The image.
        image: PathBuf,
        /// The file being read (the tarball, `index.json` or a blob).
        file: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A gzip-compressed image archive decompresses to more than the cache can take: its
    /// decompressed copy would leave less free space on the cache's filesystem than a margin
    /// (see [`ImageCache::import`]).
    #[error(
        "image {}: decompressed, it is larger than the {limit} bytes image cache {} can take",
        path.display(),
        cache.display()
    )]
    TooLarge {
        /// The image.
        path: PathBuf,
        /// The cache directory.
        cache: PathBuf,
        /// How many bytes the decompressed copy could take.
        limit: u64,
    },
    /// The cache directory cannot be used.
    #[error("image cache {}: {source}", path.display())]
    Cache {
        /// The path in the cache.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
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
        let euid = nix::unistd::geteuid();
        if euid.is_root() {
            return PathBuf::from("/var/cache/sandbox/images");
        }
        if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
            if Path::new(&xdg).is_absolute() {
                return PathBuf::from(xdg).join("sandbox/images");
            }
        }
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home).join(".cache/sandbox/images");
        }
        if let Ok(Some(user)) = nix::unistd::User::from_uid(euid) {
            return user.dir.join(".cache/sandbox/images");
        }
        std::env::temp_dir().join(format!("sandbox-{euid}/images"))
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

    /// Whether a tarball is a root filesystem or an image archive; the latter indexed (and,
    /// when gzip-compressed, decompressed into the cache's `tmp/` first).
    ///
    /// Plain or gzip, the same scan decides, over the same entries: a gzip stream is scanned
    /// as it is decompressed, writing nothing, which stops at the first entry that makes it a
    /// root filesystem; only an OCI layout or a `docker save` archive is then decompressed
    /// into `tmp/` (a second time), within [`ImageCache::unpack_limit`].
    fn classify(&self, image: &Path, file: &File) -> Result<Contents, ImageError> {
        let read_error = read_error(image);
        let mut magic = [0; 2];
        let gzip = file.read_exact_at(&mut magic, 0).is_ok() && magic == GZIP_MAGIC;
        if !gzip {
            return Ok(match ArchiveIndex::scan(image, file)? {
                Some(archive) => Contents::Archive {
                    archive,
                    unpacked: None,
                },
                None => Contents::Root,
            });
        }
        let mut stream = tar::Archive::new(gunzip(file));
        match Members::scan(image, stream.entries(), None)? {
            None => return Ok(Contents::Root),
            Some(members) if members.kind() == ArchiveKind::Unknown => {
                return Err(neither_layout_nor_save(image))
            }
            Some(_) => {}
        }
        drop(stream);

        self.ensure_layout()?;
        let unpacked = self.new_tmp()?;
        let limit = self.unpack_limit(unpacked.path())?;
        let path = unpacked.path().join("archive.tar");
        let cache_error = |source| ImageError::Cache {
            path: path.clone(),
            source,
        };
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(cache_error)?;
        let mut gz = gunzip(file);
        let mut buf = vec![0; 256 << 10];
        let mut written = 0u64;
        loop {
            let n = match gz.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            written = written.saturating_add(n as u64);
            if written > limit {
                return Err(ImageError::TooLarge {
                    path: image.to_path_buf(),
                    cache: self.dir.clone(),
                    limit,
                });
            }
            out.write_all(&buf[..n]).map_err(cache_error)?;
        }
        drop(out);
        // Indexed again, in place: the file may have changed since it was scanned.
        let plain = File::open(&path).map_err(cache_error)?;
        Ok(match ArchiveIndex::scan(image, &plain)? {
            Some(archive) => Contents::Archive {
                archive,
                unpacked: Some(unpacked),
            },
            None => Contents::Root,
        })
    }

    /// How many bytes the decompressed copy of a gzip image archive may take in `tmp`, a
    /// directory of the cache: what is free on the cache's filesystem (for this user) less a
    /// margin, a twentieth of the filesystem's size but at least 64 MiB, left for the tree to
    /// be extracted and for everything else.
    fn unpack_limit(&self, tmp: &Path) -> Result<u64, ImageError> {
        if let Some(limit) = self.unpack_limit {
            return Ok(limit);
        }
        let fs = nix::sys::statvfs::statvfs(tmp).map_err(|e| ImageError::Cache {
            path: tmp.to_path_buf(),
            source: e.into(),
        })?;
        let frsize = wide(fs.fragment_size());
        let free = wide(fs.blocks_available()).saturating_mul(frsize);
        let size = wide(fs.blocks()).saturating_mul(frsize);
        let margin = (size / 20).max(64 << 20);
        Ok(free.saturating_sub(margin))
    }

    /// Imports a root filesystem tarball (`docker export`), keyed by the sha256 of its bytes.
    fn import_root_tarball(
        &self,
        image: &Path,
        file: &mut File,
        key: &str,
    ) -> Result<Imported, ImageError> {
        let read_error = read_error(image);
        file.rewind().map_err(read_error)?;
        let mut hasher = Sha256::new();
        io::copy(
            &mut HashingReader {
                inner: &*file,
                hasher: Some(&mut hasher),
            },
            &mut io::sink(),
        )
        .map_err(read_error)?;
        let hex = to_hex(&hasher.finalize());
        let digest = format!("sha256:{hex}");
        self.ensure_layout()?;
        if let Some(root) = self.cached(ImageFormat::RootTarball, &hex) {
            self.write_ref(key, ImageFormat::RootTarball, &digest);
            return Ok(Imported {
                format: ImageFormat::RootTarball,
                digest,
                root,
                extracted: false,
            });
        }

        file.rewind().map_err(read_error)?;
        let tmp = self.new_tmp()?;
        let mut tree = tmp.tree()?;
        let ctx = Ctx {
            image,
            layer: TARBALL,
            blob: image,
        };
        let (actual, _) = tree.apply_blob(&*file, &ctx, true, false)?;
        if actual != hex {
            // The file changed since it was hashed.
            return Err(ImageError::DigestMismatch {
                image: image.to_path_buf(),
                blob: image.to_path_buf(),
                expected: digest,
                actual: format!("sha256:{actual}"),
            });
        }
        tree.finish(&ctx)?;
        drop(tree);
        let (root, extracted) = self.publish(tmp, ImageFormat::RootTarball, &hex)?;
        self.write_ref(key, ImageFormat::RootTarball, &digest);
        Ok(Imported {
            format: ImageFormat::RootTarball,
            digest,
            root,
            extracted,
        })
    }

    fn import_oci(&self, image: &Path) -> Result<Imported, ImageError> {
        if !image.join("oci-layout").is_file() || !image.join("index.json").is_file() {
            return Err(ImageError::NotAnImage {
                path: image.to_path_buf(),
                reason: "a directory without `oci-layout` and `index.json`".into(),
            });
        }
        self.import_layout(image, &Source::Dir(image))
    }

    /// Imports an OCI image layout (a directory or an archive), keyed by its manifest's digest.
    fn import_layout(&self, image: &Path, src: &Source<'_>) -> Result<Imported, ImageError> {
        let index_path = src.display("index.json");
        let bytes = src.read_small(image, "index.json")?;
        let index: Index = parse_json(image, &index_path, &bytes)?;
        let (digest, manifest_path, bytes) = resolve(image, src, &index_path, &index.manifests, 0)?;
        let hex = digest["sha256:".len()..].to_string();
        if let Some(root) = self.cached(ImageFormat::Oci, &hex) {
            return Ok(Imported {
                format: ImageFormat::Oci,
                digest,
                root,
                extracted: false,
            });
        }

        // Check every layer before extracting any.
        let manifest: Manifest = parse_json(image, &manifest_path, &bytes)?;
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let layer_hex = check_digest(image, &manifest_path, &layer.digest)?;
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(ImageError::UnsupportedLayer {
                    image: image.to_path_buf(),
                    layer: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
            let rel = blob_rel(layer_hex);
            if !src.exists(&rel) {
                return Err(ImageError::MissingBlob {
                    image: image.to_path_buf(),
                    blob: src.display(&rel),
                });
            }
            layers.push((layer.digest.as_str(), layer_hex, rel));
        }

        self.extract(
            image,
            src,
            ImageFormat::Oci,
            digest,
            &layers,
            &manifest_path,
        )
    }

    /// Imports a `docker save` archive of the format before OCI layouts: `manifest.json` names
    /// the image's config and its layers in order. Keyed by the config's digest (Docker's image
    /// ID), which pins every layer through the config's `diff_ids`.
    fn import_docker_save(&self, image: &Path, src: &Source<'_>) -> Result<Imported, ImageError> {
        let manifest_path = src.display("manifest.json");
        let invalid = |file: &Path, reason: String| ImageError::InvalidOci {
            image: image.to_path_buf(),
            file: file.to_path_buf(),
            reason,
        };
        let bytes = src.read_small(image, "manifest.json")?;
        let images: Vec<SaveManifest> = parse_json(image, &manifest_path, &bytes)?;
        let entry = match images.as_slice() {
            [one] => one,
            [] => return Err(invalid(&manifest_path, "lists no image".into())),
            several => {
                let tags: Vec<&str> = several
                    .iter()
                    .flat_map(|i| i.repo_tags.iter().flatten())
                    .map(String::as_str)
                    .collect();
                return Err(invalid(
                    &manifest_path,
                    format!(
                        "lists {} images ({}); save one image per archive",
                        several.len(),
                        tags.join(", ")
                    ),
                ));
            }
        };
        let member = |name: &str| {
            normalise(name.as_bytes())
                .ok()
                .filter(|rel| !rel.is_empty())
                .and_then(|rel| String::from_utf8(rel).ok())
                .ok_or_else(|| {
                    invalid(
                        &manifest_path,
                        format!("names {name:?}, which is not a path inside the archive"),
                    )
                })
        };
        let config_rel = member(&entry.config)?;
        let config_path = src.display(&config_rel);
        let config_bytes = src.read_small(image, &config_rel)?;
        let hex = to_hex(&Sha256::digest(&config_bytes));
        let digest = format!("sha256:{hex}");
        // Docker names the config after its digest.
        let named = config_rel
            .strip_suffix(".json")
            .or_else(|| config_rel.strip_prefix("blobs/sha256/"))
            .filter(|h| is_hex64(h));
        if let Some(named) = named.filter(|named| *named != hex) {
            return Err(ImageError::DigestMismatch {
                image: image.to_path_buf(),
                blob: config_path,
                expected: format!("sha256:{named}"),
                actual: digest,
            });
        }
        let config: ImageConfig = parse_json(image, &config_path, &config_bytes)?;
        if let Some(root) = self.cached(ImageFormat::DockerSave, &hex) {
            return Ok(Imported {
                format: ImageFormat::DockerSave,
                digest,
                root,
                extracted: false,
            });
        }

        // Check every layer before extracting any.
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(invalid(
                &config_path,
                format!(
                    "lists {} layers (`rootfs.diff_ids`), manifest.json {}",
                    diff_ids.len(),
                    entry.layers.len()
                ),
            ));
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let diff_hex = check_digest(image, &config_path, diff_id)?;
            let rel = member(name)?;
            if !src.exists(&rel) {
                return Err(ImageError::MissingBlob {
                    image: image.to_path_buf(),
                    blob: src.display(&rel),
                });
            }
            layers.push((diff_id.as_str(), diff_hex, rel));
        }

        self.extract(
            image,
            src,
            ImageFormat::DockerSave,
            digest,
            &layers,
            &config_path,
        )
    }

    /// Applies `layers` (checked already: the digest they must have, its hex, the member)
    /// in order to a new tree, each checked against its digest — of the blob for an OCI
    /// image, of the uncompressed stream (its diff_id) for a `docker save` one — and
    /// publishes it as the image `digest` of `format`. `described_by`: the manifest or
    /// config that lists them (for errors).
    fn extract(
        &self,
        image: &Path,
        src: &Source<'_>,
        format: ImageFormat,
        digest: String,
        layers: &[(&str, &str, String)],
        described_by: &Path,
    ) -> Result<Imported, ImageError> {
        let diff_id = format == ImageFormat::DockerSave;
        self.ensure_layout()?;
        let tmp = self.new_tmp()?;
        let mut tree = tmp.tree()?;
        for (layer, layer_hex, rel) in layers {
            let blob = src.display(rel);
            let ctx = Ctx {
                image,
                layer,
                blob: &blob,
            };
            let (blob_hex, plain) = tree.apply_blob(src.open(image, rel)?, &ctx, false, diff_id)?;
            let actual = if diff_id {
                plain.unwrap_or_default()
            } else {
                blob_hex
            };
            if actual != *layer_hex {
                return Err(ImageError::DigestMismatch {
                    image: image.to_path_buf(),
                    blob,
                    expected: layer.to_string(),
                    actual: format!("sha256:{actual}"),
                });
            }
        }
        tree.finish(&Ctx {
            image,
            layer: &digest,
            blob: described_by,
        })?;
        drop(tree);
        let hex = digest["sha256:".len()..].to_string();
        let (root, extracted) = self.publish(tmp, format, &hex)?;
        Ok(Imported {
            format,
            digest,
            root,
            extracted,
        })
    }

    /// `<dir>/<format>/sha256/<hex>/rootfs`, if it is there.
    fn cached(&self, format: ImageFormat, hex: &str) -> Option<PathBuf> {
        let root = self.tree_dir(format, hex).join("rootfs");
        fs::symlink_metadata(&root)
            .ok()
            .filter(|m| m.is_dir())
            .map(|_| root)
    }

    /// `<dir>/<format>/sha256/<hex>`: where the tree of an image goes.
    fn tree_dir(&self, format: ImageFormat, hex: &str) -> PathBuf {
        self.dir.join(format.dir_name()).join("sha256").join(hex)
    }

    /// The cached tree a tarball's ref points to, if both are there. A ref without a format
    /// (written by an earlier version, when all formats shared one key space) is no ref.
    fn lookup_ref(&self, key: &str) -> Option<Imported> {
        let text = fs::read_to_string(self.dir.join("refs").join(key)).ok()?;
        let (name, digest) = text.trim().split_once(' ')?;
        let format = ImageFormat::ALL
            .into_iter()
            .find(|f| f.dir_name() == name)?;
        let hex = digest.strip_prefix("sha256:").filter(|h| is_hex64(h))?;
        let root = self.cached(format, hex)?;
        Some(Imported {
            format,
            digest: digest.to_string(),
            root,
            extracted: false,
        })
    }

    /// Remembers a tarball's format and digest; best effort (failing only costs a hash next
    /// time).
    fn write_ref(&self, key: &str, format: ImageFormat, digest: &str) {
        let create = |path: &Path| {
            File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        };
        let Ok((tmp, mut held)) = self.create_tmp("ref-", create) else {
            return;
        };
        let written = held
            .file()
            .write_all(format!("{} {digest}\n", format.dir_name()).as_bytes())
            .and_then(|()| fs::rename(&tmp, self.dir.join("refs").join(key)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    fn ensure_layout(&self) -> Result<(), ImageError> {
        let trees = ImageFormat::ALL.map(|f| Path::new(f.dir_name()).join("sha256"));
        let subs = [Path::new(""), Path::new("tmp"), Path::new("refs")];
        for sub in subs.into_iter().chain(trees.iter().map(PathBuf::as_path)) {
            let path = self.dir.join(sub);
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|source| ImageError::Cache { path, source })?;
        }
        Ok(())
    }

    /// Opens `<dir>/tmp.lock` and locks it as `arg` says (retrying when interrupted); `None`
    /// when the cache's filesystem cannot lock (see [`try_flock`]).
    fn lock_tmp(&self, arg: FlockArg) -> Result<Option<Flock<File>>, ImageError> {
        let path = self.dir.join("tmp.lock");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| ImageError::Cache {
                path: path.clone(),
                source,
            })?;
        match try_flock(file, arg, Flock::lock) {
            Ok(locked) => Ok(locked.ok()),
            Err(e) => Err(ImageError::Cache {
                path,
                source: e.into(),
            }),
        }
    }

    /// Creates an entry in `<dir>/tmp` with `make` and locks it exclusively, all while holding
    /// `tmp.lock` shared, so that a sweep (which holds it exclusively) never sees the entry
    /// before it is locked. If this process dies, the kernel drops the lock, and the next
    /// sweep removes the entry. Failing to take either lock fails, unless the filesystem
    /// cannot lock at all: an entry left unlocked for a passing reason could be swept while
    /// in use.
    fn create_tmp(
        &self,
        prefix: &str,
        make: impl Fn(&Path) -> io::Result<File>,
    ) -> Result<(PathBuf, Held), ImageError> {
        // Without `flock` (see `Held`), no sweep can lock `tmp.lock` either.
        let _creating = self.lock_tmp(FlockArg::LockShared)?;
        let mut attempts = 0;
        loop {
            let path = self
                .dir
                .join("tmp")
                .join(format!("{prefix}{}", unique_suffix()));
            match make(&path) {
                Ok(file) => {
                    let held = match try_flock(file, FlockArg::LockExclusiveNonblock, Flock::lock) {
                        Ok(Ok(lock)) => Held::Locked(lock),
                        Ok(Err(file)) => Held::Unlocked(file),
                        Err(e) => {
                            remove_path(&path);
                            return Err(ImageError::Cache {
                                path,
                                source: e.into(),
                            });
                        }
                    };
                    return Ok((path, held));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1;
                }
                Err(source) => {
                    if source.kind() != io::ErrorKind::AlreadyExists {
                        remove_path(&path);
                    }
                    return Err(ImageError::Cache { path, source });
                }
            }
        }
    }

    fn new_tmp(&self) -> Result<TmpDir, ImageError> {
        let (path, lock) = self.create_tmp("", |path| {
            DirBuilder::new().mode(0o700).create(path)?;
            let dir = nix::fcntl::open(path, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())?;
            Ok(File::from(dir))
        })?;
        Ok(TmpDir {
            path: Some(path),
            _lock: lock,
        })
    }

    /// Removes the entries of `<dir>/tmp` whose owner is gone: those nobody holds a lock on.
    /// Best effort, and skipped while another import creates an entry or sweeps.
    fn sweep(&self) {
        let tmp = self.dir.join("tmp");
        if !tmp.is_dir() {
            return;
        }
        let Ok(Some(_sweeping)) = self.lock_tmp(FlockArg::LockExclusiveNonblock) else {
            return;
        };
        let Ok(entries) = fs::read_dir(&tmp) else {
            return;
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(fd) = nix::fcntl::open(&path, flags, Mode::empty()) else {
                continue;
            };
            if let Ok(_orphan) = Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
                remove_path(&path);
            }
        }
    }

    /// Moves a complete tree into place; returns its root and whether it is ours.
    fn publish(
        &self,
        mut tmp: TmpDir,
        format: ImageFormat,
        hex: &str,
    ) -> Result<(PathBuf, bool), ImageError> {
        let path = tmp.path().to_path_buf();
        let dest = self.tree_dir(format, hex);
        let cache_error = |path: &Path, source| ImageError::Cache {
            path: path.to_path_buf(),
            source,
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|e| cache_error(&path, e))?;
        match fs::rename(&path, &dest) {
            Ok(()) => {
                tmp.path = None;
                Ok((dest.join("rootfs"), true))
            }
            Err(source) => {
                drop(tmp);
                // A concurrent import got there first: use its tree.
                match self.cached(format, hex) {
                    Some(root) => Ok((root, false)),
                    None => Err(cache_error(&dest, source)),
                }
            }
        }
    }
}

/// A directory under `<dir>/tmp`, locked for as long as it lives and removed (with everything
/// in it) when dropped, unless published.
struct TmpDir {
    path: Option<PathBuf>,
    /// An exclusive lock on the directory itself: what tells a sweep that it is in use.
    /// Released after the directory is removed (fields drop after `Drop::drop`).
    _lock: Held,
}

/// An entry of `<dir>/tmp`, open, and locked when the filesystem allows it. One that does
/// not (see [`try_flock`]) leaves the entry unlocked; sweeps cannot lock it either, so leave
/// it alone.
enum Held {
    Locked(Flock<File>),
    Unlocked(File),
}

impl Held {
    fn file(&mut self) -> &mut File {
        match self {
            Held::Locked(lock) => lock,
            Held::Unlocked(file) => file,
        }
    }
}

impl TmpDir {
    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Creates `rootfs` in the directory and opens it for extraction.
    fn tree(&self) -> Result<Tree, ImageError> {
        let path = self.path().join("rootfs");
        Tree::create(&path).map_err(|source| ImageError::Cache { path, source })
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_all(&path);
        }
    }
}

/// Locks `file` with `lock` (`Flock::lock`, but for tests) as `arg` says, retrying when
/// interrupted. `Ok(Err(file))` when the error says that the filesystem cannot lock at all, as
/// no sweep can lock there either; `Err` for any other failure (`ENOMEM`, `EWOULDBLOCK`…):
/// taking it for "cannot lock" could let a sweep remove an entry still in use.
///
/// What says "cannot lock": `EOPNOTSUPP` (a filesystem without locks), `ENOLCK` (locking over
/// NFS failing: no lock manager), `EINVAL` (the filesystem refuses the operation; ours are
/// valid) and `EBADF` (a valid descriptor, so NFS again, which emulates `flock` with POSIX
/// locks and cannot take an exclusive one on a directory opened read-only). Out of memory for
/// lock records is `ENOMEM` on Linux, whatever `flock(2)` says about `ENOLCK`.
fn try_flock(
    mut file: File,
    arg: FlockArg,
    lock: impl Fn(File, FlockArg) -> Result<Flock<File>, (File, Errno)>,
) -> Result<Result<Flock<File>, File>, Errno> {
    loop {
        match lock(file, arg) {
            Ok(lock) => return Ok(Ok(lock)),
            Err((again, Errno::EINTR)) => file = again,
            Err((file, Errno::EOPNOTSUPP | Errno::ENOLCK | Errno::EINVAL | Errno::EBADF)) => {
                return Ok(Err(file))
            }
            Err((_, e)) => return Err(e),
        }
    }
}

/// Removes a file, or a directory with everything in it.
fn remove_path(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => remove_all(path),
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Removes a tree, making its directories writable first if need be (an image may hold
/// read-only directories, which an unprivileged user cannot empty).
fn remove_all(path: &Path) {
    if fs::remove_dir_all(path).is_ok() {
        return;
    }
    fn make_writable(path: &Path) {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return;
        };
        if !meta.is_dir() {
            return;
        }
        if meta.permissions().mode() & 0o700 != 0o700 {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        }
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
    make_writable(path);
    let _ = fs::remove_dir_all(path);
}

/// A name that no other import, in this process or another, is using.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The key of a tarball's ref: a hash of what identifies the file's current contents.
fn ref_key(canonical: &Path, stat: &fs::Metadata) -> String {
    let mtime_ns = i128::from(stat.mtime()) * 1_000_000_000 + i128::from(stat.mtime_nsec());
    let mut h = Sha256::new();
    h.update(b"sandbox-image-ref-v1\0");
    h.update(canonical.as_os_str().as_bytes());
    h.update([0]);
    h.update(stat.dev().to_le_bytes());
    h.update(stat.ino().to_le_bytes());
    h.update(stat.size().to_le_bytes());
    h.update(mtime_ns.to_le_bytes());
    to_hex(&h.finalize())
}

/// A count as a `u64` (the types of `statvfs`'s fields vary with the platform).
fn wide(n: impl TryInto<u64>) -> u64 {
    n.try_into().unwrap_or(u64::MAX)
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A reader that hashes what it reads.
struct HashingReader<'a, R> {
    inner: R,
    /// `None`: pass the bytes through unhashed.
    hasher: Option<&'a mut Sha256>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Image archives: tarballs of an OCI image layout, or written by `docker save`.

/// The most entries an image archive may have (its index is kept in memory).
const MAX_MEMBERS: usize = 100_000;
/// The longest name (or link target) an image archive's entry may have: `PATH_MAX`.
const MAX_NAME: usize = libc::PATH_MAX as usize;
/// The most bytes the names (and link targets) of an image archive's entries may take.
const MAX_NAME_BYTES: usize = 16 << 20;

/// What a tarball holds.
enum Contents {
    /// A root filesystem, as `docker export` writes it: anything that is not an image archive.
    Root,
    /// An image archive.
    Archive {
        /// Its members (and so its kind).
        archive: ArchiveIndex,
        /// The decompressed copy `archive` reads, for a gzip-compressed archive.
        unpacked: Option<TmpDir>,
    },
}

/// The kinds of image archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    Oci,
    /// A `docker save` archive of the older format (`manifest.json`).
    DockerSave,
    /// Image files, but neither of those.
    Unknown,
}

/// Whether an entry's (normalised) path belongs in an image archive: its first component is
/// one an OCI layout or a `docker save` archive has at its top.
fn is_archive_name(rel: &[u8]) -> bool {
    let top = rel.split(|&b| b == b'/').next().unwrap_or_default();
    let hex = |name: &[u8]| std::str::from_utf8(name).is_ok_and(is_hex64);
    matches!(
        top,
        b"oci-layout" | b"index.json" | b"manifest.json" | b"repositories" | b"blobs"
    ) || hex(top)
        || top.strip_suffix(b".json").is_some_and(hex)
        || top.strip_suffix(b".tar").is_some_and(hex)
}

/// The refusal of an image archive that is neither an OCI layout nor a `docker save` archive.
fn neither_layout_nor_save(image: &Path) -> ImageError {
    ImageError::NotAnImage {
        path: image.to_path_buf(),
        reason: "a tar archive of image files (`manifest.json`, `index.json`, `blobs/`…) that is \
                 neither an OCI image layout (no `oci-layout` and `index.json`) nor a \
                 `docker save` archive (no `manifest.json`)"
            .into(),
    }
}

/// The decompressed bytes of a gzip-compressed file (all its members).
fn gunzip(file: &File) -> flate2::bufread::MultiGzDecoder<BufReader<Region<'_>>> {
    flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(
        256 << 10,
        Region::new(file, 0, u64::MAX),
    ))
}

/// An entry of an image archive.
enum Member {
    /// A regular file: where its bytes are in the archive.
    File { offset: u64, size: u64 },
    /// A hard link (to a normalised path) or a symbolic link (relative to the entry's
    /// directory). `docker save` links identical layers to one another.
    Link { target: Vec<u8>, hard: bool },
    /// Anything else (a directory…).
    Other,
}

/// The entries of an image archive, by normalised path.
struct Members(std::collections::HashMap<Vec<u8>, Member>);

impl Members {
    /// Lists the entries of a tar stream when it is an image archive: every top-level name in
    /// it is one an image archive uses. `None` when it is not (a root filesystem), or not a
    /// tar archive at all (which extracting it as a root filesystem reports); stops at the
    /// first entry that says so. The one rule for plain and gzip-compressed tarballs alike.
    ///
    /// `len` is the length of a file whose entries' contents are seeked over: seeking past its
    /// end is no error, so an entry that ends beyond it is the error reading the stream (a
    /// gzip-compressed one) would meet.
    fn scan<R: Read>(
        image: &Path,
        entries: io::Result<tar::Entries<'_, R>>,
        len: Option<u64>,
    ) -> Result<Option<Members>, ImageError> {
        use tar::EntryType as T;
        let read_error = read_error(image);
        let refuse = |reason: String| ImageError::NotAnImage {
            path: image.to_path_buf(),
            reason,
        };
        let Ok(entries) = entries else {
            return Ok(None);
        };
        let mut members = std::collections::HashMap::new();
        let mut name_bytes = 0;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                // Once it is known to be an image archive, it is not extracted as a root.
                Err(e) if !members.is_empty() => return Err(read_error(e)),
                Err(_) => return Ok(None),
            };
            let kind = entry.header().entry_type();
            let end = entry
                .raw_file_position()
                .checked_add(entry.size())
                .and_then(|end| end.checked_next_multiple_of(512));
            let truncated = match (len, end) {
                (Some(len), Some(end)) => end > len,
                (_, None) => true,
                (None, Some(_)) => false,
            };
            if !matches!(kind, T::XGlobalHeader | T::XHeader) {
                let raw = entry.path_bytes();
                let rel = match normalise(&raw) {
                    Ok(rel) if rel.is_empty() => None,
                    Ok(rel) if is_archive_name(&rel) => Some(rel),
                    // A root filesystem (which may well hold `blobs/` or `manifest.json`), or
                    // an unsafe name that extracting it as one refuses.
                    _ => return Ok(None),
                };
                if let Some(rel) = rel {
                    if members.len() >= MAX_MEMBERS {
                        return Err(refuse(format!(
                            "an image archive with more than {MAX_MEMBERS} entries"
                        )));
                    }
                    let link = entry.link_name_bytes().map(|t| t.into_owned());
                    let longest = raw.len().max(link.as_ref().map_or(0, Vec::len));
                    if longest > MAX_NAME {
                        let mut shown = String::from_utf8_lossy(&raw[..64.min(raw.len())]);
                        shown.to_mut().push('…');
                        return Err(refuse(format!(
                            "an image archive whose entry {shown:?} has a name or link \
                             target longer than {MAX_NAME} bytes"
                        )));
                    }
                    name_bytes += rel.len() + link.as_ref().map_or(0, Vec::len);
                    if name_bytes > MAX_NAME_BYTES {
                        return Err(refuse(format!(
                            "an image archive whose entry names take more than \
                             {MAX_NAME_BYTES} bytes"
                        )));
                    }
                    let member = match (kind, link) {
                        (T::Regular | T::Continuous, _) => Member::File {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                        (T::Symlink, Some(target)) => Member::Link {
                            target,
                            hard: false,
                        },
                        (T::Link, Some(target)) => match normalise(&target) {
                            Ok(target) => Member::Link { target, hard: true },
                            Err(_) => Member::Other,
                        },
                        _ => Member::Other,
                    };
                    members.insert(rel, member);
                }
            }
            if truncated {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "truncated tar archive");
                return if members.is_empty() {
                    Ok(None)
                } else {
                    Err(read_error(eof))
                };
            }
        }
        if members.is_empty() {
            // No entries (or only `./`): extracting it reports what it is.
            return Ok(None);
        }
        Ok(Some(Members(members)))
    }

    fn kind(&self) -> ArchiveKind {
        if self.find(b"oci-layout").is_some() && self.find(b"index.json").is_some() {
            ArchiveKind::Oci
        } else if self.find(b"manifest.json").is_some() {
            ArchiveKind::DockerSave
        } else {
            ArchiveKind::Unknown
        }
    }

    /// Where the bytes of regular file `rel` are (following links, within the archive).
    fn find(&self, rel: &[u8]) -> Option<(u64, u64)> {
        let mut name = rel.to_vec();
        for _ in 0..16 {
            name = match self.0.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link { target, hard: true } => target.clone(),
                Member::Link {
                    target,
                    hard: false,
                } => resolve_link(split(&name).0, target)?,
                Member::Other => return None,
            };
        }
        None
    }
}

/// The entries of a plain (uncompressed) image archive, read in place.
struct ArchiveIndex {
    file: File,
    members: Members,
}

impl ArchiveIndex {
    /// Lists `file` when it is an image archive (see [`Members::scan`]), seeking over the
    /// entries' contents.
    fn scan(image: &Path, file: &File) -> Result<Option<ArchiveIndex>, ImageError> {
        let read_error = read_error(image);
        let mut file = file.try_clone().map_err(read_error)?;
        file.rewind().map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        let members = Members::scan(
            image,
            tar::Archive::new(&file).entries_with_seek(),
            Some(len),
        )?;
        Ok(members.map(|members| ArchiveIndex { file, members }))
    }

    fn kind(&self) -> ArchiveKind {
        self.members.kind()
    }

    fn find(&self, rel: &[u8]) -> Option<(u64, u64)> {
        self.members.find(rel)
    }
}

/// The error of a failed read of the image file itself.
fn read_error(image: &Path) -> impl Fn(io::Error) -> ImageError + Copy + '_ {
    move |source| ImageError::Read {
        image: image.to_path_buf(),
        file: image.to_path_buf(),
        source,
    }
}

/// Resolves symbolic link `target`, found in directory `dir` of an archive, lexically; `None`
/// when it is absolute or climbs above the archive's top.
fn resolve_link(dir: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    if target.starts_with(b"/") {
        return None;
    }
    let mut parts: Vec<&[u8]> = dir
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join(&b'/'))
}

/// A part of a file, read with `pread` (so that several can be read from one file).
struct Region<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> Region<'a> {
    fn new(file: &'a File, offset: u64, len: u64) -> Region<'a> {
        Region {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let len = buf.len().min(left);
        if len == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..len], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A blob being read: a file of a layout directory, or a part of an archive.
enum Blob<'a> {
    File(File),
    Region(Region<'a>),
}

impl Read for Blob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Blob::File(file) => file.read(buf),
            Blob::Region(region) => region.read(buf),
        }
    }
}

/// Where an image's files (`index.json`, blobs…) are read from; they are named by their path
/// relative to the layout (`blobs/sha256/<hex>`), which has been checked.
enum Source<'a> {
    /// An OCI image layout directory.
    Dir(&'a Path),
    /// An image archive.
    Archive(&'a ArchiveIndex),
}

impl Source<'_> {
    /// How errors name file `rel`: its path in a directory, or inside the archive.
    fn display(&self, rel: &str) -> PathBuf {
        match self {
            Source::Dir(dir) => dir.join(rel),
            Source::Archive(_) => PathBuf::from(rel),
        }
    }

    fn exists(&self, rel: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(rel).is_file(),
            Source::Archive(archive) => archive.find(rel.as_bytes()).is_some(),
        }
    }

    fn open(&self, image: &Path, rel: &str) -> Result<Blob<'_>, ImageError> {
        match self {
            Source::Dir(dir) => open_blob(image, &dir.join(rel)).map(Blob::File),
            Source::Archive(archive) => match archive.find(rel.as_bytes()) {
                Some((offset, size)) => Ok(Blob::Region(Region::new(&archive.file, offset, size))),
                None => Err(ImageError::MissingBlob {
                    image: image.to_path_buf(),
                    blob: self.display(rel),
                }),
            },
        }
    }

    /// Reads `index.json`, a manifest or a config, refusing absurd sizes.
    fn read_small(&self, image: &Path, rel: &str) -> Result<Vec<u8>, ImageError> {
        let file = self.display(rel);
        let mut bytes = Vec::new();
        self.open(image, rel)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ImageError::Read {
                image: image.to_path_buf(),
                file: file.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(ImageError::InvalidOci {
                image: image.to_path_buf(),
                file,
                reason: format!("larger than {MAX_JSON} bytes"),
            });
        }
        Ok(bytes)
    }
}

/// An image of a `docker save` archive's `manifest.json` (the fields used here).
#[derive(Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// An image config (the fields used here).
#[derive(Deserialize)]
struct ImageConfig {
    rootfs: ConfigRootfs,
}

#[derive(Deserialize)]
struct ConfigRootfs {
    diff_ids: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// OCI image layouts.

/// An OCI content descriptor (the fields used here).
#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    layers: Vec<Descriptor>,
}

/// The host's architecture as OCI platforms spell it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Follows the descriptors of an index down to one image manifest: the only one, or the one
/// for linux on this architecture. Returns its digest, blob path (as errors name it) and
/// (verified) bytes.
fn resolve(
    image: &Path,
    src: &Source<'_>,
    referrer: &Path,
    descriptors: &[Descriptor],
    depth: usize,
) -> Result<(String, PathBuf, Vec<u8>), ImageError> {
    let invalid = |reason: String| ImageError::InvalidOci {
        image: image.to_path_buf(),
        file: referrer.to_path_buf(),
        reason,
    };
    let chosen = match descriptors {
        [] => return Err(invalid("lists no manifests".into())),
        [only] => only,
        several => several
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
            })
            .or_else(|| {
                // Several names for one manifest (tags) are fine.
                let first = &several[0];
                several
                    .iter()
                    .all(|d| d.digest == first.digest)
                    .then_some(first)
            })
            .ok_or_else(|| invalid(format!("lists no manifest for linux/{}", host_arch())))?,
    };
    let hex = check_digest(image, referrer, &chosen.digest)?;
    let rel = blob_rel(hex);
    let path = src.display(&rel);
    let bytes = src.read_small(image, &rel)?;
    let actual = to_hex(&Sha256::digest(&bytes));
    if actual != hex {
        return Err(ImageError::DigestMismatch {
            image: image.to_path_buf(),
            blob: path,
            expected: chosen.digest.clone(),
            actual: format!("sha256:{actual}"),
        });
    }
    let value: serde_json::Value = parse_json(image, &path, &bytes)?;
    let nested = INDEX_TYPES.contains(&chosen.media_type.as_str())
        || (value.get("manifests").is_some() && value.get("layers").is_none());
    if !nested {
        return Ok((chosen.digest.clone(), path, bytes));
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(ImageError::InvalidOci {
            image: image.to_path_buf(),
            file: path,
            reason: "indexes nested too deeply".into(),
        });
    }
    let index: Index = parse_json(image, &path, &bytes)?;
    resolve(image, src, &path, &index.manifests, depth + 1)
}

/// The hex part of a `sha256:<hex>` digest found in `file`.
fn check_digest<'d>(image: &Path, file: &Path, digest: &'d str) -> Result<&'d str, ImageError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_hex64(hex))
        .ok_or_else(|| ImageError::InvalidOci {
            image: image.to_path_buf(),
            file: file.to_path_buf(),
            reason: format!("unsupported or malformed digest {digest:?}"),
        })
}

/// Where blob `sha256:<hex>` is, relative to the layout.
fn blob_rel(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

fn open_blob(image: &Path, blob: &Path) -> Result<File, ImageError> {
    File::open(blob).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ImageError::MissingBlob {
                image: image.to_path_buf(),
                blob: blob.to_path_buf(),
            }
        } else {
            ImageError::Read {
                image: image.to_path_buf(),
                file: blob.to_path_buf(),
                source,
            }
        }
    })
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    image: &Path,
    file: &Path,
    bytes: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidOci {
        image: image.to_path_buf(),
        file: file.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

// ---------------------------------------------------------------------------------------------
// Extraction.

/// What errors about the layer being extracted should name.
struct Ctx<'a> {
    image: &'a Path,
    layer: &'a str,
    blob: &'a Path,
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

impl Ctx<'_> {
    fn unsafe_path(&self, path: &[u8], reason: impl Into<String>) -> ImageError {
        ImageError::UnsafePath {
            image: self.image.to_path_buf(),
            layer: self.layer.to_string(),
            path: bytes_path(path),
            reason: reason.into(),
        }
    }

    fn bad(&self, path: &[u8], reason: impl Into<String>) -> ImageError {
        ImageError::BadEntry {
            image: self.image.to_path_buf(),
            layer: self.layer.to_string(),
            path: bytes_path(path),
            reason: reason.into(),
        }
    }

    fn io(&self, path: &[u8], source: io::Error) -> ImageError {
        ImageError::Extract {
            image: self.image.to_path_buf(),
            layer: self.layer.to_string(),
            path: bytes_path(path),
            source,
        }
    }

    /// A failed system call on behalf of entry `path`: resolution errors caused by a symbolic
    /// link (`ELOOP`) or by leaving the tree (`EXDEV`) make the entry unsafe.
    fn errno(&self, path: &[u8], e: Errno) -> ImageError {
        match e {
            Errno::ELOOP | Errno::EXDEV => self.unsafe_path(path, "goes through a symbolic link"),
            e => self.io(path, e.into()),
        }
    }

    fn read(&self, source: io::Error) -> ImageError {
        ImageError::Read {
            image: self.image.to_path_buf(),
            file: self.blob.to_path_buf(),
            source,
        }
    }
}

/// An entry's path relative to the tree's root: `/`-separated, without empty, `.` or `..`
/// components (empty for the root itself).
fn normalise(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.contains(&0) {
        return Err("has a NUL byte");
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("has a `..` component"),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(out)
}

/// Splits a normalised path into its parent and last component.
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = parent.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// Records that the current layer holds `rel` and, implicitly, its ancestors.
fn mark(created: &mut HashSet<Vec<u8>>, rel: &[u8]) {
    let mut path = rel;
    while !path.is_empty() && created.insert(path.to_vec()) {
        path = split(path).0;
    }
}

/// Whether a relative symbolic link target, resolved lexically from directory `dir`, climbs
/// above the root.
fn climbs_out(dir: &[u8], target: &[u8]) -> bool {
    let mut depth = dir.split(|&b| b == b'/').filter(|c| !c.is_empty()).count();
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if depth == 0 => return true,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
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

fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

fn is_symlink(dir: &OwnedFd, name: &[u8]) -> bool {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
}

/// The names in a directory, except `.` and `..`.
fn list_dir(dir: &OwnedFd) -> Result<Vec<Vec<u8>>, Errno> {
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
fn remove_tree_at(dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
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

/// An entry's metadata, from its tar header.
#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    mtime: i64,
    uid: u32,
    gid: u32,
}

impl Meta {
    fn from_header(header: &tar::Header) -> io::Result<Meta> {
        let id = |v: u64| {
            u32::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "id too large"))
        };
        Ok(Meta {
            mode: header.mode()? & 0o7777,
            mtime: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
            uid: id(header.uid()?)?,
            gid: id(header.gid()?)?,
        })
    }

    fn mode(&self) -> Mode {
        Mode::from_bits_truncate(self.mode)
    }

    fn time(&self) -> TimeSpec {
        TimeSpec::new(self.mtime, 0)
    }

    fn dir(&self) -> DirMeta {
        DirMeta {
            mode: self.mode,
            mtime: Some(self.mtime),
            owner: Some((self.uid, self.gid)),
        }
    }
}

/// What a directory gets once every layer has been extracted (directories stay `0700` until
/// then, so that they can be filled whatever their final mode, and their times are set last).
#[derive(Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: Option<i64>,
    owner: Option<(u32, u32)>,
}

/// A directory the archive does not describe (the root, or a missing parent).
const IMPLICIT_DIR: DirMeta = DirMeta {
    mode: 0o755,
    mtime: None,
    owner: None,
};

/// A tree being extracted.
struct Tree {
    root: OwnedFd,
    as_root: bool,
    dirs: BTreeMap<Vec<u8>, DirMeta>,
    buf: Vec<u8>,
}

impl Tree {
    fn create(path: &Path) -> io::Result<Tree> {
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
    fn open_dir(&self, rel: &[u8]) -> Result<OwnedFd, Errno> {
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
    fn ensure_dir(&mut self, rel: &[u8]) -> Result<OwnedFd, Errno> {
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
    fn forget(&mut self, rel: &[u8]) {
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
    fn clear(
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

    /// Extracts a layer (or a tarball) read from `src`, plain or gzip; returns the hex sha256
    /// of all of `src`'s bytes and, when `diff_id`, that of the uncompressed tar stream (a
    /// layer's diff ID, which counts everything up to the stream's end).
    fn apply_blob<R: Read>(
        &mut self,
        mut src: R,
        ctx: &Ctx<'_>,
        tarball: bool,
        diff_id: bool,
    ) -> Result<(String, Option<String>), ImageError> {
        let mut hasher = Sha256::new();
        // The uncompressed stream is hashed only when its digest (a diff_id) is asked for.
        let mut plain = diff_id.then(Sha256::new);
        {
            let mut reader = BufReader::with_capacity(
                256 << 10,
                HashingReader {
                    inner: &mut src,
                    hasher: Some(&mut hasher),
                },
            );
            let gzip = reader
                .fill_buf()
                .map_err(|e| ctx.read(e))?
                .starts_with(&GZIP_MAGIC);
            let stream: Box<dyn Read + '_> = if gzip {
                Box::new(flate2::bufread::MultiGzDecoder::new(reader))
            } else {
                Box::new(reader)
            };
            let mut archive = tar::Archive::new(HashingReader {
                inner: stream,
                hasher: plain.as_mut(),
            });
            self.apply(&mut archive, ctx, tarball)?;
            if diff_id {
                io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| ctx.read(e))?;
            }
        }
        // Hash what follows the end of the archive too.
        io::copy(
            &mut HashingReader {
                inner: &mut src,
                hasher: Some(&mut hasher),
            },
            &mut io::sink(),
        )
        .map_err(|e| ctx.read(e))?;
        Ok((
            to_hex(&hasher.finalize()),
            plain.map(|p| to_hex(&p.finalize())),
        ))
    }

    fn apply<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        ctx: &Ctx<'_>,
        tarball: bool,
    ) -> Result<(), ImageError> {
        let not_a_tar = |reason: String| ImageError::NotAnImage {
            path: ctx.image.to_path_buf(),
            reason,
        };
        // Paths the current layer holds, which its opaque markers must spare.
        let mut created = HashSet::new();
        let mut seen = false;
        let entries = archive.entries().map_err(|e| ctx.read(e))?;
        for entry in entries {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(_) if tarball && !seen => {
                    // (The tar reader's message quotes the file's bytes: not worth showing.)
                    return Err(not_a_tar(
                        "not a tar archive (a `docker export` tarball, plain or gzip) nor an \
                         OCI image layout directory"
                            .to_string(),
                    ));
                }
                Err(e) => return Err(ctx.read(e)),
            };
            seen = true;
            self.entry(&mut entry, ctx, &mut created)?;
        }
        if tarball && !seen {
            return Err(not_a_tar("the archive has no entries".into()));
        }
        Ok(())
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        ctx: &Ctx<'_>,
        created: &mut HashSet<Vec<u8>>,
    ) -> Result<(), ImageError> {
        use tar::EntryType as T;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink
        ) {
            return Ok(());
        }
        let rel =
            normalise(&raw).map_err(|why| ctx.unsafe_path(&raw, format!("the path {why}")))?;
        let (parent, name) = split(&rel);
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            mark(created, parent);
            return self.whiteout(parent, hidden, &raw, ctx, created);
        }
        if matches!(kind, T::Char | T::Block) {
            // The sandbox gets its own /dev.
            return Ok(());
        }
        let meta = Meta::from_header(entry.header())
            .map_err(|e| ctx.bad(&raw, format!("malformed header: {e}")))?;
        if rel.is_empty() {
            if kind != T::Directory {
                return Err(ctx.bad(&raw, "the root of the image can only be a directory"));
            }
            self.dirs.insert(Vec::new(), meta.dir());
            return Ok(());
        }
        mark(created, &rel);
        let fail = |e: Errno| ctx.errno(&raw, e);
        let dir = self.ensure_dir(parent).map_err(fail)?;
        match kind {
            T::Directory => {
                if !self.clear(&dir, name, &rel, true).map_err(fail)? {
                    nix::sys::stat::mkdirat(&dir, name, Mode::S_IRWXU).map_err(fail)?;
                }
                self.dirs.insert(rel, meta.dir());
                Ok(())
            }
            T::Regular | T::Continuous => self.file(&dir, name, &rel, meta, entry, ctx, &raw),
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ctx.bad(&raw, "symbolic link without a target"))?;
                if target.contains(&0) {
                    return Err(ctx.bad(&raw, "symbolic link target has a NUL byte"));
                }
                if !target.starts_with(b"/") && climbs_out(parent, &target) {
                    return Err(ctx.unsafe_path(&raw, "symbolic link points out of the image"));
                }
                self.clear(&dir, name, &rel, false).map_err(fail)?;
                nix::unistd::symlinkat(target.as_slice(), &dir, name).map_err(fail)?;
                self.finish_at(&dir, name, meta, false).map_err(fail)
            }
            T::Link => self.hard_link(&dir, name, &rel, entry, ctx, &raw),
            T::Fifo => {
                self.clear(&dir, name, &rel, false).map_err(fail)?;
                nix::sys::stat::mknodat(
                    &dir,
                    name,
                    SFlag::S_IFIFO,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                    0,
                )
                .map_err(fail)?;
                self.finish_at(&dir, name, meta, true).map_err(fail)
            }
            other => Err(ctx.bad(&raw, format!("unsupported entry type {other:?}"))),
        }
    }

    /// Applies whiteout `<parent>/.wh.<hidden>`.
    fn whiteout(
        &mut self,
        parent: &[u8],
        hidden: &[u8],
        raw: &[u8],
        ctx: &Ctx<'_>,
        created: &HashSet<Vec<u8>>,
    ) -> Result<(), ImageError> {
        let fail = |e: Errno| ctx.errno(raw, e);
        if hidden == b".wh..opq" {
            // Opaque directory: hide everything earlier layers put in it.
            let dir = self.ensure_dir(parent).map_err(fail)?;
            return self.prune(&dir, parent, created).map_err(fail);
        }
        if hidden.starts_with(b".wh.") {
            // Other AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): nothing to apply.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(ctx.unsafe_path(raw, "whiteout of an invalid name"));
        }
        let target = join(parent, hidden);
        if created.contains(&target) {
            // Whiteouts hide what earlier layers hold, not what this one does.
            return Ok(());
        }
        let dir = match self.open_dir(parent) {
            Ok(dir) => dir,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(fail(e)),
        };
        remove_tree_at(&dir, hidden).map_err(fail)?;
        self.forget(&target);
        Ok(())
    }

    /// Removes what is in `dir` (at `rel`) and not held by the current layer, recursing into
    /// the directories it holds.
    fn prune(
        &mut self,
        dir: &OwnedFd,
        rel: &[u8],
        created: &HashSet<Vec<u8>>,
    ) -> Result<(), Errno> {
        for name in list_dir(dir)? {
            let child = join(rel, &name);
            if !created.contains(&child) {
                remove_tree_at(dir, &name)?;
                self.forget(&child);
                continue;
            }
            let stat = nix::sys::stat::fstatat(dir, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if is_dir(&stat) {
                let sub = nix::fcntl::openat(
                    dir,
                    name.as_slice(),
                    DIR_FLAGS | OFlag::O_NOFOLLOW,
                    Mode::empty(),
                )?;
                self.prune(&sub, &child, created)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn file<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        meta: Meta,
        entry: &mut tar::Entry<'_, R>,
        ctx: &Ctx<'_>,
        raw: &[u8],
    ) -> Result<(), ImageError> {
        let fail = |e: Errno| ctx.errno(raw, e);
        self.clear(dir, name, rel, false).map_err(fail)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut file = File::from(
            nix::fcntl::openat(dir, name, flags, Mode::S_IRUSR | Mode::S_IWUSR).map_err(fail)?,
        );
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ctx.read(e)),
            };
            file.write_all(&self.buf[..n]).map_err(|e| ctx.io(raw, e))?;
        }
        if self.as_root {
            let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
            nix::unistd::fchown(&file, Some(uid), Some(gid)).map_err(fail)?;
        }
        // After chown, which clears set-user-ID and set-group-ID.
        nix::sys::stat::fchmod(&file, meta.mode()).map_err(fail)?;
        nix::sys::stat::futimens(&file, &meta.time(), &meta.time()).map_err(fail)
    }

    fn hard_link<R: Read>(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        entry: &tar::Entry<'_, R>,
        ctx: &Ctx<'_>,
        raw: &[u8],
    ) -> Result<(), ImageError> {
        let fail = |e: Errno| ctx.errno(raw, e);
        let raw_target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .ok_or_else(|| ctx.bad(raw, "hard link without a target"))?;
        let shown = String::from_utf8_lossy(&raw_target).into_owned();
        let target = normalise(&raw_target)
            .map_err(|why| ctx.unsafe_path(raw, format!("hard link target {shown:?} {why}")))?;
        if target.is_empty() {
            return Err(ctx.bad(raw, "hard link to the root of the image"));
        }
        let missing = || ctx.bad(raw, format!("hard link target {shown:?} does not exist"));
        let (target_parent, target_name) = split(&target);
        let target_dir = match self.open_dir(target_parent) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(missing()),
            Err(e) => return Err(fail(e)),
        };
        match nix::sys::stat::fstatat(&target_dir, target_name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => return Err(missing()),
            Err(e) => return Err(fail(e)),
            Ok(stat) if is_dir(&stat) => {
                return Err(ctx.bad(raw, format!("hard link target {shown:?} is a directory")))
            }
            Ok(_) if target == rel => return Ok(()),
            Ok(_) => {}
        }
        self.clear(dir, name, rel, false).map_err(fail)?;
        nix::unistd::linkat(&target_dir, target_name, dir, name, AtFlags::empty()).map_err(fail)
    }

    /// Sets the ownership (as root), mode (unless a symbolic link) and times of `name`, just
    /// created in `dir`, without following it.
    fn finish_at(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        meta: Meta,
        set_mode: bool,
    ) -> Result<(), Errno> {
        if self.as_root {
            let (uid, gid) = (Uid::from_raw(meta.uid), Gid::from_raw(meta.gid));
            nix::unistd::fchownat(
                dir,
                name,
                Some(uid),
                Some(gid),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        if set_mode {
            // Linux cannot change a symbolic link's mode, so AT_SYMLINK_NOFOLLOW is not
            // available; `name` was just created (as a FIFO) in a directory only we write to.
            nix::sys::stat::fchmodat(dir, name, meta.mode(), FchmodatFlags::FollowSymlink)?;
        }
        let time = meta.time();
        nix::sys::stat::utimensat(dir, name, &time, &time, UtimensatFlags::NoFollowSymlink)
    }

    /// Gives every directory its final ownership, mode and time, deepest first.
    fn finish(&mut self, ctx: &Ctx<'_>) -> Result<(), ImageError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, meta) in dirs.iter().rev() {
            let fail = |e: Errno| ctx.errno(rel, e);
            let dir = match self.open_dir(rel) {
                Ok(dir) => dir,
                // Replaced or removed by a later entry.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(e) => return Err(fail(e)),
            };
            if let (true, Some((uid, gid))) = (self.as_root, meta.owner) {
                nix::unistd::fchown(&dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                    .map_err(fail)?;
            }
            nix::sys::stat::fchmod(&dir, Mode::from_bits_truncate(meta.mode)).map_err(fail)?;
            if let Some(mtime) = meta.mtime {
                let time = TimeSpec::new(mtime, 0);
                nix::sys::stat::futimens(&dir, &time, &time).map_err(fail)?;
            }
        }
        Ok(())
    }
}

/// What says an image file (or an OCI layout's `index.json`) is unchanged: device, inode,
/// size and modification time.
type Identity = (u64, u64, u64, i64, i64);

fn identity(path: &Path) -> Option<Identity> {
    let m = fs::metadata(path).ok()?;
    let m = if m.is_dir() {
        fs::metadata(path.join("index.json")).ok()?
    } else {
        m
    };
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Images this process imported: `(cache dir, image path) → (identity, tree)`.
type Memo = std::sync::Mutex<std::collections::HashMap<(PathBuf, PathBuf), (Identity, Imported)>>;

fn memo() -> &'static Memo {
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;
    use tar::EntryType;

    const MTIME: u64 = 1_600_000_000;

    /// A tar entry to build.
    enum E<'a> {
        Dir(&'a str, u32),
        File(&'a str, u32, &'a [u8]),
        Sym(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Fifo(&'a str, u32),
        Chr(&'a str),
    }

    /// A header whose names are written as is (the builder would refuse `..`).
    fn header(kind: EntryType, name: &str, link: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(MTIME);
        h.set_uid(1234);
        h.set_gid(5678);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        h
    }

    fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let (h, data): (tar::Header, &[u8]) = match *e {
                E::Dir(n, m) => (header(EntryType::Directory, n, "", m, 0), b""),
                E::File(n, m, d) => (header(EntryType::Regular, n, "", m, d.len() as u64), d),
                E::Sym(n, t) => (header(EntryType::Symlink, n, t, 0o777, 0), b""),
                E::Hard(n, t) => (header(EntryType::Link, n, t, 0o644, 0), b""),
                E::Fifo(n, m) => (header(EntryType::Fifo, n, "", m, 0), b""),
                E::Chr(n) => (header(EntryType::Char, n, "", 0o666, 0), b""),
            };
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn sha(bytes: &[u8]) -> String {
        format!("sha256:{}", to_hex(&Sha256::digest(bytes)))
    }

    fn put_blob(layout: &Path, bytes: &[u8]) -> String {
        let digest = sha(bytes);
        let dir = layout.join("blobs/sha256");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(&digest[7..]), bytes).unwrap();
        digest
    }

    fn blob_of(layout: &Path, digest: &str) -> PathBuf {
        layout.join("blobs/sha256").join(&digest[7..])
    }

    const GZ_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    /// Writes a manifest for `layers` (media type, bytes); returns its digest.
    fn put_manifest(layout: &Path, layers: &[(&str, Vec<u8>)]) -> (String, Vec<String>) {
        let config = put_blob(layout, br#"{"architecture":"amd64","os":"linux"}"#);
        let mut descs = Vec::new();
        let mut digests = Vec::new();
        for (media_type, bytes) in layers {
            let digest = put_blob(layout, bytes);
            descs.push(serde_json::json!({
                "mediaType": media_type, "digest": digest, "size": bytes.len()
            }));
            digests.push(digest);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": descs,
        });
        (put_blob(layout, manifest.to_string().as_bytes()), digests)
    }

    fn write_index(layout: &Path, manifests: serde_json::Value) {
        fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        fs::write(layout.join("index.json"), index.to_string()).unwrap();
    }

    /// An OCI layout with one manifest; returns its digest and the layers' digests.
    fn oci(layout: &Path, layers: &[(&str, Vec<u8>)]) -> (String, Vec<String>) {
        fs::create_dir_all(layout).unwrap();
        let (manifest, digests) = put_manifest(layout, layers);
        write_index(
            layout,
            serde_json::json!([{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest, "size": 1,
                "platform": {"architecture": host_arch(), "os": "linux"},
            }]),
        );
        (manifest, digests)
    }

    /// Nothing half-extracted anywhere in the cache.
    fn assert_clean(cache: &Path) {
        for sub in [
            "tmp",
            "oci/sha256",
            "docker-config/sha256",
            "tarball/sha256",
        ] {
            let dir = cache.join(sub);
            if dir.exists() {
                let left: Vec<_> = fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                assert!(left.is_empty(), "leftovers in {}: {left:?}", dir.display());
            }
        }
    }

    /// The trees in a cache, as `<format>/<hex>`.
    fn trees(cache: &Path) -> Vec<String> {
        let mut all = Vec::new();
        for format in ImageFormat::ALL {
            let dir = cache.join(format.dir_name()).join("sha256");
            if dir.exists() {
                all.extend(
                    names(&dir)
                        .into_iter()
                        .map(|hex| format!("{}/{hex}", format.dir_name())),
                );
            }
        }
        all
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn all_paths(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                all_paths(&e.path(), out);
            }
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn rootfs_tar(tool: &[u8]) -> Vec<u8> {
        tar_of(&[
            E::Dir("./", 0o755),
            E::Dir("./bin/", 0o755),
            E::File("./bin/tool", 0o4755, tool),
            E::Dir("etc/", 0o750),
            E::File("/etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n"),
            E::File("etc/motd", 0o644, b"old"),
            E::File("etc/motd", 0o600, b"new"),
            E::Sym("bin/sh", "/bin/tool"),
            E::Sym("etc/rel", "../bin/tool"),
            E::Hard("bin/tool2", "./bin/tool"),
            E::Fifo("etc/fifo", 0o620),
            E::Dir("dev/", 0o755),
            E::Chr("dev/null"),
            E::Dir("x/", 0o755),
            E::File("x/y", 0o644, b"y"),
            E::File("x", 0o644, b"now a file"),
            E::File("deep/implicit/file", 0o644, b"parents not in the archive"),
            E::Dir("ro/", 0o555),
            E::File("ro/f", 0o444, b"read-only"),
            E::Dir("ro/sub/", 0o500),
            E::File("ro/sub/g", 0o400, b"g"),
            E::Dir("etc/", 0o711),
        ])
    }

    #[test]
    fn tarball_imports_once() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("rootfs.tar");
        let bytes = rootfs_tar(b"#!/bin/sh\n");
        fs::write(&tarball, &bytes).unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));

        let img = cache.import(&tarball).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, sha(&bytes));
        assert_eq!(
            img.root,
            cache
                .dir()
                .join("tarball/sha256")
                .join(&img.digest[7..])
                .join("rootfs")
        );
        let r = &img.root;
        assert_eq!(fs::read(r.join("bin/tool")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(mode(&r.join("bin/tool")), 0o4755);
        assert_eq!(mode(&r.join("etc/passwd")), 0o644);
        assert_eq!(fs::read(r.join("etc/motd")).unwrap(), b"new");
        assert_eq!(mode(&r.join("etc/motd")), 0o600);
        assert_eq!(
            mode(&r.join("etc")),
            0o711,
            "a directory over a directory takes the new mode"
        );
        assert_eq!(mode(r), 0o755);
        assert_eq!(
            fs::read_link(r.join("bin/sh")).unwrap(),
            Path::new("/bin/tool")
        );
        assert_eq!(
            fs::read_link(r.join("etc/rel")).unwrap(),
            Path::new("../bin/tool")
        );
        let tool = fs::metadata(r.join("bin/tool")).unwrap();
        let tool2 = fs::metadata(r.join("bin/tool2")).unwrap();
        assert_eq!((tool.ino(), tool.nlink()), (tool2.ino(), 2));
        let fifo = fs::symlink_metadata(r.join("etc/fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(mode(&r.join("etc/fifo")), 0o620);
        assert!(names(&r.join("dev")).is_empty(), "devices are skipped");
        assert_eq!(fs::read(r.join("x")).unwrap(), b"now a file");
        assert_eq!(
            fs::read(r.join("deep/implicit/file")).unwrap(),
            b"parents not in the archive"
        );
        assert_eq!(mode(&r.join("deep/implicit")), 0o755);
        // Directory modes are applied last, so read-only directories can be filled.
        assert_eq!(
            (mode(&r.join("ro")), mode(&r.join("ro/sub"))),
            (0o555, 0o500)
        );
        assert_eq!(fs::read(r.join("ro/f")).unwrap(), b"read-only");
        assert_eq!(mode(&r.join("ro/sub/g")), 0o400);
        for p in ["bin/tool", "etc", "etc/motd", "bin"] {
            assert_eq!(
                fs::symlink_metadata(r.join(p)).unwrap().mtime(),
                MTIME as i64,
                "{p}"
            );
        }
        assert_eq!(
            fs::symlink_metadata(r.join("bin/sh")).unwrap().mtime(),
            MTIME as i64
        );
        if is_root() {
            for p in ["bin/tool", "bin/sh", "etc", "etc/fifo"] {
                let m = fs::symlink_metadata(r.join(p)).unwrap();
                assert_eq!((m.uid(), m.gid()), (1234, 5678), "{p}");
            }
        }

        let inode = fs::metadata(r).unwrap().ino();
        let again = cache.import(&tarball).unwrap();
        assert!(!again.extracted);
        assert_eq!((&again.digest, &again.root), (&img.digest, &img.root));
        assert_eq!(fs::metadata(&again.root).unwrap().ino(), inode);
        assert_eq!(fs::read_dir(cache.dir().join("refs")).unwrap().count(), 1);
        assert_clean_tmp(cache.dir());
    }

    fn assert_clean_tmp(cache: &Path) {
        assert_eq!(fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn tarball_digest_is_memoised_by_file_identity() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("rootfs.tar");
        fs::write(&tarball, rootfs_tar(b"#!/bin/sh\n")).unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let first = cache.import(&tarball).unwrap();

        // Same inode, size and mtime, other bytes: the ref answers, the file is not read.
        let mtime = fs::metadata(&tarball).unwrap().modified().unwrap();
        let other = rootfs_tar(b"#!/bin/SH\n");
        fs::write(&tarball, &other).unwrap();
        File::options()
            .write(true)
            .open(&tarball)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let memo = cache.import(&tarball).unwrap();
        assert!(!memo.extracted);
        assert_eq!(memo.digest, first.digest);

        // A new mtime: hashed again, a new image.
        File::options()
            .write(true)
            .open(&tarball)
            .unwrap()
            .set_modified(mtime + std::time::Duration::from_secs(5))
            .unwrap();
        let second = cache.import(&tarball).unwrap();
        assert!(second.extracted);
        assert_eq!(second.digest, sha(&other));
        assert_eq!(
            fs::read(second.root.join("bin/tool")).unwrap(),
            b"#!/bin/SH\n"
        );

        // The same bytes elsewhere: hashed, found, not extracted.
        let copy = tmp.path().join("copy.tar");
        fs::copy(&tarball, &copy).unwrap();
        let third = cache.import(&copy).unwrap();
        assert!(!third.extracted);
        assert_eq!(third.root, second.root);
        // One ref per identity the file has had, plus the copy's.
        assert_eq!(fs::read_dir(cache.dir().join("refs")).unwrap().count(), 3);
    }

    #[test]
    fn gzip_tarball_imports() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("rootfs.tar.gz");
        let bytes = gz(&tar_of(&[
            E::Dir("etc/", 0o755),
            E::File("etc/hostname", 0o644, b"box\n"),
        ]));
        fs::write(&tarball, &bytes).unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&tarball).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, sha(&bytes));
        assert_eq!(fs::read(img.root.join("etc/hostname")).unwrap(), b"box\n");
        assert!(!cache.import(&tarball).unwrap().extracted);
    }

    #[test]
    fn oci_layers_apply_whiteouts_and_opaque_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let layer1 = tar_of(&[
            E::Dir("etc/", 0o755),
            E::File("etc/a", 0o644, b"a"),
            E::File("etc/b", 0o644, b"b"),
            E::Dir("opq/", 0o755),
            E::File("opq/old1", 0o644, b"1"),
            E::Dir("opq/sub/", 0o755),
            E::File("opq/sub/old2", 0o644, b"2"),
            E::Dir("opq/sub2/", 0o755),
            E::File("opq/sub2/old3", 0o644, b"3"),
            E::Dir("keep/", 0o755),
            E::File("keep/x", 0o644, b"x"),
            E::Dir("gone/", 0o755),
            E::File("gone/deep", 0o644, b"d"),
        ]);
        let layer2 = tar_of(&[
            E::File("etc/.wh.a", 0o644, b""),
            E::File("opq/new1", 0o644, b"n1"),
            E::File("opq/sub2/new4", 0o644, b"n4"),
            E::File("opq/.wh..wh..opq", 0o644, b""),
            E::File("opq/new2", 0o644, b"n2"),
            E::File("opq/sub/new3", 0o644, b"n3"),
            E::Dir("keep/", 0o750),
            E::File(".wh.gone", 0o644, b""),
            E::File("etc/.wh..wh.plnk", 0o644, b""),
        ]);
        let (manifest, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer1)), (GZ_LAYER, gz(&layer2))]);
        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&layout).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, manifest);
        assert_ne!(layers[0], layers[1]);
        let r = &img.root;
        assert_eq!(names(r), ["etc", "keep", "opq"]);
        assert_eq!(names(&r.join("etc")), ["b"]);
        assert_eq!(names(&r.join("opq")), ["new1", "new2", "sub", "sub2"]);
        assert_eq!(names(&r.join("opq/sub")), ["new3"]);
        assert_eq!(names(&r.join("opq/sub2")), ["new4"]);
        assert_eq!(names(&r.join("keep")), ["x"]);
        assert_eq!(mode(&r.join("keep")), 0o750);
        let mut paths = Vec::new();
        all_paths(r, &mut paths);
        assert!(
            paths.iter().all(|p| !p.to_string_lossy().contains(".wh.")),
            "{paths:?}"
        );

        let inode = fs::metadata(r).unwrap().ino();
        let again = cache.import(&layout).unwrap();
        assert!(!again.extracted);
        assert_eq!(again.root, img.root);
        assert_eq!(fs::metadata(&again.root).unwrap().ino(), inode);
        assert_clean_tmp(cache.dir());
    }

    #[test]
    fn oci_nested_index_picks_the_host_platform() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        fs::create_dir_all(&layout).unwrap();
        let plain = "application/vnd.oci.image.layer.v1.tar";
        let (manifest, _) = put_manifest(
            &layout,
            &[(plain, tar_of(&[E::File("hello", 0o644, b"hi")]))],
        );
        let foreign = if host_arch() == "riscv64" {
            "amd64"
        } else {
            "riscv64"
        };
        let absent = sha(b"a manifest that is not in the layout");
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": absent, "size": 1,
                 "platform": {"architecture": foreign, "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": 1,
                 "platform": {"architecture": host_arch(), "os": "linux"}},
            ],
        });
        let list = put_blob(&layout, list.to_string().as_bytes());
        write_index(
            &layout,
            serde_json::json!([{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": list, "size": 1}]),
        );
        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&layout).unwrap();
        assert_eq!(img.digest, manifest);
        assert_eq!(fs::read(img.root.join("hello")).unwrap(), b"hi");
    }

    #[test]
    fn concurrent_imports_share_one_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("rootfs.tar");
        fs::write(&tarball, rootfs_tar(b"#!/bin/sh\n")).unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let results: Vec<Imported> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| s.spawn(|| cache.import(&tarball).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|i| i.extracted).count(), 1);
        assert!(results.iter().all(|i| i.root == results[0].root));
        assert_eq!(trees(cache.dir()).len(), 1);
        assert_clean_tmp(cache.dir());
    }

    /// Imports `bytes` as a tarball into a fresh cache, expecting an error; checks that the
    /// cache holds nothing half-extracted and that nothing appeared in `canary`.
    fn import_fails(bytes: &[u8]) -> ImageError {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("image.tar");
        fs::write(&tarball, bytes).unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let err = cache.import(&tarball).unwrap_err();
        assert_clean(cache.dir());
        let mut left = names(tmp.path());
        left.retain(|n| n != "image.tar" && n != "cache");
        assert!(left.is_empty(), "created next to the cache: {left:?}");
        err
    }

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

    fn unsafe_path(err: &ImageError) -> (&str, &Path, &str) {
        match err {
            ImageError::UnsafePath {
                layer,
                path,
                reason,
                ..
            } => (layer, path, reason),
            other => panic!("expected UnsafePath, got {other}"),
        }
    }

    #[test]
    fn dotdot_entries_are_refused() {
        for name in ["../evil", "etc/../../evil", "./a/../b"] {
            let err = import_fails(&tar_of(&[
                E::Dir("etc/", 0o755),
                E::File(name, 0o644, b"x"),
            ]));
            let (layer, path, reason) = unsafe_path(&err);
            assert_eq!((layer, path), ("tarball", Path::new(name)));
            assert!(reason.contains(".."), "{err}");
        }
    }

    #[test]
    fn escaping_relative_symlinks_are_refused() {
        for target in ["../../etc/passwd", "../x/../../..", "../.."] {
            let err = import_fails(&tar_of(&[
                E::Dir("a/", 0o755),
                E::Sym("a/ok", ".."),
                E::Sym("a/l", target),
            ]));
            let (_, path, reason) = unsafe_path(&err);
            assert_eq!(path, Path::new("a/l"));
            assert!(reason.contains("points out of the image"), "{err}");
        }
    }

    #[test]
    fn writes_through_symlinks_are_refused() {
        let canary = tempfile::tempdir().unwrap();
        fs::write(canary.path().join("secret"), b"host file").unwrap();
        let outside = canary.path().to_str().unwrap();
        let cases: Vec<(Vec<E<'_>>, &str)> = vec![
            (
                vec![E::Sym("evil", outside), E::File("evil/pwned", 0o644, b"x")],
                "evil/pwned",
            ),
            (
                vec![E::Sym("evil", outside), E::Dir("evil/sub/", 0o755)],
                "evil/sub/",
            ),
            (
                vec![E::Sym("evil", outside), E::Sym("evil/l", "/")],
                "evil/l",
            ),
            (
                vec![E::Sym("evil", outside), E::Hard("link", "evil/secret")],
                "link",
            ),
            (
                vec![
                    E::Dir("d/", 0o755),
                    E::Sym("d/up", "."),
                    E::File("d/up/f", 0o644, b"x"),
                ],
                "d/up/f",
            ),
            (
                vec![
                    E::Sym("evil", outside),
                    E::File("evil/.wh.secret", 0o644, b""),
                ],
                "evil/.wh.secret",
            ),
            (
                vec![
                    E::Sym("evil", outside),
                    E::File("evil/.wh..wh..opq", 0o644, b""),
                ],
                "evil/.wh..wh..opq",
            ),
        ];
        for (entries, culprit) in cases {
            let err = import_fails(&tar_of(&entries));
            let (_, path, reason) = unsafe_path(&err);
            assert_eq!(path, Path::new(culprit));
            assert_eq!(reason, "goes through a symbolic link");
            assert_eq!(names(canary.path()), ["secret"]);
            assert_eq!(
                fs::read(canary.path().join("secret")).unwrap(),
                b"host file"
            );
            assert_eq!(
                fs::metadata(canary.path().join("secret")).unwrap().nlink(),
                1
            );
        }
    }

    #[test]
    fn bad_hard_links_are_refused() {
        let err = import_fails(&tar_of(&[E::File("f", 0o644, b"x"), E::Hard("h", "../f")]));
        let (_, path, reason) = unsafe_path(&err);
        assert_eq!(path, Path::new("h"));
        assert!(reason.contains("\"../f\""), "{err}");

        let err = import_fails(&tar_of(&[E::Hard("h", "nowhere/f")]));
        assert!(
            matches!(&err, ImageError::BadEntry { path, reason, .. } if path == Path::new("h") && reason.contains("does not exist")),
            "{err}"
        );
        let err = import_fails(&tar_of(&[E::Dir("d/", 0o755), E::Hard("h", "d")]));
        assert!(matches!(&err, ImageError::BadEntry { .. }), "{err}");
    }

    #[test]
    fn oci_errors_name_the_blob_and_leave_nothing() {
        let layer1 = gz(&tar_of(&[E::File("one", 0o644, b"1")]));
        let layer2 = gz(&tar_of(&[E::File("two", 0o644, b"2")]));
        let layers = [(GZ_LAYER, layer1), (GZ_LAYER, layer2)];

        // What to break in a fresh layout (given its path, manifest and layer digests), and
        // what to expect of the error.
        type Mutate<'a> = &'a dyn Fn(&Path, &str, &[String]);
        type Expect<'a> = &'a dyn Fn(&ImageError, &Path, &str, &[String]);
        let check = |mutate: Mutate<'_>, expect: Expect<'_>| {
            let tmp = tempfile::tempdir().unwrap();
            let layout = tmp.path().join("layout");
            let (manifest, digests) = oci(&layout, &layers);
            mutate(&layout, &manifest, &digests);
            let cache = ImageCache::new(tmp.path().join("cache"));
            let err = cache.import(&layout).unwrap_err();
            expect(&err, &layout, &manifest, &digests);
            assert_clean(cache.dir());
        };

        // A missing layer blob.
        check(
            &|layout, _, d| fs::remove_file(blob_of(layout, &d[1])).unwrap(),
            &|err, layout, _, d| {
                assert!(
                    matches!(err, ImageError::MissingBlob { blob, .. } if *blob == blob_of(layout, &d[1])),
                    "{err}"
                )
            },
        );
        // A missing manifest blob.
        check(
            &|layout, m, _| fs::remove_file(blob_of(layout, m)).unwrap(),
            &|err, layout, m, _| {
                assert!(
                    matches!(err, ImageError::MissingBlob { blob, .. } if *blob == blob_of(layout, m)),
                    "{err}"
                )
            },
        );
        // A layer whose bytes are not those of its digest (still a valid layer).
        check(
            &|layout, _, d| {
                fs::write(
                    blob_of(layout, &d[1]),
                    gz(&tar_of(&[E::File("evil", 0o644, b"!")])),
                )
                .unwrap()
            },
            &|err, layout, _, d| match err {
                ImageError::DigestMismatch {
                    blob,
                    expected,
                    actual,
                    ..
                } => {
                    assert_eq!(*blob, blob_of(layout, &d[1]));
                    assert_eq!(*expected, d[1]);
                    assert_ne!(actual, expected);
                }
                other => panic!("{other}"),
            },
        );
        // A corrupt gzip layer.
        check(
            &|layout, _, d| {
                let mut bytes = fs::read(blob_of(layout, &d[0])).unwrap();
                let n = bytes.len();
                bytes[n / 2..].fill(0xff);
                fs::write(blob_of(layout, &d[0]), bytes).unwrap()
            },
            &|err, layout, _, d| {
                assert!(
                    matches!(err, ImageError::Read { file, .. } | ImageError::DigestMismatch { blob: file, .. } if *file == blob_of(layout, &d[0])),
                    "{err}"
                )
            },
        );
        // A tampered manifest.
        check(
            &|layout, m, _| {
                let path = blob_of(layout, m);
                let text = fs::read_to_string(&path)
                    .unwrap()
                    .replace("schemaVersion", "schemaversion");
                fs::write(path, text).unwrap()
            },
            &|err, layout, m, _| {
                assert!(
                    matches!(err, ImageError::DigestMismatch { blob, .. } if *blob == blob_of(layout, m)),
                    "{err}"
                )
            },
        );
        // A zstd layer.
        check(
            &|layout, m, _| {
                let text = fs::read_to_string(blob_of(layout, m)).unwrap();
                let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
                manifest["layers"][1]["mediaType"] =
                    "application/vnd.oci.image.layer.v1.tar+zstd".into();
                let digest = put_blob(layout, manifest.to_string().as_bytes());
                write_index(layout, serde_json::json!([{"digest": digest, "size": 1}]));
            },
            &|err, _, _, d| {
                assert!(
                    matches!(err, ImageError::UnsupportedLayer { layer, media_type, .. } if *layer == d[1] && media_type.ends_with("zstd")),
                    "{err}"
                )
            },
        );
        // A malformed digest in the index.
        check(
            &|layout, _, _| {
                write_index(
                    layout,
                    serde_json::json!([{"digest": "sha256:../../etc/passwd", "size": 1}]),
                )
            },
            &|err, layout, _, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { file, .. } if *file == layout.join("index.json")),
                    "{err}"
                )
            },
        );
    }

    #[test]
    fn oci_unsafe_entries_name_the_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let good = gz(&tar_of(&[E::File("one", 0o644, b"1")]));
        let bad = tar_of(&[E::File("ok", 0o644, b""), E::File("../up", 0o644, b"!")]);
        let plain = "application/vnd.oci.image.layer.v1.tar";
        let (_, digests) = oci(&layout, &[(GZ_LAYER, good), (plain, bad)]);
        let cache = ImageCache::new(tmp.path().join("cache"));
        let err = cache.import(&layout).unwrap_err();
        let (layer, path, _) = unsafe_path(&err);
        assert_eq!((layer, path), (digests[1].as_str(), Path::new("../up")));
        assert!(!tmp.path().join("up").exists());
        assert_clean(cache.dir());
    }

    /// A tar archive of directory `dir`'s tree (sorted, so `blobs/` comes first, as skopeo
    /// writes it), entry names prefixed with `prefix`; symbolic links are archived as such.
    fn tar_dir(dir: &Path, prefix: &str) -> Vec<u8> {
        fn walk(b: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path, prefix: &str) {
            let mut paths: Vec<PathBuf> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            paths.sort();
            for path in paths {
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap();
                b.append_path_with_name(&path, format!("{prefix}{rel}"))
                    .unwrap();
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    walk(b, root, &path, prefix);
                }
            }
        }
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        walk(&mut b, dir, dir, prefix);
        b.into_inner().unwrap()
    }

    /// Two layers: files, then whiteouts of some of them and an opaque directory.
    fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
        let layer1 = tar_of(&[
            E::Dir("bin/", 0o755),
            E::File("bin/sh", 0o755, b"#!sh"),
            E::Dir("etc/", 0o755),
            E::File("etc/gone", 0o644, b"gone"),
            E::File("etc/keep", 0o644, b"keep"),
            E::Dir("opq/", 0o755),
            E::File("opq/old", 0o644, b"old"),
        ]);
        let layer2 = tar_of(&[
            E::File("etc/.wh.gone", 0o644, b""),
            E::File("opq/.wh..wh..opq", 0o644, b""),
            E::File("opq/new", 0o644, b"new"),
        ]);
        (layer1, layer2)
    }

    /// What [`whiteout_layers`] make.
    fn assert_whiteout_tree(root: &Path) {
        assert_eq!(names(root), ["bin", "etc", "opq"]);
        assert_eq!(names(&root.join("etc")), ["keep"]);
        assert_eq!(names(&root.join("opq")), ["new"]);
        assert_eq!(fs::read(root.join("bin/sh")).unwrap(), b"#!sh");
    }

    /// Writes a `docker save` archive's files (the format before Docker 25) for `layers` into
    /// `dir`: `<id>/layer.tar` each (one more, empty, linked to an identical one as Docker
    /// does), `<config-hex>.json`, `manifest.json`, `repositories`. Returns the config's
    /// digest (the image ID) and the layers' paths.
    fn docker_save_dir(dir: &Path, layers: &[Vec<u8>]) -> (String, Vec<String>) {
        let empty = tar_of(&[]);
        let mut all: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
        all.extend([empty.as_slice(), empty.as_slice()]);
        let mut names: Vec<String> = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, layer) in all.iter().enumerate() {
            let id = to_hex(&Sha256::digest(format!("layer {i}")));
            fs::create_dir_all(dir.join(&id)).unwrap();
            fs::write(dir.join(&id).join("VERSION"), "1.0").unwrap();
            fs::write(dir.join(&id).join("json"), format!(r#"{{"id":"{id}"}}"#)).unwrap();
            let path = format!("{id}/layer.tar");
            match names.last() {
                Some(prev) if i == all.len() - 1 => {
                    // Identical to the one before: a link to it.
                    let target = format!("../{}", prev.split('/').next().unwrap());
                    std::os::unix::fs::symlink(format!("{target}/layer.tar"), dir.join(&path))
                        .unwrap();
                }
                _ => fs::write(dir.join(&path), layer).unwrap(),
            }
            diff_ids.push(sha(layer));
            names.push(path);
        }
        let config = serde_json::json!({
            "architecture": host_arch(), "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string();
        let config_hex = to_hex(&Sha256::digest(&config));
        fs::write(dir.join(format!("{config_hex}.json")), &config).unwrap();
        let manifest = serde_json::json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": ["test:latest"],
            "Layers": names,
        }]);
        fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        fs::write(
            dir.join("repositories"),
            format!(r#"{{"test":{{"latest":"{}"}}}}"#, &config_hex[..12]),
        )
        .unwrap();
        (format!("sha256:{config_hex}"), names)
    }

    #[test]
    fn oci_archive_imports_like_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let (layer1, layer2) = whiteout_layers();
        let plain = "application/vnd.oci.image.layer.v1.tar";
        let (manifest, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer1)), (plain, layer2)]);
        // Docker 25's `docker save` adds these next to the layout.
        fs::write(layout.join("manifest.json"), "[]").unwrap();
        fs::write(layout.join("repositories"), "{}").unwrap();
        let archive = tmp.path().join("image.tar");
        fs::write(&archive, tar_dir(&layout, "./")).unwrap();
        let compressed = tmp.path().join("image.tar.gz");
        fs::write(&compressed, gz(&tar_dir(&layout, ""))).unwrap();

        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&archive).unwrap();
        assert!(img.extracted);
        assert_eq!(
            img.digest, manifest,
            "keyed by the manifest, as a directory is"
        );
        assert_whiteout_tree(&img.root);
        assert_clean_tmp(cache.dir());
        assert_eq!(fs::read_dir(cache.dir().join("refs")).unwrap().count(), 1);
        // Reused: from the ref, from a fresh process (no memo), and under other names.
        let inode = fs::metadata(&img.root).unwrap().ino();
        for image in [&archive, &compressed, &layout] {
            memo().lock().unwrap().clear();
            let again = cache.import(image).unwrap();
            assert!(!again.extracted, "{}", image.display());
            assert_eq!((&again.digest, &again.root), (&img.digest, &img.root));
        }
        assert_eq!(fs::metadata(&img.root).unwrap().ino(), inode);
        assert_clean_tmp(cache.dir());
        // Found by its manifest's digest before any layer is read: an archive of the same
        // image whose layers are gone still finds it.
        for layer in &layers {
            fs::remove_file(blob_of(&layout, layer)).unwrap();
        }
        let thin = tmp.path().join("thin.tar");
        fs::write(&thin, tar_dir(&layout, "")).unwrap();
        assert_eq!(cache.import(&thin).unwrap().root, img.root);

        // Gzip-compressed, into a fresh cache: the decompressed copy does not stay.
        let other = ImageCache::new(tmp.path().join("other"));
        let img = other.import(&compressed).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, manifest);
        assert_whiteout_tree(&img.root);
        assert_clean_tmp(other.dir());
        assert_eq!(trees(other.dir()), [format!("oci/{}", &manifest[7..])]);
    }

    #[test]
    fn docker_save_archive_imports_its_layers_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("save");
        let (layer1, layer2) = whiteout_layers();
        let (image_id, layers) = docker_save_dir(&dir, &[layer1, layer2]);
        let archive = tmp.path().join("save.tar");
        fs::write(&archive, tar_dir(&dir, "")).unwrap();
        let compressed = tmp.path().join("save.tar.gz");
        fs::write(&compressed, gz(&fs::read(&archive).unwrap())).unwrap();

        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&archive).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, image_id, "keyed by the image ID");
        assert_whiteout_tree(&img.root);
        assert_clean_tmp(cache.dir());
        for image in [&archive, &compressed] {
            memo().lock().unwrap().clear();
            let again = cache.import(image).unwrap();
            assert!(!again.extracted, "{}", image.display());
            assert_eq!(again.root, img.root);
        }
        assert_clean_tmp(cache.dir());
        // Found by its image ID before any layer is read: an archive of the same image whose
        // layers are gone still finds it.
        for layer in &layers {
            let _ = fs::remove_file(dir.join(layer));
        }
        let thin = tmp.path().join("thin.tar");
        fs::write(&thin, tar_dir(&dir, "")).unwrap();
        assert_eq!(cache.import(&thin).unwrap().root, img.root);
    }

    #[test]
    fn broken_docker_save_archives_name_what_is_wrong() {
        let (layer1, layer2) = whiteout_layers();
        type Mutate<'a> = &'a dyn Fn(&Path, &[String]);
        type Expect<'a> = &'a dyn Fn(&ImageError, &[String]);
        let check = |mutate: Mutate<'_>, expect: Expect<'_>| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("save");
            let (_, layers) = docker_save_dir(&dir, &[layer1.clone(), layer2.clone()]);
            mutate(&dir, &layers);
            let archive = tmp.path().join("save.tar");
            fs::write(&archive, tar_dir(&dir, "")).unwrap();
            let cache = ImageCache::new(tmp.path().join("cache"));
            let err = cache.import(&archive).unwrap_err();
            expect(&err, &layers);
            assert!(err.to_string().contains("save.tar"), "{err}");
            assert_clean(cache.dir());
        };
        // A missing layer.
        check(
            &|dir, l| fs::remove_file(dir.join(&l[1])).unwrap(),
            &|err, l| {
                assert!(
                    matches!(err, ImageError::MissingBlob { blob, .. } if *blob == Path::new(&l[1])),
                    "{err}"
                )
            },
        );
        // A layer that is not the one the config names (still a valid layer).
        check(
            &|dir, l| fs::write(dir.join(&l[1]), tar_of(&[E::File("evil", 0o644, b"!")])).unwrap(),
            &|err, l| {
                assert!(
                    matches!(err, ImageError::DigestMismatch { blob, .. } if *blob == Path::new(&l[1])),
                    "{err}"
                )
            },
        );
        // A config that is not the one its name says.
        check(
            &|dir, _| {
                let config = fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.extension().is_some_and(|e| e == "json"))
                    .unwrap();
                let text = fs::read_to_string(&config)
                    .unwrap()
                    .replace("linux", "Linux");
                fs::write(config, text).unwrap()
            },
            &|err, _| assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}"),
        );
        // Two images in one archive.
        check(
            &|dir, _| {
                let text = fs::read_to_string(dir.join("manifest.json")).unwrap();
                let one: serde_json::Value = serde_json::from_str(&text).unwrap();
                let two = serde_json::json!([one[0], one[0]]);
                fs::write(dir.join("manifest.json"), two.to_string()).unwrap()
            },
            &|err, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { file, reason, .. }
                        if *file == Path::new("manifest.json") && reason.contains("2 images")),
                    "{err}"
                )
            },
        );
        // A layer path that leaves the archive.
        check(
            &|dir, _| {
                let text = fs::read_to_string(dir.join("manifest.json"))
                    .unwrap()
                    .replace("\"Layers\":[\"", "\"Layers\":[\"../");
                fs::write(dir.join("manifest.json"), text).unwrap()
            },
            &|err, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { reason, .. } if reason.contains("../")),
                    "{err}"
                )
            },
        );
        // Not JSON.
        check(
            &|dir, _| fs::write(dir.join("manifest.json"), "[{").unwrap(),
            &|err, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { file, .. } if *file == Path::new("manifest.json")),
                    "{err}"
                )
            },
        );
    }

    #[test]
    fn oci_archive_with_a_missing_blob_is_refused_not_extracted() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let random: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let (layer1, layer2) = (
            tar_of(&[E::File("random", 0o644, &random)]),
            tar_of(&[E::File("more", 0o644, &random[..100])]),
        );
        let (_, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer1)), (GZ_LAYER, gz(&layer2))]);
        fs::remove_file(blob_of(&layout, &layers[1])).unwrap();
        for (name, bytes) in [
            ("image.tar", tar_dir(&layout, "")),
            ("image.tar.gz", gz(&tar_dir(&layout, "./"))),
        ] {
            let archive = tmp.path().join(name);
            fs::write(&archive, bytes).unwrap();
            let cache = ImageCache::new(tmp.path().join("cache"));
            let err = cache.import(&archive).unwrap_err();
            let want = Path::new("blobs/sha256").join(&layers[1][7..]);
            assert!(
                matches!(&err, ImageError::MissingBlob { image, blob } if *image == archive && *blob == want),
                "{err}"
            );
            assert_clean(cache.dir());
            assert!(
                !cache.dir().join("refs").exists()
                    || fs::read_dir(cache.dir().join("refs")).unwrap().count() == 0
            );
        }
    }

    #[test]
    fn only_image_files_make_an_image_archive() {
        // Image files only, but no layout and no manifest.json: refused.
        for entries in [
            vec![
                E::Dir("blobs/", 0o755),
                E::Dir("blobs/sha256/", 0o755),
                E::File("blobs/sha256/abc", 0o644, b"x"),
                E::File("repositories", 0o644, b"{}"),
            ],
            vec![E::File("./oci-layout", 0o644, b"{}")],
            vec![E::File(
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json",
                0o644,
                b"{}",
            )],
        ] {
            let err = import_fails(&tar_of(&entries));
            assert!(
                matches!(&err, ImageError::NotAnImage { reason, .. } if reason.contains("docker save")),
                "{err}"
            );
        }

        // Anything else is a root filesystem, however small, whatever else it holds.
        let tmp = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        for (i, entries) in [
            vec![E::Dir("bin/", 0o755), E::Dir("etc/", 0o755)],
            vec![E::File("hello", 0o755, b"static binary")],
            vec![
                E::File("manifest.json", 0o644, b"[]"),
                E::Dir("blobs/", 0o755),
                E::File("app", 0o755, b"x"),
            ],
            vec![
                E::File("index.json", 0o644, b"{}"),
                E::File("oci-layout", 0o644, b"{}"),
                E::Dir("etc/", 0o755),
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let bytes = tar_of(&entries);
            for (name, bytes) in [
                (format!("{i}.tar"), bytes.clone()),
                (format!("{i}.tgz"), gz(&bytes)),
            ] {
                let tarball = tmp.path().join(name);
                fs::write(&tarball, &bytes).unwrap();
                let img = cache.import(&tarball).unwrap();
                assert_eq!(img.digest, sha(&bytes));
                assert!(!names(&img.root).is_empty());
            }
        }
        assert_clean_tmp(cache.dir());
    }

    /// Re-runs this test binary as a child process doing `task` (see [`child_process`]) in
    /// `cache`; its stdout is piped, and so is its stdin (closing it makes a holder exit).
    fn child(task: &str, cache: &Path, image: &Path) -> std::process::Child {
        use std::process::{Command, Stdio};
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "image::tests::child_process", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("SANDBOX_FS_TEST_CHILD", task)
            .env("SANDBOX_FS_TEST_CACHE", cache)
            .env("SANDBOX_FS_TEST_IMAGE", image)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The first line of a child's stdout that starts with `marker`, without it.
    fn child_says(child: &mut std::process::Child, marker: &str) -> String {
        let out = child.stdout.as_mut().unwrap();
        for line in BufReader::new(out).lines() {
            let line = line.unwrap();
            // (After libtest's `test … ... ` on the same line.)
            if let Some(at) = line.find(marker) {
                return line[at + marker.len()..].to_string();
            }
        }
        panic!("the child never said {marker:?}: {:?}", child.wait());
    }

    /// Not a test: what a child process started by [`child`] does. `hold`: starts an import's
    /// work the way an import does (a locked temp directory holding a half-extracted tree, a
    /// ref being written), says where, and waits until its stdin closes (or it is killed).
    /// `import`: imports the image and says its digest. In a normal test run, nothing.
    #[test]
    fn child_process() {
        let Ok(task) = std::env::var("SANDBOX_FS_TEST_CHILD") else {
            return;
        };
        let cache = ImageCache::new(std::env::var_os("SANDBOX_FS_TEST_CACHE").unwrap());
        let image = PathBuf::from(std::env::var_os("SANDBOX_FS_TEST_IMAGE").unwrap());
        match task.as_str() {
            "hold" => {
                cache.ensure_layout().unwrap();
                let tmp = cache.new_tmp().unwrap();
                let mut tree = tmp.tree().unwrap();
                let ctx = Ctx {
                    image: &image,
                    layer: TARBALL,
                    blob: &image,
                };
                let layer = tar_of(&[E::Dir("etc/", 0o755), E::File("etc/half", 0o644, b"x")]);
                tree.apply_blob(layer.as_slice(), &ctx, true, false)
                    .unwrap();
                let create = |p: &Path| File::options().write(true).create_new(true).open(p);
                let (ref_tmp, _lock) = cache.create_tmp("ref-", create).unwrap();
                println!("HOLDING {} {}", tmp.path().display(), ref_tmp.display());
                io::stdout().flush().unwrap();
                let _ = io::stdin().read(&mut [0]);
                // Gone without cleaning up, as if killed.
                std::process::exit(0);
            }
            "import" => {
                let img = cache.import(&image).unwrap();
                println!("IMPORTED {} {}", img.digest, img.extracted);
            }
            other => panic!("unknown task {other}"),
        }
    }

    #[test]
    fn work_left_by_a_killed_import_is_removed_but_not_a_live_one() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let tarballs: Vec<PathBuf> = (0..3)
            .map(|i| {
                let path = tmp.path().join(format!("{i}.tar"));
                fs::write(
                    &path,
                    tar_of(&[E::File("f", 0o644, format!("{i}").as_bytes())]),
                )
                .unwrap();
                path
            })
            .collect();
        let paths =
            |said: String| -> Vec<PathBuf> { said.split_whitespace().map(PathBuf::from).collect() };

        let mut killed = child("hold", cache.dir(), &tarballs[0]);
        let stale = paths(child_says(&mut killed, "HOLDING "));
        killed.kill().unwrap();
        killed.wait().unwrap();
        let mut live = child("hold", cache.dir(), &tarballs[0]);
        let busy = paths(child_says(&mut live, "HOLDING "));
        assert_eq!(stale.len() + busy.len(), 4);
        for p in stale.iter().chain(&busy) {
            assert!(p.starts_with(cache.dir().join("tmp")), "{}", p.display());
            assert!(fs::symlink_metadata(p).is_ok(), "{}", p.display());
        }

        let img = cache.import(&tarballs[1]).unwrap();
        assert!(img.extracted);
        for p in &stale {
            assert!(
                fs::symlink_metadata(p).is_err(),
                "not removed: {}",
                p.display()
            );
        }
        for p in &busy {
            assert!(fs::symlink_metadata(p).is_ok(), "removed: {}", p.display());
        }
        assert_eq!(fs::read(busy[0].join("rootfs/etc/half")).unwrap(), b"x");

        // Once its owner is gone, the next import removes it.
        drop(live.stdin.take());
        assert!(live.wait().unwrap().success());
        assert!(fs::symlink_metadata(&busy[0]).is_ok());
        cache.import(&tarballs[2]).unwrap();
        assert_clean_tmp(cache.dir());
        assert_eq!(trees(cache.dir()).len(), 2);
    }

    #[test]
    fn a_sweep_waits_for_entries_being_created() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        cache.ensure_layout().unwrap();
        // Left by an older version (never locked), or just created and not yet locked.
        let orphan = cache.dir().join("tmp/orphan");
        fs::create_dir(&orphan).unwrap();
        fs::write(orphan.join("f"), b"x").unwrap();
        fs::write(cache.dir().join("tmp/ref-orphan"), b"x").unwrap();
        let creating = cache.lock_tmp(FlockArg::LockShared).unwrap();
        cache.sweep();
        assert!(orphan.is_dir(), "swept while an entry was being created");
        drop(creating);
        cache.sweep();
        assert_clean_tmp(cache.dir());
    }

    #[test]
    fn concurrent_imports_in_several_processes() {
        let tmp = tempfile::tempdir().unwrap();
        let (layer1, layer2) = whiteout_layers();
        let layout = tmp.path().join("layout");
        let (manifest, _) = oci(&layout, &[(GZ_LAYER, gz(&layer1)), (GZ_LAYER, gz(&layer2))]);
        let oci_tar = tmp.path().join("oci.tar");
        fs::write(&oci_tar, tar_dir(&layout, "")).unwrap();
        let oci_tgz = tmp.path().join("oci.tar.gz");
        fs::write(&oci_tgz, gz(&tar_dir(&layout, ""))).unwrap();
        let save = tmp.path().join("save");
        let (image_id, _) = docker_save_dir(&save, &[layer1, layer2]);
        let save_tar = tmp.path().join("save.tar");
        fs::write(&save_tar, tar_dir(&save, "")).unwrap();
        let export = tmp.path().join("export.tar");
        let export_bytes = rootfs_tar(b"#!/bin/sh\n");
        fs::write(&export, &export_bytes).unwrap();

        let cache = tmp.path().join("cache");
        let images = [
            &oci_tar, &oci_tgz, &layout, &save_tar, &export, &save_tar, &export,
        ];
        let mut children: Vec<_> = images
            .iter()
            .map(|image| child("import", &cache, image))
            .collect();
        let mut extracted = BTreeMap::new();
        for (child, image) in children.iter_mut().zip(images) {
            let said = child_says(child, "IMPORTED ");
            assert!(child.wait().unwrap().success(), "{}", image.display());
            let (digest, fresh) = said.split_once(' ').unwrap();
            *extracted.entry(digest.to_string()).or_insert(0) += usize::from(fresh == "true");
        }
        let want = BTreeMap::from([(manifest, 1), (image_id, 1), (sha(&export_bytes), 1)]);
        assert_eq!(extracted, want, "each image extracted once");
        let cache = ImageCache::new(cache);
        assert_eq!(trees(cache.dir()).len(), 3);
        assert_clean_tmp(cache.dir());
        for image in images {
            assert!(!cache.import(image).unwrap().extracted);
        }
    }

    #[test]
    fn default_dir_ends_in_sandbox_images() {
        let dir = ImageCache::default_dir();
        assert!(dir.ends_with("sandbox/images"), "{}", dir.display());
        if is_root() {
            assert_eq!(dir, Path::new("/var/cache/sandbox/images"));
        }
    }

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

    #[test]
    fn paths_normalise() {
        assert_eq!(normalise(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalise(b"/").unwrap(), b"");
        assert!(normalise(b"a/../b").is_err());
        assert!(climbs_out(b"", b".."));
        assert!(!climbs_out(b"a/b", b"../../c"));
        assert!(climbs_out(b"a/b", b"../../../c"));
        assert!(!climbs_out(b"a", b"x/../../b"));
    }

    /// A JSON document that is both an OCI manifest (layers: good) and a docker image config
    /// (rootfs.diff_ids: evil) has one digest in either format; its trees stay apart.
    #[test]
    fn manifest_that_is_also_a_config_keeps_formats_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let good = tar_of(&[E::File("who", 0o644, b"good")]);
        let evil = tar_of(&[E::File("who", 0o644, b"EVIL")]);
        // OCI layout dir whose manifest also carries a `rootfs.diff_ids`.
        let layout = tmp.path().join("layout");
        fs::create_dir_all(&layout).unwrap();
        let config = put_blob(&layout, br#"{"architecture":"amd64","os":"linux"}"#);
        let good_digest = put_blob(&layout, &gz(&good));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": GZ_LAYER, "digest": good_digest, "size": 1}],
            "rootfs": {"type": "layers", "diff_ids": [sha(&evil)]},
        })
        .to_string();
        let mdigest = put_blob(&layout, manifest.as_bytes());
        write_index(
            &layout,
            serde_json::json!([{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": 1}]),
        );
        // docker-save archive whose config is those very bytes.
        let save = tmp.path().join("save");
        let lid = to_hex(&Sha256::digest(b"l"));
        fs::create_dir_all(save.join(&lid)).unwrap();
        fs::write(save.join(&lid).join("layer.tar"), &evil).unwrap();
        fs::write(save.join(format!("{}.json", &mdigest[7..])), &manifest).unwrap();
        fs::write(
            save.join("manifest.json"),
            serde_json::json!([{"Config": format!("{}.json", &mdigest[7..]), "Layers": [format!("{lid}/layer.tar")]}]).to_string(),
        )
        .unwrap();
        let archive = tmp.path().join("save.tar");
        fs::write(&archive, tar_dir(&save, "")).unwrap();

        let cache = ImageCache::new(tmp.path().join("cache"));
        let a = cache.import(&archive).unwrap();
        assert_eq!(a.digest, mdigest);
        let b = cache.import(&layout).unwrap();
        assert_eq!(b.digest, mdigest);
        let who = fs::read_to_string(b.root.join("who")).unwrap();
        assert_eq!(who, "good", "cache poisoned across formats");
    }

    /// Hostile member names and links inside image archives.
    #[test]
    fn hostile_archive_members_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let layer = tar_of(&[E::File("f", 0o644, b"x")]);
        let (_m, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer))]);
        let hex = &layers[0][7..];
        let run = |name: &str, bytes: Vec<u8>| {
            let archive = tmp.path().join(name);
            fs::write(&archive, bytes).unwrap();
            let cache = ImageCache::new(tmp.path().join(format!("cache-{name}")));
            let r = cache.import(&archive);
            assert_clean(cache.dir());
            r
        };
        // blob replaced by a symlink member pointing out of the archive.
        fs::remove_file(blob_of(&layout, &layers[0])).unwrap();
        std::os::unix::fs::symlink("../../../../../etc/passwd", blob_of(&layout, &layers[0]))
            .unwrap();
        assert!(matches!(
            run("sym.tar", tar_dir(&layout, "")),
            Err(ImageError::MissingBlob { .. })
        ));
        // absolute symlink
        fs::remove_file(blob_of(&layout, &layers[0])).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", blob_of(&layout, &layers[0])).unwrap();
        assert!(matches!(
            run("abs.tar", tar_dir(&layout, "")),
            Err(ImageError::MissingBlob { .. })
        ));
        // hard link member to a host-looking path
        fs::remove_file(blob_of(&layout, &layers[0])).unwrap();
        let mut t = tar_dir(&layout, "");
        t.truncate(t.len() - 1024);
        let mut b = tar::Builder::new(t);
        let h = header(
            EntryType::Link,
            &format!("blobs/sha256/{hex}"),
            "/etc/passwd",
            0o644,
            0,
        );
        b.append(&h, &b""[..]).unwrap();
        let h = header(EntryType::Link, "blobs/x", "../../etc/passwd", 0o644, 0);
        b.append(&h, &b""[..]).unwrap();
        assert!(matches!(
            run("hard.tar", b.into_inner().unwrap()),
            Err(ImageError::MissingBlob { .. })
        ));
        // `..` member among image files
        let mut t = tar_dir(&layout, "");
        t.truncate(t.len() - 1024);
        let mut b = tar::Builder::new(t);
        let h = header(EntryType::Regular, "blobs/../../x", "", 0o644, 1);
        b.append(&h, &b"x"[..]).unwrap();
        assert!(run("dotdot.tar", b.into_inner().unwrap()).is_err());
        // docker-save with absolute layer path and symlink-looping layers
        let save = tmp.path().join("save");
        let lid = to_hex(&Sha256::digest(b"l"));
        fs::create_dir_all(save.join(&lid)).unwrap();
        std::os::unix::fs::symlink("layer.tar", save.join(&lid).join("layer.tar")).unwrap();
        let cfg =
            serde_json::json!({"rootfs": {"diff_ids": [sha(&layer), sha(&layer)]}}).to_string();
        let chex = to_hex(&Sha256::digest(&cfg));
        fs::write(save.join(format!("{chex}.json")), &cfg).unwrap();
        fs::write(save.join("manifest.json"), serde_json::json!([{"Config": format!("/{chex}.json"), "Layers": ["/etc/passwd", format!("{lid}/layer.tar")]}]).to_string()).unwrap();
        assert!(matches!(
            run("save.tar", tar_dir(&save, "")),
            Err(ImageError::MissingBlob { .. })
        ));
    }

    /// A cache written by an earlier version (every tree under `sha256/<hex>`, refs holding a
    /// bare digest) is not read: the images are imported again, into their formats' places.
    #[test]
    fn trees_and_refs_of_the_old_layout_are_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        let tarball = tmp.path().join("rootfs.tar");
        let bytes = tar_of(&[E::File("who", 0o644, b"tarball")]);
        fs::write(&tarball, &bytes).unwrap();
        let layout = tmp.path().join("layout");
        let layer = tar_of(&[E::File("who", 0o644, b"oci")]);
        let (manifest, _) = oci(&layout, &[(GZ_LAYER, gz(&layer))]);
        for hex in [&sha(&bytes)[7..], &manifest[7..]] {
            let root = cache.dir().join("sha256").join(hex).join("rootfs");
            fs::create_dir_all(&root).unwrap();
            fs::write(root.join("who"), b"OLD").unwrap();
        }
        let img = cache.import(&layout).unwrap();
        assert!(img.extracted);
        assert_eq!((img.format, &img.digest), (ImageFormat::Oci, &manifest));
        assert_eq!(fs::read(img.root.join("who")).unwrap(), b"oci");
        // An old ref for the tarball, naming a digest that has a tree (in another format).
        let canonical = fs::canonicalize(&tarball).unwrap();
        let key = ref_key(&canonical, &fs::metadata(&canonical).unwrap());
        fs::write(cache.dir().join("refs").join(&key), format!("{manifest}\n")).unwrap();
        let img = cache.import(&tarball).unwrap();
        assert!(img.extracted);
        assert_eq!(
            (img.format, &img.digest),
            (ImageFormat::RootTarball, &sha(&bytes))
        );
        assert_eq!(fs::read(img.root.join("who")).unwrap(), b"tarball");
        assert_eq!(
            fs::read_to_string(cache.dir().join("refs").join(&key)).unwrap(),
            format!("tarball {}\n", sha(&bytes))
        );
        memo().lock().unwrap().clear();
        let again = cache.import(&tarball).unwrap();
        assert!(!again.extracted);
        assert_eq!(again.root, img.root);
    }

    /// A gzip-compressed tarball is told apart as it is decompressed, writing nothing: image
    /// files that make no image are refused, and a root filesystem imported, however little
    /// the cache could take of a decompressed copy; an image archive is decompressed within
    /// that limit only.
    #[test]
    fn gzip_archives_are_told_before_being_decompressed_and_within_a_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let nothing = |name: &str| ImageCache::new(tmp.path().join(name)).with_unpack_limit(0);

        // Image files, but no image.
        let unknown = tmp.path().join("unknown.tar.gz");
        let blob = vec![7u8; 1 << 20];
        fs::write(
            &unknown,
            gz(&tar_of(&[
                E::Dir("blobs/", 0o755),
                E::File("blobs/big", 0o644, &blob),
                E::File("repositories", 0o644, b"{}"),
            ])),
        )
        .unwrap();
        let cache = nothing("c1");
        let err = cache.import(&unknown).unwrap_err();
        assert!(
            matches!(&err, ImageError::NotAnImage { path, reason } if *path == unknown && reason.contains("docker save")),
            "{err}"
        );
        assert_clean(cache.dir());

        // A root filesystem that starts like an image archive.
        let root = tmp.path().join("root.tar.gz");
        let bytes = gz(&tar_of(&[
            E::File("manifest.json", 0o644, b"[]"),
            E::Dir("blobs/", 0o755),
            E::File("blobs/big", 0o644, &blob),
            E::Dir("etc/", 0o755),
        ]));
        fs::write(&root, &bytes).unwrap();
        let cache = nothing("c2");
        let img = cache.import(&root).unwrap();
        assert_eq!(
            (img.format, img.digest),
            (ImageFormat::RootTarball, sha(&bytes))
        );
        assert_eq!(names(&img.root), ["blobs", "etc", "manifest.json"]);
        assert_clean_tmp(cache.dir());

        // An OCI layout: refused when its decompressed copy would not fit, naming it.
        let layout = tmp.path().join("layout");
        let (manifest, _) = oci(
            &layout,
            &[(GZ_LAYER, gz(&tar_of(&[E::File("f", 0o644, &blob)])))],
        );
        let tar = tar_dir(&layout, "");
        let archive = tmp.path().join("oci.tar.gz");
        fs::write(&archive, gz(&tar)).unwrap();
        let len = tar.len() as u64;
        let cache = ImageCache::new(tmp.path().join("c3")).with_unpack_limit(len - 1);
        let err = cache.import(&archive).unwrap_err();
        assert!(
            matches!(&err, ImageError::TooLarge { path, cache: dir, limit }
                if *path == archive && dir == cache.dir() && *limit == len - 1),
            "{err}"
        );
        assert!(err.to_string().contains("oci.tar.gz"), "{err}");
        assert_clean(cache.dir());
        let cache = ImageCache::new(tmp.path().join("c3")).with_unpack_limit(len);
        let img = cache.import(&archive).unwrap();
        assert_eq!((img.format, img.digest), (ImageFormat::Oci, manifest));
        assert_clean_tmp(cache.dir());

        // Without a given limit: what the filesystem has free, less a margin.
        let cache = ImageCache::new(tmp.path().join("c4"));
        let fs = nix::sys::statvfs::statvfs(tmp.path()).unwrap();
        let free = wide(fs.blocks_available()) * wide(fs.fragment_size());
        let limit = cache.unpack_limit(tmp.path()).unwrap();
        assert!(
            limit + (64 << 20) <= free.max(64 << 20),
            "{limit} of {free}"
        );
    }

    /// Whatever is in front of an image archive's files (empty names, pax headers), and
    /// wherever it ends, a tarball is told the same plain and gzip-compressed.
    #[test]
    fn plain_and_gzip_tarballs_are_told_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let layer = tar_of(&[E::File("f", 0o644, &[1; 3000])]);
        oci(&layout, &[(GZ_LAYER, layer.clone())]);
        let image = tar_dir(&layout, "");
        let unterminated = |mut t: Vec<u8>| {
            t.truncate(t.len() - 1024);
            t
        };
        let dots: Vec<E<'_>> = (0..200).map(|_| E::Dir("./", 0o755)).collect();
        let mut pax = tar::Builder::new(Vec::new());
        for _ in 0..200 {
            let h = header(EntryType::XGlobalHeader, "pax", "", 0o644, 10);
            pax.append(&h, &b"9 a=bcde\n\n"[..]).unwrap();
        }
        let pax = unterminated(pax.into_inner().unwrap());
        let behind = |front: Vec<u8>, rest: &[u8]| [unterminated(front), rest.to_vec()].concat();
        let truncated = image[..image.len() / 2].to_vec();
        let cases = [
            ("dots", behind(tar_of(&dots), &image)),
            ("pax", [pax.clone(), image.clone()].concat()),
            (
                "dots-root",
                behind(tar_of(&dots), &tar_of(&[E::Dir("etc/", 0o755)])),
            ),
            ("truncated", truncated),
            (
                "cut-in-last-entry",
                image[..image.len() - 1024 - 100].to_vec(),
            ),
        ];
        for (name, bytes) in cases {
            let mut told = Vec::new();
            for (suffix, bytes) in [("tar", bytes.clone()), ("tgz", gz(&bytes))] {
                let path = tmp.path().join(format!("{name}.{suffix}"));
                fs::write(&path, bytes).unwrap();
                let cache = ImageCache::new(tmp.path().join(format!("cache-{name}-{suffix}")));
                told.push(match cache.import(&path) {
                    Ok(img) if img.format == ImageFormat::RootTarball => "root".to_string(),
                    Ok(img) => format!("{:?} {}", img.format, img.digest),
                    Err(e) => format!("{e:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_string(),
                });
            }
            assert_eq!(told[0], told[1], "{name}: plain, then gzip");
        }
    }

    /// Only errors that say the filesystem cannot lock leave an entry unlocked; any other
    /// failure to lock is an error, and so is a `tmp.lock` that cannot be opened.
    #[test]
    fn lock_failures_are_errors_unless_locking_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let open = || File::create(tmp.path().join("f")).unwrap();
        let failing = |e: Errno| move |f: File, _| Err::<Flock<File>, _>((f, e));
        for e in [
            Errno::EOPNOTSUPP,
            Errno::ENOLCK,
            Errno::EINVAL,
            Errno::EBADF,
        ] {
            let got = try_flock(open(), FlockArg::LockShared, failing(e)).unwrap();
            assert!(got.is_err(), "{e}: not taken for \"cannot lock\"");
        }
        for e in [Errno::ENOMEM, Errno::EMFILE, Errno::EWOULDBLOCK, Errno::EIO] {
            let got = try_flock(open(), FlockArg::LockExclusiveNonblock, failing(e));
            assert_eq!(got.err(), Some(e));
        }
        let tries = std::cell::Cell::new(0);
        let interrupted = |f: File, arg| {
            tries.set(tries.get() + 1);
            match tries.get() {
                1 | 2 => Err((f, Errno::EINTR)),
                _ => Flock::lock(f, arg),
            }
        };
        let got = try_flock(open(), FlockArg::LockExclusive, interrupted).unwrap();
        assert!(got.is_ok() && tries.get() == 3);

        // A `tmp.lock` that is no file: no import, nothing created.
        let cache = ImageCache::new(tmp.path().join("cache"));
        fs::create_dir_all(cache.dir().join("tmp.lock")).unwrap();
        let tarball = tmp.path().join("rootfs.tar");
        fs::write(&tarball, tar_of(&[E::File("f", 0o644, b"x")])).unwrap();
        let err = cache.import(&tarball).unwrap_err();
        assert!(
            matches!(&err, ImageError::Cache { path, .. } if *path == cache.dir().join("tmp.lock")),
            "{err}"
        );
        assert_clean(cache.dir());
    }

    /// An image archive's index does not grow with hostile names.
    #[test]
    fn image_archive_names_are_bounded() {
        let gnu = |kind, size| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_size(size);
            h
        };
        let long = format!("blobs/sha256/{}", "a".repeat(MAX_NAME));
        for (what, bytes) in [
            ("name", {
                let mut b = tar::Builder::new(Vec::new());
                b.append_data(&mut gnu(EntryType::Regular, 1), &long, &b"x"[..])
                    .unwrap();
                b.into_inner().unwrap()
            }),
            ("link target", {
                let mut b = tar::Builder::new(Vec::new());
                b.append_link(&mut gnu(EntryType::Symlink, 0), "blobs/l", &long)
                    .unwrap();
                b.into_inner().unwrap()
            }),
        ] {
            let err = import_fails(&bytes);
            assert!(
                matches!(&err, ImageError::NotAnImage { reason, .. } if reason.contains("longer than 4096 bytes")),
                "{what}: {err}"
            );
        }
        // Names within `PATH_MAX`, but too many bytes of them.
        let mut b = tar::Builder::new(Vec::new());
        let base = "b".repeat(MAX_NAME - 100);
        for i in 0..MAX_NAME_BYTES / (MAX_NAME - 100) + 1 {
            let name = format!("blobs/{base}{i}");
            b.append_data(&mut gnu(EntryType::Directory, 0), &name, io::empty())
                .unwrap();
        }
        let err = import_fails(&b.into_inner().unwrap());
        assert!(
            matches!(&err, ImageError::NotAnImage { reason, .. } if reason.contains("names take more than")),
            "{err}"
        );
    }
}
