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
mod guard;
mod handshake;
mod image;
mod init_binary;
mod network;
pub(crate) mod prepare;
pub(crate) mod reaper;
pub(crate) mod report;
pub(crate) mod spawner;
mod stack;

use crate::sandbox::Hardening;
use crate::{idmap, sys, Command, Error, Result};
pub(crate) use guard::abandon;
use guard::{reap, Pending};
use handshake::{read_frame, setup_error};
use prepare::{ExecJoins, Prepared};
use report::{GO, KIND_USERNS};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Instant;

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
        image::import_image(&sandbox.rootfs).await?;
    }
    let (net, lease) = match (&sandbox.network, &exec) {
        (sandbox_net::Network::Bridge(b), None) => {
            let (net, lease) = network::bridge_lease(sandbox, b).await?;
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
