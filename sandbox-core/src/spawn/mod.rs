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
pub(crate) mod serve;
pub(crate) mod spawner;
mod stack;
pub(crate) mod timeline;

use crate::sandbox::Hardening;
use crate::{idmap, Command, Error, Result};
pub(crate) use guard::abandon;
use guard::Pending;
use prepare::{ExecJoins, Prepared};
use std::os::fd::OwnedFd;
use std::time::Instant;
use timeline::Recorder;

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
    pub cgroup: Option<crate::limits::cgroup::Cgroup>,
    /// The process lives in a PID namespace whose init it is not (an exec into a running
    /// sandbox): reap it as soon as it ends.
    pub reap_early: bool,
    /// What holds processes exec'd into the sandbox.
    pub hardening: Hardening,
    /// When each stage of the spawn ended (with the `timeline` feature).
    pub timeline: Recorder,
    /// A run in a reused pool's sandbox: how its end is learnt, and how the sandbox goes
    /// back.
    pub lease: Option<Box<dyn serve::Lease>>,
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
    cgroup: Option<crate::limits::cgroup::Member>,
) -> Result<Spawned> {
    launch(cmd, sandbox, Some(joins), cgroup).await
}

/// How many spawns are still queued on the spawner thread, plus the processes the reaper is
/// still waiting for or releasing: at 0, every descriptor they held is closed.
#[cfg(feature = "test-hooks")]
pub fn pending() -> usize {
    // Spawner first: it finishes a job (adopting its child in the reaper) before uncounting
    // it.
    let queued = spawner::queued();
    queued + reaper::pending()
}

/// One spawn, stage by stage: the work before the clone that may wait (an image import, a
/// bridge address), the plan, the clone, the parent's part of the handshake, and the hand-over.
async fn launch(
    cmd: &Command,
    sandbox: &crate::Sandbox,
    exec: Option<ExecJoins>,
    exec_cgroup: Option<crate::limits::cgroup::Member>,
) -> Result<Spawned> {
    let mut timeline = Recorder::start();
    let is_exec = exec.is_some();
    if !is_exec && image::import_if_needed(sandbox).await? {
        timeline.mark("caller: image imported (or found in its cache)");
    }
    let (net, lease) = match (&sandbox.network, is_exec) {
        (sandbox_net::Network::Bridge(b), false) => {
            let (net, lease) = network::bridge_lease(sandbox, b).await?;
            timeline.mark("caller: bridge address leased");
            (net, Some((lease, b, sandbox)))
        }
        _ => (prepare::NetPrep::default(), None),
    };
    // A process joining a running sandbox joins its cgroup too (before it runs anything),
    // so the sandbox's limits and accounting cover it.
    let Prepared {
        plan,
        child_fds,
        sync,
        parent,
    } = prepare::prepare_with(
        cmd,
        sandbox,
        exec,
        &net,
        exec_cgroup.is_some(),
        &mut timeline,
    )?;
    timeline.mark("caller: plan prepared");
    let started = Instant::now();
    let (cloned, plan) = spawner::clone(plan, child_fds).await;
    let cloned = cloned.map_err(|e| Error::os("clone3", e))?;
    let Some(plan) = plan else {
        return Err(Error::os("clone3", std::io::Error::other("plan lost")));
    };
    timeline.mark("caller: cloned");
    let mut pending = Pending {
        pidfd: Some(cloned.pidfd),
        plan: Some(plan),
    };
    // The lease, then the link, stay here: on a failure they go only once the child is
    // gone (its address is not free while it may still use it).
    let mut bridging = Bridging { lease, link: None };
    let released = release(
        &pending,
        sync,
        &parent,
        cloned.pid,
        exec_cgroup.as_ref(),
        &mut bridging,
        &mut timeline,
    )
    .await;
    if let Err(e) = released {
        pending.kill_and_reap().await;
        drop(bridging);
        return Err(e);
    }
    // Every process that used the plan has executed (or exited): the sync channel's last
    // holder closed it.
    if let Some(plan) = pending.plan.as_deref() {
        timeline.take_child_marks(plan.stacks.marks(), || {
            plan.mounts.ops().iter().map(|op| op.to_string()).collect()
        });
    }
    let (pid, pidfd) = pending.executed(cloned.pid).await?;
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
        network: bridging.link,
        own_netns: !is_exec && sandbox.creates(crate::Namespace::Net),
        limits: if is_exec {
            crate::Limits::default()
        } else {
            sandbox.limits.clone()
        },
        cgroup: parent.cgroup,
        hardening: sandbox.hardening(),
        reap_early: is_exec
            || cmd
                .sandbox
                .joins()
                .iter()
                .any(|j| j.namespace == crate::Namespace::Pid),
        started,
        timeline,
        lease: None,
    })
}

/// A bridged sandbox's address until it is connected, then its link to the bridge.
struct Bridging<'a> {
    lease: Option<(
        sandbox_net::Lease,
        &'a sandbox_net::BridgeNet,
        &'a crate::Sandbox,
    )>,
    link: Option<sandbox_net::Attachment>,
}

/// The parent's part between the clone and the program's `execve`: the id maps, the cgroup,
/// the bridge link (into `bridging`), GO, and the child's report.
async fn release(
    pending: &Pending,
    sync: OwnedFd,
    parent: &prepare::Parent,
    pid: i32,
    exec_cgroup: Option<&crate::limits::cgroup::Member>,
    bridging: &mut Bridging<'_>,
    timeline: &mut Recorder,
) -> Result<()> {
    let plan = pending.plan.as_deref();
    let mut sync = handshake::channel(sync)?;
    if parent.late_userns {
        handshake::await_user_namespace(&mut sync, plan).await?;
    }
    if let Some(ids) = &parent.ids {
        idmap::write(pid, &ids.write).await?;
        timeline.mark("caller: id maps written");
    }
    let born_in_cgroup = plan.is_some_and(|p| p.into_cgroup >= 0);
    if let (Some(cg), false) = (&parent.cgroup, born_in_cgroup) {
        cg.add(pid as u32)?;
        timeline.mark("caller: child moved into its cgroup");
    }
    if let Some(m) = exec_cgroup {
        m.add(pid as u32)?;
        timeline.mark("caller: child moved into its cgroup");
    }
    // The sandbox's network namespace exists (the clone made it) and its processes wait for
    // GO: connect it to the bridge now.
    if let Some((lease, bridge, sandbox)) = bridging.lease.take() {
        bridging.link = Some(network::connect(pid, lease, bridge, sandbox).await?);
        timeline.mark("caller: bridge connected");
    }
    if plan.is_some_and(|p| p.wait_go) || parent.late_userns {
        handshake::go(&sync)?;
        timeline.mark("caller: GO sent");
    }
    handshake::await_exec(&mut sync, plan).await?;
    timeline.mark("caller: executed (end of file on the sync channel)");
    Ok(())
}
