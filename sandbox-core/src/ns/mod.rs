//! Namespace kinds; their identities (`ids.rs`) and namespaces kept alive by a bind mount
//! (`kept.rs`). The kinds import nothing of the crate's: the errors name them.

mod ids;
mod kept;

pub use ids::NamespaceIds;
pub use kept::KeptNamespace;

use serde::{Deserialize, Serialize};
use std::fmt;

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
    type Err = ParseNamespaceError;

    /// `net`, `mnt`, … (the `/proc/<pid>/ns/` names) or `Net`, `mount`, … (the variants').
    fn from_str(s: &str) -> Result<Namespace, ParseNamespaceError> {
        Namespace::ALL
            .into_iter()
            .find(|n| n.proc_name() == s || format!("{n:?}").eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseNamespaceError {
                input: s.to_owned(),
            })
    }
}

/// A name that is no namespace, refused by [`Namespace`]'s `FromStr`. Into
/// [`Error`](crate::Error) it becomes [`Error::Invalid`](crate::Error::Invalid) (`what` is
/// `"namespace"`), so `?` works where a [`Result`](crate::Result) is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not one of user, mnt, pid, uts, ipc, net, cgroup, time")]
pub struct ParseNamespaceError {
    input: String,
}

impl ParseNamespaceError {
    /// The name as it was given.
    pub fn input(&self) -> &str {
        &self.input
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
