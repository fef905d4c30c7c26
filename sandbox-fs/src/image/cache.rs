//! The cache on disk: where trees go (`<dir>/<format>/sha256/<hex>/rootfs`), the refs that
//! remember a tarball's format and digest, the in-process memo of imported images, work
//! entries under `tmp/` (locked with `flock` while in use, swept once their owner is gone) and
//! publishing a finished tree.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};

use super::digest::{is_hex64, to_hex};
use super::tree::{Tree, DIR_FLAGS};
use super::{ImageCache, ImageError, ImageFormat, Imported};

impl ImageCache {
    /// `<dir>/<format>/sha256/<hex>/rootfs`, if it is there.
    pub(super) fn cached(&self, format: ImageFormat, hex: &str) -> Option<PathBuf> {
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
    pub(super) fn lookup_ref(&self, key: &str) -> Option<Imported> {
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
    pub(super) fn write_ref(&self, key: &str, format: ImageFormat, digest: &str) {
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

    pub(super) fn ensure_layout(&self) -> Result<(), ImageError> {
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

    pub(super) fn new_tmp(&self) -> Result<TmpDir, ImageError> {
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
    pub(super) fn sweep(&self) {
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
    pub(super) fn publish(
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
pub(super) struct TmpDir {
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
    pub(super) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Creates `rootfs` in the directory and opens it for extraction.
    pub(super) fn tree(&self) -> Result<Tree, ImageError> {
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
pub(super) fn ref_key(canonical: &Path, stat: &fs::Metadata) -> String {
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

/// What says an image file (or an OCI layout's `index.json`) is unchanged: device, inode,
/// size and modification time.
type Identity = (u64, u64, u64, i64, i64);

pub(super) fn identity(path: &Path) -> Option<Identity> {
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

pub(super) fn memo() -> &'static Memo {
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    MEMO.get_or_init(Default::default)
}

#[cfg(test)]
mod tests {
    //! One tree per image and format, found again without reading an unchanged image twice; no
    //! import, killed or running, in this process or another, leaves its work behind or removes
    //! another's.

    use super::*;
    use crate::image::extract::Ctx;
    use crate::image::fixtures::*;
    use crate::image::tarball::TARBALL;
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read};

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

    /// Re-runs this test binary as a child process that enters through `test` (a test of this
    /// module that calls [`as_child`] first) and does `task` there, in `cache`; its stdout is
    /// piped, and so is its stdin (closing it makes a holder exit).
    fn child(test: &str, task: &str, cache: &Path, image: &Path) -> std::process::Child {
        use std::process::{Command, Stdio};
        // libtest names a test by its module path without the crate's name.
        let module = module_path!().split_once("::").unwrap().1;
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::{test}"), "--nocapture"])
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

    /// In a child process started by [`child`], does its task and exits, never returning to
    /// the test it entered through; in any other process, returns at once. `hold`: starts an
    /// import's work the way an import does (a locked temp directory holding a half-extracted
    /// tree, a ref being written), says where, and waits until its stdin closes (or it is
    /// killed). `import`: imports the image and says its digest.
    fn as_child() {
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
                io::stdout().flush().unwrap();
            }
            other => panic!("unknown task {other}"),
        }
        std::process::exit(0);
    }

    #[test]
    fn work_left_by_a_killed_import_is_removed_but_not_a_live_one() {
        const THIS: &str = "work_left_by_a_killed_import_is_removed_but_not_a_live_one";
        as_child();
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

        let mut killed = child(THIS, "hold", cache.dir(), &tarballs[0]);
        let stale = paths(child_says(&mut killed, "HOLDING "));
        killed.kill().unwrap();
        killed.wait().unwrap();
        let mut live = child(THIS, "hold", cache.dir(), &tarballs[0]);
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
        const THIS: &str = "concurrent_imports_in_several_processes";
        as_child();
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
            .map(|image| child(THIS, "import", &cache, image))
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
}
