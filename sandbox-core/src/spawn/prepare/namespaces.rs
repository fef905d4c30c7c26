//! Which namespaces the child joins and which it creates, and how: all in one `clone3`, or,
//! when it joins any, with `unshare` after joining them (its user namespace then last, so
//! the parent can write its maps), through a relay when it enters a PID namespace late.

use super::{ExecJoins, Identity};
use crate::idmap::IdPlan;
use crate::{sys, Error, Namespace, Result, Sandbox};
use sandbox_fs::Rootfs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The namespaces of one spawn.
pub(super) struct Namespaces {
    /// Namespaces to join, in order: `(fd, CLONE_NEW* type)`.
    pub joins: Vec<(RawFd, libc::c_int)>,
    /// Their kinds.
    joined: Vec<Namespace>,
    /// The namespaces the child makes (none for an exec into a running sandbox).
    created: Vec<Namespace>,
    /// An exec into a running sandbox.
    is_exec: bool,
    /// `CLONE_NEW*` flags given to `clone3`.
    pub clone_flags: u64,
    /// Namespaces created with `unshare` after the joins.
    pub unshare_flags: libc::c_int,
    /// The user namespace is made after the joins; the parent waits for it to write maps.
    pub late_userns: bool,
    /// The PID namespace is entered after the clone: a sibling runs in it.
    pub relay: bool,
}

impl Namespaces {
    /// Whether the child makes a namespace of this kind.
    pub fn creates(&self, ns: Namespace) -> bool {
        self.created.contains(&ns)
    }

    /// Whether the child joins an existing namespace of this kind.
    pub fn joined(&self, ns: Namespace) -> bool {
        self.joined.contains(&ns)
    }

    /// Whether the child joins namespaces (and makes its own after them).
    pub fn late(&self) -> bool {
        !self.joins.is_empty()
    }

    /// Whether the child waits for the parent's GO before going on: for its id maps (a user
    /// namespace made in the clone), a bridge to connect, or a cgroup to be moved into. On
    /// the late path (joins first) only the cgroup can be pending, and a late user
    /// namespace's maps come with a GO of their own.
    pub fn waits_for_go(&self, bridged: bool, cgroup_move: bool) -> bool {
        if self.late() {
            cgroup_move && !self.late_userns
        } else {
            self.creates(Namespace::User) || bridged || cgroup_move
        }
    }

    /// Whether this is an exec into a running sandbox.
    pub fn is_exec(&self) -> bool {
        self.is_exec
    }
}

/// Checks the sandbox's namespace settings against each other, opens the namespaces to
/// join (or takes an exec's), and works out the flags. The descriptors the child needs go
/// to `child_fds`.
pub(super) fn plan(
    sandbox: &Sandbox,
    exec: Option<ExecJoins>,
    child_fds: &mut Vec<OwnedFd>,
) -> Result<Namespaces> {
    let is_exec = exec.is_some();
    let mut joins: Vec<(RawFd, libc::c_int)> = Vec::new();
    let joined = match exec {
        Some(exec) => {
            let mut kinds = Vec::new();
            for (ns, fd) in exec {
                joins.push((fd.as_raw_fd(), ns.clone_flag()));
                kinds.push(ns);
                child_fds.push(fd);
            }
            kinds
        }
        None => {
            let kinds = check_conflicts(sandbox)?;
            open_joins(sandbox, &mut joins, child_fds)?;
            kinds
        }
    };
    let created: Vec<Namespace> = Namespace::ALL
        .into_iter()
        .filter(|&ns| !is_exec && sandbox.creates(ns))
        .collect();
    let late = !joins.is_empty();
    let new_user = created.contains(&Namespace::User);
    let mut new_flags: libc::c_int = 0;
    for ns in [
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
    ] {
        if created.contains(&ns) {
            new_flags |= ns.clone_flag();
        }
    }
    let (clone_flags, unshare_flags, late_userns) = if late {
        (0u64, new_flags, new_user)
    } else {
        let user = if new_user { libc::CLONE_NEWUSER } else { 0 };
        ((new_flags | user) as u64, 0, false)
    };
    let new_pid = created.contains(&Namespace::Pid);
    let relay = (late && new_pid) || joined.contains(&Namespace::Pid);
    Ok(Namespaces {
        joins,
        joined,
        created,
        is_exec,
        clone_flags,
        unshare_flags,
        late_userns,
        relay,
    })
}

/// Settings that cannot go together; returns the kinds of namespace joined.
fn check_conflicts(sandbox: &Sandbox) -> Result<Vec<Namespace>> {
    let mut joined: Vec<Namespace> = Vec::new();
    let all_joins = sandbox.joins();
    for j in &all_joins {
        if sandbox.shared.contains(&j.namespace) {
            return Err(Error::Conflict(format!(
                "the {} namespace is both shared and joined",
                j.namespace
            )));
        }
        if joined.contains(&j.namespace) {
            return Err(Error::Conflict(format!(
                "the {} namespace is joined twice",
                j.namespace
            )));
        }
        joined.push(j.namespace);
    }
    if sandbox.hostname.is_some() && !sandbox.creates(Namespace::Uts) {
        return Err(Error::Conflict(
            "a hostname needs a UTS namespace of the sandbox's own".into(),
        ));
    }
    if (!sandbox.uid_map.is_empty() || !sandbox.gid_map.is_empty())
        && !sandbox.creates(Namespace::User)
    {
        return Err(Error::Conflict(
            "id maps need a user namespace of the sandbox's own".into(),
        ));
    }
    if sandbox.rootfs != Rootfs::Host && !sandbox.creates(Namespace::Mount) {
        return Err(Error::Conflict(
            "a root filesystem needs a mount namespace of the sandbox's own".into(),
        ));
    }
    if sandbox.network.new_namespace() && sandbox.shared.contains(&Namespace::Net) {
        return Err(Error::Conflict(format!(
            "network {} needs a network namespace of the sandbox's own",
            sandbox.network
        )));
    }
    if matches!(sandbox.network, sandbox_net::Network::Bridge(_)) && !all_joins.is_empty() {
        return Err(Error::Conflict(
            "a bridged network cannot be combined with joined namespaces (yet)".into(),
        ));
    }
    Ok(joined)
}

/// Opens the namespaces the sandbox joins, user first, checking each file is one of the
/// kind it claims to be.
fn open_joins(
    sandbox: &Sandbox,
    joins: &mut Vec<(RawFd, libc::c_int)>,
    child_fds: &mut Vec<OwnedFd>,
) -> Result<()> {
    let mut order = sandbox.joins();
    order.sort_by_key(|j| j.namespace.index());
    for j in order {
        let err = |reason: String| Error::Join {
            namespace: j.namespace,
            path: j.path.clone(),
            reason,
        };
        let f = std::fs::File::open(&j.path).map_err(|e| err(e.to_string()))?;
        let fd = sys::above_stdio(f.into()).map_err(|e| err(e.to_string()))?;
        let ty =
            sys::ns_type(fd.as_fd()).map_err(|e| err(format!("not a namespace file ({e})")))?;
        if ty != j.namespace.clone_flag() {
            return Err(err("a namespace of another kind".into()));
        }
        joins.push((fd.as_raw_fd(), ty));
        child_fds.push(fd);
    }
    Ok(())
}

/// The ids the child switches to: root of the user namespace it makes (with its maps'
/// group rules) or joins. In the caller's it keeps the caller's ids but drops the
/// supplementary groups (as runc does; where the caller may not, they stay).
pub(super) fn identity(ids: Option<&IdPlan>, joined_user: bool) -> Option<Identity> {
    Some(match (ids, joined_user) {
        (Some(p), _) => Identity {
            uid: 0,
            gid: 0,
            set_ids: true,
            clear_groups: p.clear_groups,
            groups_best_effort: p.groups_best_effort,
        },
        (None, true) => Identity {
            uid: 0,
            gid: 0,
            set_ids: true,
            clear_groups: true,
            groups_best_effort: true,
        },
        (None, false) => Identity {
            uid: 0,
            gid: 0,
            set_ids: false,
            clear_groups: true,
            groups_best_effort: true,
        },
    })
}
