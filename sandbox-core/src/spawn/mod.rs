//! Starting a sandbox: prepare (parent, may allocate), clone (spawner thread), child (may
//! not allocate), and the parent's side of the handshake.
//!
//! 1. [`prepare`] checks the description and builds the child's plan: every C string, the
//!    mount steps, the pipes, the child's stacks.
//! 2. [`spawner`] clones the child with `clone3(CLONE_VM | CLONE_PIDFD | CLONE_NEW*)` from
//!    its own long-lived thread: the child shares the caller's memory, on its own stack.
//! 3. [`child`] runs in the child until `execve` of the built-in init (`init/init.c`,
//!    executed from a memfd, which forks the program) or of the program itself.
//! 4. This module, in the caller's task: writes the id maps, says GO, and waits for the
//!    child's report: end-of-file (the program was executed) or `(stage, errno)`. The plan
//!    stays alive until then, since the child reads it in place.
//!
//! What comes out is a plain [`Spawned`] value (pids, pidfd, pipes, the cgroup guard), as
//! tokio's `spawn_child` returns a `SpawnedChild`: the public [`Child`](crate::Child) is
//! built from it one level up, so this machinery never imports the handle. Processes whose
//! handle is gone are collected by the [`reaper`].

pub(crate) mod child;
mod init_binary;
pub(crate) mod prepare;
pub(crate) mod reaper;
pub(crate) mod report;
pub(crate) mod spawner;
mod stack;

use crate::error::{Errno, Stage};
use crate::sandbox::Hardening;
use crate::{idmap, sys, Command, Error, Namespace, Result};
use prepare::{ChildPlan, ExecJoins, Prepared};
use report::{Frame, FRAME_LEN, GO, KIND_ERROR, KIND_USERNS};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::io::AsyncReadExt;

/// A started sandbox, as the spawn hands it over: its first process (executed), the
/// parent's ends of its pipes, and what the parent keeps for it (its bridge link, its
/// cgroup, the limits it enforces). Turned into a [`Child`](crate::Child) at once; whoever
/// fails to do so must kill it (`pidfd`) and hand it to the [`reaper`].
pub(crate) struct Spawned {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub status: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub pty: Option<OwnedFd>,
    pub kill_on_drop: bool,
    pub started: Instant,
    /// The sandbox's link to a bridge, removed when it ends.
    pub network: Option<sandbox_net::Attachment>,
    /// The sandbox has a network namespace of its own (interfaces may be attached).
    pub own_netns: bool,
    /// The limits the parent enforces.
    pub limits: crate::Limits,
    /// The sandbox's cgroup, when its limits need one.
    pub cgroup: Option<crate::cgroup::Cgroup>,
    /// The process lives in a PID namespace whose init it is not (an exec into a running
    /// sandbox): reap it as soon as it ends.
    pub reap_early: bool,
    /// What holds processes exec'd into the sandbox.
    pub hardening: Hardening,
}

/// Spawns `cmd` in a new sandbox.
pub(crate) async fn spawn(cmd: &Command) -> Result<Spawned> {
    launch(cmd, &cmd.sandbox, None, None).await
}

/// Spawns `cmd` inside the namespaces in `exec` (an existing sandbox's), held by
/// `sandbox` (that sandbox's hardening) rather than the command's own description.
pub(crate) async fn exec(
    cmd: &Command,
    sandbox: &crate::Sandbox,
    joins: ExecJoins,
    cgroup: Option<crate::cgroup::Member>,
) -> Result<Spawned> {
    launch(cmd, sandbox, Some(joins), cgroup).await
}

/// How many spawns are still queued on the spawner thread, plus the processes the reaper is
/// still waiting for or releasing: at 0, every descriptor they held is closed.
#[doc(hidden)]
pub fn pending() -> usize {
    // Spawner first: it finishes a job (adopting its child in the reaper) before uncounting
    // it.
    let queued = spawner::queued();
    queued + reaper::pending()
}

/// Owns a cloned child, and the plan whose memory it may use, until the spawn succeeds;
/// kills and reaps it otherwise (also when the spawn future is dropped, at any await).
struct Pending {
    pidfd: Option<OwnedFd>,
    plan: Option<Box<ChildPlan>>,
}

/// Waits for the process behind `fd` to end and reaps it, through a duplicate: if this
/// future is dropped, the original stays with its owner, which then hands it to the reaper.
async fn reap(fd: &OwnedFd) -> std::io::Result<i32> {
    wait_reaped(fd.try_clone()?).await
}

impl Pending {
    /// Kills the child (and a relayed sibling) and waits until they are reaped, so a failed
    /// spawn leaves nothing; only then may the plan go.
    async fn kill_and_reap(&mut self) {
        if let Some(fd) = &self.pidfd {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            if reap(fd).await.is_ok() {
                self.pidfd = None;
            }
        }
        if let Some(plan) = &self.plan {
            if let Some(fd) = relayed(plan) {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                if reap(&fd).await.is_ok() {
                    plan.stacks.relayed_pid().store(0, Ordering::SeqCst);
                }
            }
        }
        if self.pidfd.is_none() {
            // Dropping it here hands a sibling that could not be reaped to the reaper.
            drop(self.plan.take().map(|p| KeepPlan(Some(p))));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        match (self.pidfd.take(), self.plan.take()) {
            (Some(fd), Some(plan)) => abandon(fd, plan),
            (Some(fd), None) => {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                reaper::adopt(fd);
            }
            (None, Some(plan)) => drop(KeepPlan(Some(plan))),
            (None, None) => {}
        }
    }
}

/// A pidfd for the process a relay started, if it exists (it is the caller's own child,
/// `CLONE_PARENT`, so its pid cannot be reused before it is reaped).
fn relayed(plan: &ChildPlan) -> Option<OwnedFd> {
    let pid = plan.stacks.relayed_pid().load(Ordering::SeqCst);
    (pid > 0).then(|| sys::pidfd_open(pid).ok()).flatten()
}

/// Keeps a plan alive until every process that may use its memory is gone.
struct KeepPlan(Option<Box<ChildPlan>>);

impl Drop for KeepPlan {
    fn drop(&mut self) {
        // Runs on the reaper thread once the first child is reaped: a sibling it started
        // (before dying) may still use the plan.
        if let Some(plan) = self.0.take() {
            if let Some(fd) = relayed(&plan) {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                plan.stacks.relayed_pid().store(0, Ordering::SeqCst);
                reaper::adopt_with(fd, Some(Box::new(KeepPlan(Some(plan)))));
            }
        }
    }
}

/// Kills an abandoned child and hands it to the reaper with its plan.
pub(crate) fn abandon(pidfd: OwnedFd, plan: Box<ChildPlan>) {
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    reaper::adopt_with(pidfd, Some(Box::new(KeepPlan(Some(plan)))));
}

/// Waits (asynchronously) for the process behind `pidfd` to end, and reaps it.
pub(crate) async fn wait_reaped(pidfd: OwnedFd) -> std::io::Result<i32> {
    let afd = sys::async_pidfd(pidfd).map_err(|(_, e)| e)?;
    loop {
        let mut guard = afd.readable().await?;
        if let Some(st) = sys::waitid_pidfd(afd.get_ref().as_fd(), true)? {
            return Ok(st);
        }
        guard.clear_ready();
    }
}

/// Reads one frame; `None` at end of file.
async fn read_frame(sync: &mut tokio::net::UnixStream) -> Result<Option<Frame>> {
    let mut buf = [0u8; FRAME_LEN];
    let mut got = 0;
    while got < FRAME_LEN {
        let n = sync
            .read(&mut buf[got..])
            .await
            .map_err(|e| Error::os("read from the child", e))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(Error::os(
                "read from the child",
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
            ));
        }
        got += n;
    }
    Ok(Some(Frame::from_bytes(&buf)))
}

/// Takes an address on the sandbox's bridge (opening the bridge if this process has not)
/// and works out its `/etc/hosts` entries.
async fn bridge_lease(
    sandbox: &crate::Sandbox,
    b: &sandbox_net::BridgeNet,
) -> Result<(prepare::NetPrep, sandbox_net::Lease)> {
    let bridge = match sandbox_net::Bridge::lookup(&b.bridge) {
        Some(br) => br,
        None => sandbox_net::Bridge::open(&b.bridge).await?,
    };
    let hostname = sandbox
        .hostname
        .clone()
        .unwrap_or_else(|| crate::DEFAULT_HOSTNAME.to_string());
    // Names for /etc/hosts are checked before any address or link is taken; a root that
    // gets no generated /etc (the caller's own tree) could not show them.
    if b.peers || !b.hosts.is_empty() {
        if matches!(sandbox.rootfs, sandbox_fs::Rootfs::Host) {
            return Err(Error::Conflict(
                "/etc/hosts entries (peers, add_host) need a root of the sandbox's own; \
                 Rootfs::host() shows the caller's /etc"
                    .into(),
            ));
        }
        if b.peers {
            sandbox_net::check_host_name(&hostname)?;
        }
        for h in &b.hosts {
            sandbox_net::check_host_name(&h.name)?;
        }
    }
    let mut hosts: Vec<(String, std::net::IpAddr)> = Vec::new();
    if b.peers {
        for (name, addr) in bridge.names() {
            if name != hostname {
                hosts.push((name, addr.into()));
            }
        }
    }
    for h in &b.hosts {
        hosts.push((h.name.clone(), h.address.into()));
    }
    let lease = bridge.lease(b.address, b.peers.then_some(hostname.as_str()))?;
    let cidr = bridge.cidr();
    let net = prepare::NetPrep {
        own_address: Some(lease.address().into()),
        hosts,
        bridged: true,
        eth0: Some((lease.address(), cidr.prefix(), cidr.gateway())),
        resolv_conf: bridge.nat().then(resolv_conf_with_a_way_out),
    };
    Ok((net, lease))
}

/// The `/etc/resolv.conf` of a sandbox whose bridge masquerades its traffic: the host's,
/// without the name servers the sandbox cannot reach (on the host's loopback, or IPv6:
/// bridges are IPv4), as Docker does; when that leaves none and systemd-resolved runs
/// (its stub at 127.0.0.53), the servers it forwards to.
fn resolv_conf_with_a_way_out() -> Vec<u8> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (text, servers) = reachable_name_servers(&host);
    if servers == 0 {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            let (up, n) = reachable_name_servers(&upstream);
            if n > 0 {
                return up.into_bytes();
            }
        }
    }
    text.into_bytes()
}

/// A resolv.conf with only the name servers a bridged sandbox can reach, and how many.
fn reachable_name_servers(host: &str) -> (String, usize) {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words
                .next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok());
            let why = match addr {
                Some(a) if a.is_loopback() => Some("on the host's loopback"),
                Some(std::net::IpAddr::V6(_)) => Some("IPv6: the bridge is IPv4"),
                None => Some("not an address"),
                Some(_) => None,
            };
            if let Some(why) = why {
                out.push_str(&format!("# {line} ({why}: unreachable)\n"));
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("# no name server of the host's is reachable from this sandbox\n");
    }
    (out, servers)
}

/// Imports an image root into its cache on a blocking thread (extraction may take seconds,
/// and must not hold up a runtime worker); the plan then finds it in the cache.
async fn import_image(rootfs: &sandbox_fs::Rootfs) -> Result<()> {
    use sandbox_fs::image::ImageCache;
    let sandbox_fs::Rootfs::Image { path, cache, .. } = rootfs else {
        return Ok(());
    };
    let cache = ImageCache::new(cache.clone().unwrap_or_else(ImageCache::default_dir));
    if cache.imported(path).is_some() {
        return Ok(());
    }
    let path = path.clone();
    tokio::task::spawn_blocking(move || cache.import(&path))
        .await
        .map_err(|e| Error::os("import the image", std::io::Error::other(e)))?
        .map_err(|e| Error::Fs(e.into()))?;
    Ok(())
}

/// What a failed step was about, for the error message.
fn describe(stage: Stage, detail: u32, plan: &ChildPlan) -> Option<String> {
    let lossy = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    match stage {
        Stage::Exec => Some(lossy(&plan.program)),
        Stage::Chdir => Some(lossy(&plan.cwd)),
        Stage::Mount => plan
            .mounts
            .ops()
            .get(detail as usize)
            .map(|op| op.to_string()),
        Stage::Hostname => plan.hostname.as_deref().map(lossy),
        Stage::Landlock => plan
            .landlock_rules
            .get(detail as usize)
            .map(|(p, _)| lossy(p)),
        Stage::JoinNamespace => plan.joins.get(detail as usize).and_then(|(_, ty)| {
            Namespace::ALL
                .into_iter()
                .find(|n| n.clone_flag() == *ty)
                .map(|n| n.to_string())
        }),
        Stage::Unshare => {
            let flags = detail as libc::c_int;
            let names: Vec<String> = Namespace::ALL
                .into_iter()
                .filter(|n| flags & n.clone_flag() != 0)
                .map(|n| n.to_string())
                .collect();
            Some(names.join(","))
        }
        Stage::SetUid | Stage::SetGid => Some(detail.to_string()),
        _ => None,
    }
}

fn setup_error(f: Frame, plan: Option<&ChildPlan>) -> Error {
    if f.kind != KIND_ERROR {
        return Error::os(
            "read from the child",
            std::io::Error::other(format!("unexpected message {:#x}", f.kind)),
        );
    }
    let stage = Stage::from_u32(f.stage).unwrap_or(Stage::Handshake);
    Error::Setup {
        stage,
        what: plan.and_then(|plan| describe(stage, f.detail, plan)),
        errno: Errno(f.errno),
    }
}

async fn launch(
    cmd: &Command,
    sandbox: &crate::Sandbox,
    exec: Option<ExecJoins>,
    exec_cgroup: Option<crate::cgroup::Member>,
) -> Result<Spawned> {
    let exec_none = exec.is_none();
    let image = matches!(sandbox.rootfs, sandbox_fs::Rootfs::Image { .. });
    if exec.is_none() && image && sandbox.creates(crate::Namespace::Mount) {
        // Bad mounts are refused before an image is imported (the plan checks them again
        // for every other root; prepare refuses a root without a mount namespace).
        sandbox_fs::check_mounts(&sandbox.mounts)?;
        import_image(&sandbox.rootfs).await?;
    }
    let (net, lease) = match (&sandbox.network, &exec) {
        (sandbox_net::Network::Bridge(b), None) => {
            let (net, lease) = bridge_lease(sandbox, b).await?;
            (net, Some((lease, b)))
        }
        _ => (prepare::NetPrep::default(), None),
    };
    // A process joining a running sandbox joins its cgroup too (before it runs anything),
    // so the sandbox's limits and accounting cover it.
    let Prepared {
        plan,
        child_fds,
        parent,
    } = prepare::prepare_with(cmd, sandbox, exec, &net, exec_cgroup.is_some())?;
    let started = Instant::now();
    let (cloned, plan) = spawner::clone(plan, child_fds).await;
    let cloned = cloned.map_err(|e| Error::os("clone3", e))?;
    let Some(plan) = plan else {
        return Err(Error::os("clone3", std::io::Error::other("plan lost")));
    };
    let relay = plan.relay;
    let mut pending = Pending {
        pidfd: Some(cloned.pidfd),
        plan: Some(plan),
    };
    let sync = std::os::unix::net::UnixStream::from(parent.sync);
    sync.set_nonblocking(true)
        .map_err(|e| Error::os("set up the sync channel", e))?;
    let mut sync = tokio::net::UnixStream::from_std(sync)
        .map_err(|e| Error::os("set up the sync channel", e))?;

    if parent.late_userns {
        match read_frame(&mut sync).await? {
            Some(f) if f.kind == KIND_USERNS => {}
            Some(f) => {
                let e = setup_error(f, pending.plan.as_deref());
                pending.kill_and_reap().await;
                return Err(e);
            }
            None => {
                pending.kill_and_reap().await;
                return Err(Error::os(
                    "wait for the child's user namespace",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                ));
            }
        }
    }
    if let Some(ids) = &parent.ids {
        if let Err(e) = idmap::write(cloned.pid, &ids.write).await {
            pending.kill_and_reap().await;
            return Err(e);
        }
    }
    let born_in_cgroup = pending.plan.as_ref().is_some_and(|p| p.into_cgroup >= 0);
    if let (Some(cg), false) = (&parent.cgroup, born_in_cgroup) {
        if let Err(e) = cg.add(cloned.pid as u32) {
            pending.kill_and_reap().await;
            return Err(e);
        }
    }
    if let Some(m) = &exec_cgroup {
        if let Err(e) = m.add(cloned.pid as u32) {
            pending.kill_and_reap().await;
            return Err(e);
        }
    }
    let mut attachment = None;
    if let Some((lease, plan)) = lease {
        // The sandbox's network namespace exists (the clone made it) and its processes wait
        // for GO: connect it to the bridge now.
        let connected = async {
            let netns = std::fs::File::open(format!("/proc/{}/ns/net", cloned.pid))
                .map_err(|e| Error::os("open the sandbox's network namespace", e))?;
            let name = sandbox
                .hostname
                .as_deref()
                .unwrap_or(crate::DEFAULT_HOSTNAME);
            sandbox_net::Attachment::connect(netns.into(), lease, plan, "eth0", name)
                .await
                .map_err(Error::from)
        }
        .await;
        match connected {
            Ok(a) => attachment = Some(a),
            Err(e) => {
                pending.kill_and_reap().await;
                return Err(e);
            }
        }
    }
    if pending.plan.as_ref().is_some_and(|p| p.wait_go) || parent.late_userns {
        // send(MSG_NOSIGNAL): a child that died meanwhile must not raise SIGPIPE in the
        // embedding program. One byte into an empty socket buffer cannot block.
        let sent = nix::sys::socket::send(
            sync.as_raw_fd(),
            &[GO],
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        );
        if let Err(e) = sent {
            pending.kill_and_reap().await;
            return Err(Error::os("release the child", e.into()));
        }
    }
    if let Some(f) = read_frame(&mut sync).await? {
        let e = setup_error(f, pending.plan.as_deref());
        pending.kill_and_reap().await;
        return Err(e);
    }
    // Every process that used the plan has executed (or exited): the sync channel's last
    // holder closed it.
    let mut pid = cloned.pid;
    if relay {
        // The first child started the sandbox's process as our own child, then exited.
        if let Some(first) = &pending.pidfd {
            if let Err(e) = reap(first).await {
                pending.kill_and_reap().await;
                return Err(Error::os("reap the first child", e));
            }
        }
        pending.pidfd = None;
        let inner = pending
            .plan
            .as_deref()
            .map_or(0, |p| p.stacks.relayed_pid().load(Ordering::SeqCst));
        match sys::pidfd_open(inner) {
            Ok(fd) if inner > 0 => {
                pending.pidfd = Some(fd);
                if let Some(p) = &pending.plan {
                    p.stacks.relayed_pid().store(0, Ordering::SeqCst);
                }
                pid = inner;
            }
            _ => {
                pending.kill_and_reap().await;
                return Err(Error::os(
                    "find the sandbox's process",
                    std::io::Error::from_raw_os_error(libc::ESRCH),
                ));
            }
        }
    }
    pending.plan = None;
    let Some(pidfd) = pending.pidfd.take() else {
        return Err(Error::os("clone3", std::io::Error::other("pidfd lost")));
    };
    // From here the caller owns the sandbox (Child::from_spawned kills it if it cannot build
    // the handle).
    Ok(Spawned {
        pid: pid as u32,
        pidfd,
        status: parent.status,
        stdin: parent.stdin,
        stdout: parent.stdout,
        stderr: parent.stderr,
        pty: parent.pty,
        kill_on_drop: parent.kill_on_drop,
        network: attachment,
        own_netns: exec_none && sandbox.creates(crate::Namespace::Net),
        limits: if exec_none {
            sandbox.limits.clone()
        } else {
            crate::Limits::default()
        },
        cgroup: parent.cgroup,
        hardening: sandbox.hardening(),
        reap_early: !exec_none
            || cmd
                .sandbox
                .joins()
                .iter()
                .any(|j| j.namespace == crate::Namespace::Pid),
        started,
    })
}

#[cfg(test)]
mod tests {
    use super::reachable_name_servers;

    #[test]
    fn resolv_conf_keeps_only_reachable_servers() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n\
                    nameserver ::1\nnameserver 2001:db8::1\noptions edns0\n";
        let (got, n) = reachable_name_servers(host);
        assert_eq!(n, 1);
        assert_eq!(
            got,
            "search example.org\n\
             # nameserver 127.0.0.53 (on the host's loopback: unreachable)\n\
             nameserver 10.1.2.3\n\
             # nameserver ::1 (on the host's loopback: unreachable)\n\
             # nameserver 2001:db8::1 (IPv6: the bridge is IPv4: unreachable)\n\
             options edns0\n"
        );
        let (only_local, n) = reachable_name_servers("nameserver 127.0.0.53\n");
        assert_eq!(n, 0);
        assert!(
            only_local.ends_with("# no name server of the host's is reachable from this sandbox\n")
        );
        assert!(!only_local.lines().any(|l| l.starts_with("nameserver")));
    }
}
