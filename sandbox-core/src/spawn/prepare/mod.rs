//! The parent's half of a spawn, before any process exists: every check, and every byte the
//! child will need, computed here where allocating and failing are allowed.
//!
//! [`prepare_with`] reads as its steps: the rlimits and the program's strings
//! (`program.rs`), which namespaces are joined and created (`namespaces.rs`), the id maps,
//! the mount plan (made by `sandbox-fs`), the descriptors (`fds.rs`), landlock, the init's
//! command line and the cgroup; `plan.rs` holds what the child reads ([`ChildPlan`]).

mod fds;
mod namespaces;
mod plan;
mod program;

use super::stack::Stacks;
use super::timeline::Recorder;
use crate::idmap::{self, Caller, IdPlan};
use crate::sandbox::DEFAULT_HOSTNAME;
use crate::{Command, Error, Namespace, Result};
pub(crate) use plan::{CStrArray, ChildPlan, Identity, IfConfig, Rlimits};
use program::{
    arguments, check_hostname, check_program, environment, init_arguments, time_offsets,
    working_directory,
};
use sandbox_fs::plan::{MountPlan, PlanOptions};
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
    pub cgroup: Option<crate::limits::cgroup::Cgroup>,
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
    let mut timeline = Recorder::start();
    prepare_with(
        cmd,
        &cmd.sandbox,
        exec,
        &NetPrep::default(),
        false,
        &mut timeline,
    )
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

/// Checks `cmd` and computes everything for spawning it, with the network's part decided.
/// `join_cgroup`: the child (an exec into a running sandbox) is moved into the sandbox's
/// cgroup between the clone and GO.
pub(crate) fn prepare_with(
    cmd: &Command,
    sandbox: &crate::Sandbox,
    exec: Option<ExecJoins>,
    net: &NetPrep,
    join_cgroup: bool,
    timeline: &mut Recorder,
) -> Result<Prepared> {
    let is_exec = exec.is_some();
    let (rlimits, rlimits_len) = rlimits(&sandbox.limits)?;
    let program = check_program(&cmd.program)?;
    let seccomp = sandbox.seccomp.compile()?;
    let caps_keep = crate::security::capability_mask(&sandbox.capabilities);
    let argv = arguments(&program, cmd)?;
    let cwd = working_directory(cmd)?;
    timeline.mark("caller: program, limits and seccomp checked");

    let mut child_fds: Vec<OwnedFd> = Vec::new();
    let ns = namespaces::plan(sandbox, exec, &mut child_fds)?;
    let ids = if ns.creates(Namespace::User) {
        Some(idmap::plan(sandbox, &Caller::current())?)
    } else {
        None
    };
    let identity = namespaces::identity(ids.as_ref(), ns.joined(Namespace::User));
    timeline.mark("caller: namespaces and id maps planned");
    let hostname = ns
        .creates(Namespace::Uts)
        .then(|| sandbox.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME));
    let hostname_c = hostname.map(check_hostname).transpose()?;
    let envp = CStrArray::new(environment(cmd, hostname)?);
    let mut mounts = mount_plan(sandbox, &ns, ids.as_ref(), hostname, net)?;
    let mount_fds = mounts.take_fds();
    timeline.mark("caller: mount plan made");
    let time_offsets = if is_exec {
        None
    } else {
        time_offsets(sandbox)?
    };

    let init = !is_exec && sandbox.init;
    // A pooled sandbox's init waits for its program on the first passed descriptor.
    let serve = match (cmd.serve, init, cmd.pass.first()) {
        (false, _, _) => None,
        (true, true, Some((target, _))) => Some(*target),
        (true, ..) => {
            return Err(Error::Conflict(
                "a pool needs the built-in init (Sandbox::init(true)), which runs its programs"
                    .into(),
            ))
        }
    };
    let fds = fds::descriptors(cmd, init, &mut child_fds)?;
    let landlock = landlock(sandbox, &mut child_fds)?;
    let joined = ns.joins.iter().map(|(fd, _)| *fd);
    let layers = mount_fds.iter().map(|fd| fd.as_raw_fd());
    let (keep, keep_len) = fds::keep_list(joined.chain(layers), &fds, landlock.0)?;
    child_fds.extend(mount_fds);
    timeline.mark("caller: descriptors made");

    let pid1 = ns.creates(Namespace::Pid);
    let init_argv = init_arguments(init, pid1, (fds.status_fd, fds.sync_fd), serve, &argv);
    // Last of the checks: a cgroup made now is removed again on any error (its Drop).
    let (cgroup, into_cgroup) = cgroup(sandbox, is_exec, &mut child_fds)?;
    let cgroup_needs_move = (cgroup.is_some() && into_cgroup < 0) || join_cgroup;
    if cgroup.is_some() {
        timeline.mark("caller: cgroup made");
    }
    let stacks = Stacks::get().map_err(|e| Error::os("map the child's stacks", e))?;

    let late = ns.late();
    let plan = ChildPlan {
        clone_flags: ns.clone_flags,
        share_memory: !late,
        sync_fd: fds.sync_fd,
        status_fd: fds.status_fd,
        stdio: fds.stdio,
        controlling_tty: fds.controlling_tty,
        pass: fds.pass,
        pass_len: fds.pass_len,
        pass_floor: fds.pass_floor,
        keep,
        keep_len,
        // The parent writes id maps, connects a bridged network and moves the child into
        // its cgroup before GO.
        wait_go: ns.waits_for_go(net.bridged, cgroup_needs_move),
        late_userns: ns.late_userns,
        unshare_flags: ns.unshare_flags,
        identity,
        parent_dumpable: caller_dumpable(),
        relay: ns.relay,
        time_ns: ns.creates(Namespace::Time),
        time_offsets,
        cgroup_ns: ns.creates(Namespace::Cgroup),
        hostname: hostname_c,
        lo_up: ns.creates(Namespace::Net) && sandbox.network.loopback_up(),
        eth0: net
            .eth0
            .map(|(addr, prefix, gw)| IfConfig::eth0(addr, prefix, gw)),
        mounts,
        init_fd: fds.init_fd,
        init_argv: CStrArray::new(init_argv),
        program_pdeathsig: !pid1,
        into_cgroup,
        rlimits,
        rlimits_len,
        caps_keep,
        cap_last: crate::security::last_capability(),
        landlock_fd: landlock.0,
        landlock_rules: landlock.1,
        seccomp,
        program,
        argv: CStrArray::new(argv),
        envp,
        cwd,
        joins: ns.joins,
        stacks,
    };
    Ok(Prepared {
        plan: Box::new(plan),
        child_fds,
        sync: fds.sync_parent,
        parent: Parent {
            status: fds.status_parent,
            stdin: fds.parent_stdin,
            stdout: fds.parent_stdout,
            stderr: fds.parent_stderr,
            pty: fds.pty_master,
            ids,
            late_userns: ns.late_userns,
            kill_on_drop: cmd.get_kill_on_drop(),
            cgroup,
        },
    })
}

/// What a pooled sandbox's init needs to start a program (`spawn/serve.rs`): its `argv`,
/// environment and working directory, checked as a spawn checks them, and its stdio.
pub(crate) struct Request {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// What the init places on 0, 1 and 2.
    pub stdio: [OwnedFd; 3],
    /// The parent's ends of piped streams.
    pub parent: [Option<OwnedFd>; 3],
    /// A reused pool's: the sandbox is reset after the program and serves again.
    pub reuse: bool,
    /// The directories the reset empties (a reused pool's writable places).
    pub reset: Vec<CString>,
}

/// Checks `cmd` for a run in an existing sandbox of `sandbox`'s description (a pooled
/// one): only its process side counts — program, arguments, environment, working
/// directory, stdio. A pseudo-terminal and passed descriptors are not offered there.
pub(crate) fn request(cmd: &Command, sandbox: &crate::Sandbox) -> Result<Request> {
    let program = check_program(&cmd.program)?;
    let argv = arguments(&program, cmd)?;
    let cwd = working_directory(cmd)?;
    let hostname = sandbox
        .creates(Namespace::Uts)
        .then(|| sandbox.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME));
    let envp = environment(cmd, hostname)?;
    check_request(cmd)?;
    let (stdio, parent) = fds::request_stdio(cmd)?;
    Ok(Request {
        argv,
        envp,
        cwd,
        stdio,
        parent,
        reuse: false,
        reset: Vec::new(),
    })
}

/// Refuses what a pooled sandbox's init does not offer: a pseudo-terminal (it would have
/// to make it the controlling terminal of a new session) and passed descriptors.
pub(crate) fn check_request(cmd: &Command) -> Result<()> {
    if !cmd.pass.is_empty() {
        return Err(Error::Unsupported(
            "passing descriptors (Command::pass_fd) to a pooled sandbox's program".into(),
        ));
    }
    let pty =
        |s: &Option<crate::Stdio>| matches!(s, Some(crate::Stdio(crate::command::StdioKind::Pty)));
    if pty(&cmd.stdin) || pty(&cmd.stdout) || pty(&cmd.stderr) {
        return Err(Error::Unsupported(
            "a pseudo-terminal (Stdio::pty) for a pooled sandbox's program".into(),
        ));
    }
    Ok(())
}

/// The sandbox's rlimits, checked, as the child sets them: `(RLIMIT_*, soft, hard)`.
fn rlimits(limits: &crate::Limits) -> Result<(Rlimits, usize)> {
    limits.check()?;
    let mut rlimits = [(0u32, 0u64, 0u64); 8];
    let rl = limits.rlimits();
    let len = rl.len().min(rlimits.len());
    rlimits[..len].copy_from_slice(&rl[..len]);
    Ok((rlimits, len))
}

/// The mount steps of a sandbox with a mount namespace of its own (none otherwise).
fn mount_plan(
    sandbox: &crate::Sandbox,
    ns: &namespaces::Namespaces,
    ids: Option<&IdPlan>,
    hostname: Option<&str>,
    net: &NetPrep,
) -> Result<MountPlan> {
    if !ns.creates(Namespace::Mount) {
        if !ns.is_exec() && !sandbox.mounts.is_empty() {
            return Err(Error::Conflict(
                "mounts need a mount namespace of the sandbox's own".into(),
            ));
        }
        return Ok(MountPlan::default());
    }
    // Overlay layers are mounted idmapped when the caller can (it is root) and the
    // sandbox's root is not the host's: the host's root-owned files then belong to the
    // sandbox's root inside, and copy-up works.
    let overlay = sandbox.rootfs.is_layered(hostname.is_some());
    let mapping = match (ids, overlay) {
        (Some(p), true) => idmap::mapping_userns(p).transpose()?,
        _ => None,
    };
    Ok(sandbox_fs::plan::plan(
        &sandbox.rootfs,
        &PlanOptions {
            new_pid_namespace: ns.creates(Namespace::Pid),
            new_net_namespace: ns.creates(Namespace::Net),
            hostname,
            mounts: &sandbox.mounts,
            idmap_userns: mapping.as_ref().map(|(fd, _)| fd.as_fd()),
            root_owner: mapping.as_ref().map(|(_, owner)| *owner),
            own_address: net.own_address,
            hosts: &net.hosts,
            resolv_conf: net.resolv_conf.as_deref(),
        },
    )?)
}

/// The landlock ruleset the child fills and applies (its descriptor, or -1), and its rules.
fn landlock(
    sandbox: &crate::Sandbox,
    child_fds: &mut Vec<OwnedFd>,
) -> Result<(RawFd, Vec<(CString, u64)>)> {
    match sandbox.landlock.as_ref().map(|l| l.prepare()) {
        Some(Ok(Some(plan))) => {
            let raw = plan.ruleset.as_raw_fd();
            child_fds.push(plan.ruleset);
            Ok((raw, plan.rules))
        }
        Some(Err(e)) => Err(e),
        _ => Ok((-1, Vec::new())),
    }
}

/// The sandbox's cgroup, when its limits need one, and (v2) the directory the child is
/// cloned into, or -1 (v1: the parent moves it in before GO).
fn cgroup(
    sandbox: &crate::Sandbox,
    is_exec: bool,
    child_fds: &mut Vec<OwnedFd>,
) -> Result<(Option<crate::limits::cgroup::Cgroup>, RawFd)> {
    if is_exec || !sandbox.limits.needs_cgroup() {
        return Ok((None, -1));
    }
    let cgroup = crate::limits::cgroup::Cgroup::create(&sandbox.limits)?;
    let into = match cgroup.clone_into() {
        Some(fd) => {
            let fd = fd.map_err(|e| Error::os("open the sandbox's cgroup", e))?;
            let raw = fd.as_raw_fd();
            child_fds.push(fd);
            raw
        }
        None => -1,
    };
    Ok((Some(cgroup), into))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sandbox;
    use sandbox_fs::Rootfs;

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
