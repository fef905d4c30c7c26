//! Whiteouts of layered images: `.wh.<name>` hides what earlier layers put at `<name>`, and
//! `.wh..wh..opq` hides everything earlier layers put in its directory.

use std::collections::HashSet;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

use super::extract::Ctx;
use super::names::join;
use super::tree::{is_dir, list_dir, remove_tree_at, Tree, DIR_FLAGS};
use super::ImageError;

impl Tree {
    /// Applies whiteout `<parent>/.wh.<hidden>`.
    pub(super) fn whiteout(
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
}

#[cfg(test)]
mod tests {
    //! Whiteouts and opaque directories hide what earlier layers put there, and only that; no
    //! marker is left in the tree.

    use crate::image::fixtures::*;
    use crate::image::ImageCache;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

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
}
