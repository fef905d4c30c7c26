//! Namespace kinds, their identities, and namespaces kept alive by a bind mount.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A kind of Linux namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// User and group ids, capabilities (`CLONE_NEWUSER`).
    User,
    /// The mount table (`CLONE_NEWNS`).
    Mount,
    /// Process ids (`CLONE_NEWPID`).
    Pid,
    /// Hostname and domain name (`CLONE_NEWUTS`).
    Uts,
    /// System V IPC and POSIX message queues (`CLONE_NEWIPC`).
    Ipc,
    /// Network devices, addresses, ports (`CLONE_NEWNET`).
    Net,
    /// The view of the cgroup hierarchy (`CLONE_NEWCGROUP`).
    Cgroup,
    /// The offsets of `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` (`CLONE_NEWTIME`).
    Time,
}

impl Namespace {
    /// Every kind, user first: the order in which they are joined.
    pub const ALL: [Namespace; 8] = [
        Namespace::User,
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Cgroup,
        Namespace::Time,
    ];

    /// The `CLONE_NEW*` flag of this kind.
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => libc::CLONE_NEWTIME,
        }
    }

    /// The name of this kind's file under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Mount => "mnt",
            Namespace::Pid => "pid",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

impl std::str::FromStr for Namespace {
    type Err = Error;
    fn from_str(s: &str) -> Result<Namespace> {
        Namespace::ALL
            .into_iter()
            .find(|n| n.proc_name() == s || format!("{n:?}").eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::Invalid {
                what: "namespace",
                reason: format!("{s:?} is not one of user, mnt, pid, uts, ipc, net, cgroup, time"),
            })
    }
}

/// The identities (inode numbers of `/proc/<pid>/ns/*`) of a process's namespaces.
///
/// Two processes are in the same namespace of a kind exactly when these numbers are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceIds {
    /// User namespace.
    pub user: u64,
    /// Mount namespace.
    pub mnt: u64,
    /// PID namespace.
    pub pid: u64,
    /// UTS namespace.
    pub uts: u64,
    /// IPC namespace.
    pub ipc: u64,
    /// Network namespace.
    pub net: u64,
    /// Cgroup namespace.
    pub cgroup: u64,
    /// Time namespace.
    pub time: u64,
}

impl NamespaceIds {
    /// The namespaces of the calling process.
    pub fn of_self() -> std::io::Result<NamespaceIds> {
        Self::read(Path::new("/proc/self/ns"), false)
    }

    /// The namespaces of process `pid` (as seen in the caller's `/proc`).
    pub fn of_pid(pid: u32) -> std::io::Result<NamespaceIds> {
        Self::read(&PathBuf::from(format!("/proc/{pid}/ns")), false)
    }

    /// Reads the ids under `dir`; with `for_children`, the PID and time entries are taken
    /// from `pid_for_children` and `time_for_children` (for a process that entered them
    /// after its creation).
    pub(crate) fn read(dir: &Path, for_children: bool) -> std::io::Result<NamespaceIds> {
        let ino =
            |name: &str| -> std::io::Result<u64> { Ok(std::fs::metadata(dir.join(name))?.ino()) };
        let pid = if for_children {
            "pid_for_children"
        } else {
            "pid"
        };
        let time = if for_children {
            "time_for_children"
        } else {
            "time"
        };
        Ok(NamespaceIds {
            user: ino("user")?,
            mnt: ino("mnt")?,
            pid: ino(pid)?,
            uts: ino("uts")?,
            ipc: ino("ipc")?,
            net: ino("net")?,
            cgroup: ino("cgroup")?,
            time: ino(time)?,
        })
    }

    /// The id of one kind.
    pub fn get(&self, ns: Namespace) -> u64 {
        match ns {
            Namespace::User => self.user,
            Namespace::Mount => self.mnt,
            Namespace::Pid => self.pid,
            Namespace::Uts => self.uts,
            Namespace::Ipc => self.ipc,
            Namespace::Net => self.net,
            Namespace::Cgroup => self.cgroup,
            Namespace::Time => self.time,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_both_ways() {
        for ns in Namespace::ALL {
            assert_eq!(ns.proc_name().parse::<Namespace>().unwrap(), ns);
            assert_eq!(format!("{ns:?}").parse::<Namespace>().unwrap(), ns);
        }
        assert!("nope".parse::<Namespace>().is_err());
    }

    #[test]
    fn own_ids_are_readable_and_distinct_kinds() {
        let ids = NamespaceIds::of_self().unwrap();
        assert_ne!(ids.user, 0);
        assert_eq!(ids.get(Namespace::Net), ids.net);
    }
}
