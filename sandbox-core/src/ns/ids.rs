//! [`NamespaceIds`]: which namespaces a process is in, by their inode numbers.

use super::Namespace;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
