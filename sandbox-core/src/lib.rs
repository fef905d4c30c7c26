//! Async Linux sandboxes for tokio programs.
//!
//! A program started through this crate runs in namespaces of its own — user (uid/gid
//! maps, so an unprivileged caller can be root inside), mount (its own root filesystem
//! entered with `pivot_root` — the host's system directories read-only, a directory, an
//! overlay or a container image — nothing propagating back), PID (a built-in init is PID 1), UTS (hostname), IPC, network, cgroup
//! and time — behind a handle that feels like `tokio::process`: piped stdio that implements
//! `AsyncRead`/`AsyncWrite`, `wait`, `kill`, `output`.
//!
//! ```
//! use sandbox_core::{Mount, Network, Rootfs, Sandbox};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sandbox_core::Result<()> {
//! let out = Sandbox::new()
//!     .hostname("t1")
//!     .rootfs(Rootfs::host_readonly())
//!     .mount(Mount::tmpfs("/work").size(64 << 20))
//!     .network(Network::loopback())
//!     .command("/bin/sh")
//!     .arg("-c")
//!     .arg("hostname; id -u; ps -o pid,comm")
//!     .output()
//!     .await?;
//! assert!(out.status.success());
//! let text = String::from_utf8_lossy(&out.stdout);
//! assert!(text.starts_with("t1\n0\n"));
//! # Ok(()) }
//! ```
//!
//! (The examples in these docs run as doc tests, as root, like the rest of the test suite.)
//!
//! # What it is made of
//! - [`Sandbox`]: a reusable, serialisable description (namespaces, ids, root, network).
//! - [`Command`]: a program to run in one; [`Command::spawn`] returns a [`Child`].
//! - [`Child`]: the running sandbox: `wait`, `kill`, `signal`, `exec` another program into
//!   it, read its [`NamespaceIds`], keep a namespace alive with
//!   [`Child::keep_namespace`].
//! - [`Error`]: one typed error; bad input is refused before any process exists, and a
//!   failing step of the child's setup comes back as [`Error::Setup`] naming the step.
//!
//! # How a sandbox starts
//! Everything is prepared in the caller (C strings, mount steps, pipes); the child is cloned
//! with `clone3(CLONE_VM | CLONE_PIDFD | CLONE_NEW*)` from one dedicated spawner thread, as
//! `posix_spawn` does: it shares the caller's memory on a stack of its own, so a spawn
//! costs the same whatever the caller's size. Until `execve` the child makes only raw system
//! calls on that prepared data (it may not allocate or touch the caller's memory); the
//! caller writes its id maps over a socket handshake; the child's errors come back as
//! `(stage, errno)` on that close-on-exec channel. PID 1 is a tiny built-in init (a static
//! executable embedded in the library and run from a memfd), which forks the program.
//! Waiting is on the pidfd through tokio's reactor.
//!
//! # Hardening
//! By default the program keeps no capability, runs with `no_new_privs`, in a session of
//! its own, under a seccomp deny-list ([`Seccomp`]), with no descriptor of the caller's but
//! its stdio and a minimal environment; [`Landlock`] narrows the paths it may open.
//!
//! # Requirements, and what it does not do
//! Requires Linux 5.9 or later (`clone3`, pidfds, `close_range`), and 6.0 for time
//! namespaces (a process enters its time namespace on `execve` since then). Runs on x86_64
//! and aarch64. It does not virtualise the kernel: a sandbox shares the host's kernel, as a
//! container does, and is as strong as the kernel's namespaces, seccomp and landlock.
#![deny(missing_docs)]

mod child;
mod command;
mod error;
mod idmap;
mod limits;
mod ns;
mod pool;
mod pty;
mod sandbox;
mod security;
mod spawn;
mod sys;

pub use child::{Child, Ending, Outcome, Output};
pub use command::{Command, Stdio, DEFAULT_PATH};
pub use error::{Errno, Error, IdKind, Result, Stage};
pub use limits::Limits;
pub use ns::{KeptNamespace, Namespace, NamespaceIds, ParseNamespaceError};
pub use pool::{Pool, PoolStats, DEFAULT_IDLE_TIMEOUT, REUSABLE_CAPABILITIES};
pub use pty::Pty;
pub use sandbox::{Clock, IdMap, Remap, Sandbox, DEFAULT_HOSTNAME};
pub use sandbox_fs::{Mount, Rootfs};
pub use sandbox_net::Network;
pub use security::seccomp;
pub use security::{Capability, Landlock, ParseCapabilityError, Seccomp};
#[cfg(feature = "timeline")]
pub use spawn::timeline::Timeline;

/// Root filesystems beyond [`Rootfs`] and [`Mount`]: the image cache and the errors of a
/// root's plan (from the `sandbox-fs` crate).
pub mod fs {
    pub use sandbox_fs::{
        check_mounts, image, mountinfo_path, Error, DEVICES, MASKED_DIRS, MASKED_FILES,
        READONLY_PATHS,
    };
}

/// Networks beyond [`Network`]: bridges and their addresses, persistent network namespaces,
/// and their errors (from the `sandbox-net` crate).
pub mod net {
    pub use sandbox_net::{
        check_host_name, check_ifname, Bridge, BridgeNet, Error, HostEntry, Ipv4Cidr, Lease, Netns,
        LEASE_DIR, MAX_IFNAME, NETNS_DIR,
    };
}

/// Hooks for this crate's own tests (the `test-hooks` feature, which only its tests turn
/// on): not part of the API.
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks {
    pub use crate::spawn::pending as reaper_pending;

    /// Spawns that took a cgroup made ahead, and spawns that made their own.
    pub fn cgroup_pool_counts() -> (u64, u64) {
        crate::limits::cgroup::pool_counts()
    }

    /// The directories of the cgroups made ahead and not taken yet.
    pub fn cgroup_spares() -> Vec<std::path::PathBuf> {
        crate::limits::cgroup::pool_spares()
    }
}
