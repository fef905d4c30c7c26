//! [`KeptNamespace`]: a namespace kept alive by a bind mount of its file.

use super::Namespace;
use crate::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A namespace kept alive by a bind mount of its `/proc/<pid>/ns/<kind>` file, as
/// `ip netns add` does. It outlives the sandbox's processes until [`KeptNamespace::remove`].
///
/// Dropping this value does *not* remove the namespace: keeping it is the point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptNamespace {
    namespace: Namespace,
    path: PathBuf,
}

impl KeptNamespace {
    pub(crate) fn new(namespace: Namespace, path: PathBuf) -> KeptNamespace {
        KeptNamespace { namespace, path }
    }

    /// The kind of namespace kept.
    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// The file the namespace is bound on; give it to [`Sandbox::join`](crate::Sandbox::join).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's identity (the inode number of the bound file).
    pub fn id(&self) -> std::io::Result<u64> {
        Ok(std::fs::metadata(&self.path)?.ino())
    }

    /// Unmounts the namespace file and removes it. The namespace itself ends once nothing
    /// else (a process, another bind mount, an open fd) holds it.
    pub fn remove(self) -> Result<()> {
        nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
            Error::os(
                format!("unmount {}", self.path.display()),
                std::io::Error::from(e),
            )
        })?;
        std::fs::remove_file(&self.path)
            .map_err(|e| Error::os(format!("remove {}", self.path.display()), e))
    }
}
