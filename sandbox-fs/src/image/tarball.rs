//! Root filesystem tarballs (`docker export`): extracted as one layer, keyed by the sha256 of
//! their bytes.

use std::fs::File;
use std::io::{self, Seek};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::digest::{to_hex, HashingReader};
use super::error::read_error;
use super::extract::Ctx;
use super::{ImageCache, ImageError, ImageFormat, Imported};

/// The layer name used in errors about a `docker export` tarball.
pub(super) const TARBALL: &str = "tarball";

impl ImageCache {
    /// Imports a root filesystem tarball (`docker export`), keyed by the sha256 of its bytes.
    pub(super) fn import_root_tarball(
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
}

#[cfg(test)]
mod tests {
    //! A `docker export` tarball, plain or gzip, is extracted once, with its modes, links, FIFOs
    //! and times, and found again by its bytes.

    use crate::image::fixtures::*;
    use crate::image::ImageCache;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::Path;

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
        // Whose the files are: see `ownership_is_the_archive_s_only_for_a_root_caller`.

        let inode = fs::metadata(r).unwrap().ino();
        let again = cache.import(&tarball).unwrap();
        assert!(!again.extracted);
        assert_eq!((&again.digest, &again.root), (&img.digest, &img.root));
        assert_eq!(fs::metadata(&again.root).unwrap().ino(), inode);
        assert_eq!(fs::read_dir(cache.dir().join("refs")).unwrap().count(), 1);
        assert_clean_tmp(cache.dir());
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
}
