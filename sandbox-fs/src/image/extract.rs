//! Extracting layers into a tree, treating them as hostile: the layer loop shared by OCI and
//! `docker save` images (each layer checked against its digest), then entry by entry
//! (directories, files, links, FIFOs; device nodes skipped), with the metadata the archive gives.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};

use super::archive::GZIP_MAGIC;
use super::digest::{to_hex, HashingReader};
use super::names::{climbs_out, mark, normalise, split};
use super::source::Source;
use super::tree::{is_dir, DirMeta, Tree};
use super::{ImageCache, ImageError, ImageFormat, Imported};

impl ImageCache {
    /// Applies `layers` (checked already: the digest they must have, its hex, the member)
    /// in order to a new tree, each checked against its digest — of the blob for an OCI
    /// image, of the uncompressed stream (its diff_id) for a `docker save` one — and
    /// publishes it as the image `digest` of `format`. `described_by`: the manifest or
    /// config that lists them (for errors).
    pub(super) fn extract(
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
}

/// What errors about the layer being extracted should name.
pub(super) struct Ctx<'a> {
    pub(super) image: &'a Path,
    pub(super) layer: &'a str,
    pub(super) blob: &'a Path,
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

impl Ctx<'_> {
    pub(super) fn unsafe_path(&self, path: &[u8], reason: impl Into<String>) -> ImageError {
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
    pub(super) fn errno(&self, path: &[u8], e: Errno) -> ImageError {
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

impl Tree {
    /// Extracts a layer (or a tarball) read from `src`, plain or gzip; returns the hex sha256
    /// of all of `src`'s bytes and, when `diff_id`, that of the uncompressed tar stream (a
    /// layer's diff ID, which counts everything up to the stream's end).
    pub(super) fn apply_blob<R: Read>(
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
    pub(super) fn finish(&mut self, ctx: &Ctx<'_>) -> Result<(), ImageError> {
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

#[cfg(test)]
mod tests {
    //! No entry of a layer is written, or linked, outside the tree: `..` names, links that climb
    //! out, writes through links and bad hard links are refused, naming the entry; ownership
    //! is the archive's only for a root caller.

    use super::*;
    use crate::image::fixtures::*;
    use crate::image::tarball::TARBALL;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

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

    /// Ownership comes from the archive when the caller is root; anyone else keeps what they
    /// extract as their own (they could not give it away). Both are checked in one run as
    /// root, the second by telling the tree that its caller is not.
    #[test]
    fn ownership_is_the_archive_s_only_for_a_root_caller() {
        require_root();
        let caller = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        for (as_root, owner) in [(true, (1234, 5678)), (false, caller)] {
            let tmp = tempfile::tempdir().unwrap();
            let image = tmp.path().join("rootfs.tar");
            let root = tmp.path().join("rootfs");
            let mut tree = Tree::create(&root).unwrap();
            tree.as_root = as_root;
            let ctx = Ctx {
                image: &image,
                layer: TARBALL,
                blob: &image,
            };
            let layer = rootfs_tar(b"#!/bin/sh\n");
            tree.apply_blob(layer.as_slice(), &ctx, true, false)
                .unwrap();
            tree.finish(&ctx).unwrap();
            for p in ["bin/tool", "bin/sh", "etc", "etc/fifo"] {
                let m = fs::symlink_metadata(root.join(p)).unwrap();
                assert_eq!((m.uid(), m.gid()), owner, "{p}, as root: {as_root}");
            }
        }
    }
}
