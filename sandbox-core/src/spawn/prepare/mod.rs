//! The parent's half of a spawn, before any process exists: every check, and every byte the
//! child will need, computed here where allocating and failing are allowed.
//!
//! [`plan`] holds what the child reads ([`ChildPlan`]); [`program`] checks the program's
//! strings; [`fds`] arranges its descriptors.

mod fds;
mod plan;
mod program;

use super::stack::Stacks;
use crate::command::{Stdio, StdioKind};
use crate::idmap::{self, Caller, IdPlan};
use crate::sandbox::DEFAULT_HOSTNAME;
use crate::{sys, Command, Error, Namespace, Result};
use fds::{passed_fds, stdio};
pub(crate) use plan::{CStrArray, ChildPlan, Identity, IfConfig, MAX_KEEP};
use program::{check_hostname, check_program, cstring, environment, time_offsets};
use sandbox_fs::{MountPlan, PlanOptions, Rootfs};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// The parent's ends, and what the parent does between `clone3` and releasing the child.
#[derive(Debug)]
pub(crate) struct Parent {
    pub status: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The caller's side of the sandbox's pty.
    pub pty: Option<OwnedFd>,
    pub ids: Option<IdPlan>,
    pub late_userns: bool,
    pub kill_on_drop: bool,
    /// The sandbox's cgroup (made before the clone; the child is moved in before GO).
    pub cgroup: Option<crate::cgroup::Cgroup>,
}

pub(crate) struct Prepared {
    pub plan: Box<ChildPlan>,
    /// The child's ends of pipes and the joined namespace fds: the parent closes its copies
    /// right after `clone3`.
    pub child_fds: Vec<OwnedFd>,
    /// The parent's end of the sync channel.
    pub sync: OwnedFd,
    pub parent: Parent,
}

/// The caller's dumpable setting, as it was before the first spawn. Read once: a child that
/// changes ids makes the (shared) memory non-dumpable for a moment before putting this
/// value back, so a later reading could catch that moment.
fn caller_dumpable() -> libc::c_int {
    static DUMPABLE: std::sync::OnceLock<libc::c_int> = std::sync::OnceLock::new();
    // SAFETY: PR_GET_DUMPABLE takes no argument and returns the setting.
    *DUMPABLE.get_or_init(|| unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }.max(0))
}

/// What an `exec` into a running sandbox joins: `(kind, namespace file)` in join order.
pub(crate) type ExecJoins = Vec<(Namespace, OwnedFd)>;

/// Checks `cmd` and computes everything for spawning it. `exec` is set when the command runs
/// inside an existing sandbox (its namespaces' fds, already opened).
#[cfg(test)]
pub(crate) fn prepare(cmd: &Command, exec: Option<ExecJoins>) -> Result<Prepared> {
    prepare_with(cmd, &cmd.sandbox, exec, &NetPrep::default(), false)
}

/// What the network setup decided before the spawn: the sandbox's own address on a
/// bridge, and the names `/etc/hosts` lists.
#[derive(Debug, Default)]
pub(crate) struct NetPrep {
    pub own_address: Option<std::net::IpAddr>,
    pub hosts: Vec<(String, std::net::IpAddr)>,
    /// The parent configures the network between the clone and GO.
    pub bridged: bool,
    /// What the child sets on `eth0`: address, prefix length, gateway.
    pub eth0: Option<(std::net::Ipv4Addr, u8, std::net::Ipv4Addr)>,
    /// The sandbox's `/etc/resolv.conf` when its bridge has a way out (NAT).
    pub resolv_conf: Option<Vec<u8>>,
}

/// [`prepare`], with the network's part decided.
/// `join_cgroup`: the child (an exec into a running sandbox) is moved into the sandbox's
/// cgroup between the clone and GO.
pub(crate) fn prepare_with(
    cmd: &Command,
    sandbox: &crate::Sandbox,
    exec: Option<ExecJoins>,
    net: &NetPrep,
    join_cgroup: bool,
) -> Result<Prepared> {
    let is_exec = exec.is_some();
    sandbox.limits.check()?;
    let mut rlimits = [(0u32, 0u64, 0u64); 8];
    let rl = sandbox.limits.rlimits();
    let rlimits_len = rl.len().min(rlimits.len());
    rlimits[..rlimits_len].copy_from_slice(&rl[..rlimits_len]);
    let program = check_program(&cmd.program)?;
    let seccomp = sandbox.seccomp.compile()?;
    let caps_keep = crate::security::capability_mask(&sandbox.capabilities);
    let mut argv = vec![program.clone()];
    for a in &cmd.args {
        argv.push(cstring("argument", a)?);
    }
    let cwd = match &cmd.cwd {
        None => CString::new("/").unwrap_or_default(),
        Some(d) if d.is_absolute() => cstring("working directory", d.as_os_str())?,
        Some(d) => {
            return Err(Error::Invalid {
                what: "working directory",
                reason: format!("{} is not an absolute path", d.display()),
            })
        }
    };

    let mut child_fds: Vec<OwnedFd> = Vec::new();
    let mut joins: Vec<(RawFd, libc::c_int)> = Vec::new();
    let mut joined_kinds: Vec<Namespace> = Vec::new();

    if let Some(exec) = exec {
        for (ns, fd) in exec {
            joins.push((fd.as_raw_fd(), ns.clone_flag()));
            joined_kinds.push(ns);
            child_fds.push(fd);
        }
    } else {
        // Conflicts between settings.
        let all_joins = sandbox.joins();
        for j in &all_joins {
            if sandbox.shared.contains(&j.namespace) {
                return Err(Error::Conflict(format!(
                    "the {} namespace is both shared and joined",
                    j.namespace
                )));
            }
            if joined_kinds.contains(&j.namespace) {
                return Err(Error::Conflict(format!(
                    "the {} namespace is joined twice",
                    j.namespace
                )));
            }
            joined_kinds.push(j.namespace);
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
        // Open the namespaces to join, user first.
        let mut order = all_joins.clone();
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
    }

    let creates = |ns: Namespace| !is_exec && sandbox.creates(ns);
    let joined = |ns: Namespace| joined_kinds.contains(&ns);
    let late = !joins.is_empty();
    let new_user = creates(Namespace::User);
    let mut new_flags: libc::c_int = 0;
    for ns in [
        Namespace::Mount,
        Namespace::Pid,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
    ] {
        if creates(ns) {
            new_flags |= ns.clone_flag();
        }
    }
    let (clone_flags, unshare_flags, late_userns) = if late {
        (0u64, new_flags, new_user)
    } else {
        let user = if new_user { libc::CLONE_NEWUSER } else { 0 };
        ((new_flags | user) as u64, 0, false)
    };
    let new_pid = creates(Namespace::Pid);
    let relay = (late && new_pid) || joined(Namespace::Pid);
    // Is the init (or the program, without one) PID 1 of a namespace?
    let pid1 = new_pid;
    let init = !is_exec && sandbox.init;

    let ids = if new_user {
        Some(idmap::plan(sandbox, &Caller::current())?)
    } else {
        None
    };
    let identity = match (&ids, joined(Namespace::User)) {
        (Some(p), _) => Some(Identity {
            uid: 0,
            gid: 0,
            clear_groups: p.clear_groups,
            groups_best_effort: p.groups_best_effort,
        }),
        (None, true) => Some(Identity {
            uid: 0,
            gid: 0,
            clear_groups: true,
            groups_best_effort: true,
        }),
        (None, false) => None,
    };

    let hostname = if creates(Namespace::Uts) {
        let h = sandbox.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME);
        Some((check_hostname(h)?, h.to_string()))
    } else {
        None
    };
    let envp = environment(cmd, hostname.as_ref().map(|(_, h)| h.as_str()))?;

    let mut mounts = if creates(Namespace::Mount) {
        // Overlay layers are mounted idmapped when the caller can (it is root) and the
        // sandbox's root is not the host's: the host's root-owned files then belong to the
        // sandbox's root inside, and copy-up works.
        let overlay = sandbox.rootfs.is_layered(hostname.is_some());
        let mapping = match (&ids, overlay) {
            (Some(p), true) => idmap::mapping_userns(p).transpose()?,
            _ => None,
        };
        sandbox_fs::plan(
            &sandbox.rootfs,
            &PlanOptions {
                new_pid_namespace: new_pid,
                new_net_namespace: creates(Namespace::Net),
                hostname: hostname.as_ref().map(|(_, h)| h.as_str()),
                mounts: &sandbox.mounts,
                idmap_userns: mapping.as_ref().map(|(fd, _)| fd.as_fd()),
                root_owner: mapping.as_ref().map(|(_, owner)| *owner),
                own_address: net.own_address,
                hosts: &net.hosts,
                resolv_conf: net.resolv_conf.as_deref(),
            },
        )?
    } else {
        if !is_exec && !sandbox.mounts.is_empty() {
            return Err(Error::Conflict(
                "mounts need a mount namespace of the sandbox's own".into(),
            ));
        }
        MountPlan::default()
    };
    let mount_fds = mounts.take_fds();

    let time_offsets = if is_exec {
        None
    } else {
        time_offsets(sandbox)?
    };

    // Descriptors.
    let is_pty = |s: Option<&Stdio>| matches!(s, Some(Stdio(StdioKind::Pty)));
    let pty_slots = [&cmd.stdin, &cmd.stdout, &cmd.stderr].map(|s| is_pty(s.as_ref()));
    let (pty_master, pty_slave) = if pty_slots.contains(&true) {
        let (m, s) = crate::pty::open().map_err(|e| Error::os("open a pseudo-terminal", e))?;
        let raw = s.as_raw_fd();
        child_fds.push(s);
        (Some(m), raw)
    } else {
        (None, -1)
    };
    let controlling_tty = pty_slots
        .iter()
        .position(|&p| p)
        .map_or(-1, |i| i as libc::c_int);
    let (stdin, parent_stdin) = stdio(cmd.stdin.as_ref(), true, &mut child_fds, pty_slave)?;
    let (stdout, parent_stdout) = stdio(cmd.stdout.as_ref(), false, &mut child_fds, pty_slave)?;
    let (stderr, parent_stderr) = stdio(cmd.stderr.as_ref(), false, &mut child_fds, pty_slave)?;
    // Descriptors passed on purpose, and the floor above which the child's own descriptors
    // live, so that placing them never overwrites one the child still needs.
    let (pass, pass_len, pass_floor) = passed_fds(cmd, &mut child_fds)?;
    let (sync_parent, sync_child) = sys::socketpair().map_err(|e| Error::os("socketpair", e))?;
    let sync_child =
        sys::at_least(sync_child, pass_floor).map_err(|e| Error::os("socketpair", e))?;
    let sync_fd = sync_child.as_raw_fd();
    child_fds.push(sync_child);
    let (status_parent, status_fd) = if init {
        let (r, w) = sys::pipe().map_err(|e| Error::os("pipe", e))?;
        let w = sys::at_least(w, pass_floor).map_err(|e| Error::os("pipe", e))?;
        let raw = w.as_raw_fd();
        child_fds.push(w);
        (Some(r), raw)
    } else {
        (None, -1)
    };
    let mut keep = [-1; MAX_KEEP];
    let init_fd = if init {
        super::init_binary::memfd()
            .map_err(|e| Error::os("load the built-in init into a memfd", e))?
            .as_raw_fd()
    } else {
        -1
    };
    let mut keep_list: Vec<RawFd> = joins.iter().map(|(fd, _)| *fd).collect();
    keep_list.extend(mount_fds.iter().map(|fd| fd.as_raw_fd()));
    child_fds.extend(mount_fds);
    keep_list.push(sync_fd);
    if status_fd >= 0 {
        keep_list.push(status_fd);
    }
    if init_fd >= 0 {
        keep_list.push(init_fd);
    }
    let (landlock_fd, landlock_rules) = match sandbox.landlock.as_ref().map(|l| l.prepare()) {
        Some(Ok(Some(plan))) => {
            let raw = plan.ruleset.as_raw_fd();
            keep_list.push(raw);
            child_fds.push(plan.ruleset);
            (raw, plan.rules)
        }
        Some(Err(e)) => return Err(e),
        _ => (-1, Vec::new()),
    };
    keep_list.extend(pass.iter().take(pass_len).map(|(fd, _)| *fd));
    keep_list.sort_unstable();
    keep_list.dedup();
    if keep_list.len() > MAX_KEEP {
        return Err(Error::Invalid {
            what: "namespaces to join, overlay layers and passed descriptors",
            reason: format!("more than {} descriptors to keep", MAX_KEEP),
        });
    }
    keep[..keep_list.len()].copy_from_slice(&keep_list);

    // The init's command line: sandbox-init STATUS_FD SYNC_FD FLAGS EXEC_STAGE PROGRAM ARGS...
    // FLAGS: 1 = be a subreaper, 2 = the program dies with the init (both when the init is
    // not PID 1 of a namespace).
    let init_argv = if init {
        let flags = if pid1 { 0 } else { 3 };
        let mut v: Vec<CString> = [
            "sandbox-init".to_string(),
            status_fd.to_string(),
            sync_fd.to_string(),
            flags.to_string(),
            (crate::error::Stage::Exec as u32).to_string(),
        ]
        .into_iter()
        .map(|a| CString::new(a).unwrap_or_default())
        .collect();
        v.extend(argv.iter().cloned());
        v
    } else {
        Vec::new()
    };
    // Last of the checks: a cgroup made now is removed again on any error (its Drop).
    let cgroup = if !is_exec && sandbox.limits.needs_cgroup() {
        Some(crate::cgroup::Cgroup::create(&sandbox.limits)?)
    } else {
        None
    };
    // v2: the child is born in its cgroup; v1: the parent moves it in before GO.
    let into_cgroup = match cgroup.as_ref().and_then(|c| c.clone_into()) {
        Some(fd) => {
            let fd = fd.map_err(|e| Error::os("open the sandbox's cgroup", e))?;
            let raw = fd.as_raw_fd();
            child_fds.push(fd);
            raw
        }
        None => -1,
    };
    let cgroup_needs_move = (cgroup.is_some() && into_cgroup < 0) || join_cgroup;
    let stacks = Stacks::get().map_err(|e| Error::os("map the child's stacks", e))?;
    let parent_dumpable = caller_dumpable();

    let share_memory = joins.is_empty();
    let plan = ChildPlan {
        clone_flags,
        share_memory,
        sync_fd,
        status_fd,
        stdio: [stdin, stdout, stderr],
        controlling_tty,
        pass,
        pass_len,
        pass_floor,
        keep,
        keep_len: keep_list.len(),
        joins,
        // The parent writes id maps, connects a bridged network and moves the child into
        // its cgroup before GO.
        wait_go: ((new_user || net.bridged || cgroup_needs_move) && !late)
            || (cgroup_needs_move && late && !late_userns),
        late_userns,
        unshare_flags,
        identity,
        parent_dumpable,
        relay,
        time_ns: creates(Namespace::Time),
        time_offsets,
        cgroup_ns: creates(Namespace::Cgroup),
        hostname: hostname.map(|(c, _)| c),
        lo_up: creates(Namespace::Net) && sandbox.network.loopback_up(),
        eth0: net.eth0.map(|(addr, prefix, gw)| {
            let mut name = [0u8; 16];
            name[..4].copy_from_slice(b"eth0");
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IfConfig {
                name,
                addr: u32::from(addr).to_be(),
                mask: mask.to_be(),
                gateway: u32::from(gw).to_be(),
            }
        }),
        mounts,
        init_fd,
        init_argv: CStrArray::new(init_argv),
        program_pdeathsig: !pid1,
        into_cgroup,
        rlimits,
        rlimits_len,
        caps_keep,
        cap_last: crate::security::last_capability(),
        landlock_fd,
        landlock_rules,
        seccomp,
        program,
        argv: CStrArray::new(argv),
        envp,
        cwd,
        stacks,
    };
    Ok(Prepared {
        plan: Box::new(plan),
        child_fds,
        sync: sync_parent,
        parent: Parent {
            status: status_parent,
            stdin: parent_stdin,
            stdout: parent_stdout,
            stderr: parent_stderr,
            pty: pty_master,
            ids,
            late_userns,
            kill_on_drop: cmd.get_kill_on_drop(),
            cgroup,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sandbox;

    fn err(cmd: &Command) -> String {
        match prepare(cmd, None) {
            Ok(_) => panic!("prepared"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn relative_and_empty_programs_are_rejected() {
        assert!(err(&Command::new("bin/true")).contains("not an absolute path"));
        assert!(err(&Command::new("")).contains("empty path"));
    }

    #[test]
    fn nul_bytes_are_rejected() {
        let mut c = Command::new("/bin/echo");
        c.arg("a\0b");
        assert!(err(&c).contains("argument contains a NUL byte"));
        let mut c = Command::new("/bin/echo");
        c.env("K", "v\0");
        assert!(err(&c).contains("NUL"));
    }

    #[test]
    fn hostname_limits() {
        let long = "x".repeat(65);
        assert!(err(&Sandbox::new().hostname(long).command("/bin/true")).contains("64 bytes"));
        assert!(err(&Sandbox::new().hostname("a\0b").command("/bin/true")).contains("NUL"));
        assert!(prepare(
            &Sandbox::new().hostname("x".repeat(64)).command("/bin/true"),
            None
        )
        .is_ok());
    }

    #[test]
    fn conflicts_are_typed_errors() {
        let s = Sandbox::new().share(Namespace::Uts).hostname("h");
        assert!(err(&s.command("/bin/true")).contains("UTS namespace"));
        let s = Sandbox::new()
            .share(Namespace::Mount)
            .rootfs(Rootfs::dir("/"));
        assert!(err(&s.command("/bin/true")).contains("mount namespace"));
        let s = Sandbox::new()
            .share(Namespace::Time)
            .time_offset(crate::Clock::Monotonic, 10);
        assert!(err(&s.command("/bin/true")).contains("time namespace"));
    }

    #[test]
    fn joining_a_missing_or_wrong_namespace_fails_before_spawning() {
        let s = Sandbox::new().join(Namespace::Net, "/no/such/ns");
        let e = err(&s.command("/bin/true"));
        assert!(e.contains("join net namespace /no/such/ns"), "{e}");
        let s = Sandbox::new().join(Namespace::Net, "/proc/self/ns/uts");
        assert!(err(&s.command("/bin/true")).contains("another kind"));
        let s = Sandbox::new().join(Namespace::Net, "/etc/hostname");
        assert!(err(&s.command("/bin/true")).contains("not a namespace file"));
    }

    #[test]
    fn environment_is_minimal_by_default() {
        let mut c = Sandbox::new().hostname("box").command("/bin/env");
        c.env("A", "1").env_remove("HOME");
        let p = prepare(&c, None).unwrap();
        let env = format!("{:?}", p.plan.envp);
        assert!(env.contains("\"A=1\""), "{env}");
        assert!(env.contains("\"HOSTNAME=box\""), "{env}");
        assert!(env.contains("PATH="), "{env}");
        assert!(!env.contains("HOME="), "{env}");
        let mut c = Command::new("/bin/env");
        c.env_clear().env("ONLY", "me");
        let p = prepare(&c, None).unwrap();
        assert_eq!(format!("{:?}", p.plan.envp), "[\"ONLY=me\"]");
    }

    #[test]
    fn negative_clock_is_rejected() {
        let s = Sandbox::new().time_offset(crate::Clock::Boottime, -i64::MAX);
        assert!(err(&s.command("/bin/true")).contains("negative"));
    }

    #[test]
    fn fast_path_clones_every_namespace_at_once() {
        let p = prepare(&Command::new("/bin/true"), None).unwrap();
        let want = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWUSER;
        assert_eq!(p.plan.clone_flags, want as u64);
        assert!(!p.plan.relay && !p.plan.late_userns && p.plan.wait_go);
        assert!(p.plan.keep[..p.plan.keep_len]
            .windows(2)
            .all(|w| w[0] < w[1]));
        assert!(p.plan.keep[..p.plan.keep_len].iter().all(|&fd| fd > 2));
    }
}
