//! The generated `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, bound read-only over the
//! tree's, and whether a tree has entries for them.

use super::builder::Builder;
use super::{InRoot, PlanOptions, Target, TargetKind};
use crate::kernel::{
    MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_NOEXEC as NOEXEC, MOUNT_ATTR_NOSUID as NOSUID,
    MOUNT_ATTR_RDONLY as RDONLY,
};
use std::path::Path;

impl Builder {
    /// Generated `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, bound read-only where
    /// the root has (or can take) them.
    pub(super) fn etc(&mut self, opts: &PlanOptions<'_>) {
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
}

/// The files every new root gets generated (bound over what the tree has).
pub(super) const ETC_FILES: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// Whether a tree has no entry for one of [`ETC_FILES`] it would get (`/etc/hostname` only
/// with a hostname): its `/etc` resolved inside it, as the sandbox would, the file itself
/// not followed (a dangling link is an entry a layer could not replace either).
pub(super) fn lacks_etc_files(root: &Path, hostname: bool) -> bool {
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
