//! [`Sandbox`]: the reusable, serialisable description of a sandbox.

use crate::Namespace;
use sandbox_fs::{Mount, Rootfs};
use sandbox_net::Network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One range of a uid or gid map: ids `inside..inside+count` in the sandbox are
/// `outside..outside+count` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// First id inside the sandbox.
    pub inside: u32,
    /// First id on the host.
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

impl IdMap {
    /// A range of `count` ids starting at `inside` in the sandbox and `outside` on the host.
    pub fn new(inside: u32, outside: u32, count: u32) -> IdMap {
        IdMap {
            inside,
            outside,
            count,
        }
    }

    /// The caller's effective uid as root (0) inside: what an unprivileged caller gets by
    /// default. Give it to [`Sandbox::uid_map`].
    pub fn current_user_as_root() -> IdMap {
        IdMap::new(0, nix::unistd::geteuid().as_raw(), 1)
    }

    /// The caller's effective gid as group 0 inside. Give it to [`Sandbox::gid_map`].
    pub fn current_group_as_root() -> IdMap {
        IdMap::new(0, nix::unistd::getegid().as_raw(), 1)
    }
}

/// The host ids that root inside a sandbox becomes when the caller is root, as
/// `dockerd --userns-remap` does: ids `0..count` inside are `start..start+count` on the host.
///
/// The default, `524288..589824`, is the start of the range systemd reserves for container
/// ids (`0x80000`, see systemd's `UIDS-GIDS.md`), so it collides with no system or human
/// account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remap {
    /// First host id.
    pub start: u32,
    /// How many ids.
    pub count: u32,
}

impl Default for Remap {
    fn default() -> Remap {
        Remap {
            start: 0x80000,
            count: 65536,
        }
    }
}

/// A clock whose offset a time namespace can change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// `CLOCK_MONOTONIC` (and its raw and coarse variants).
    Monotonic,
    /// `CLOCK_BOOTTIME` (and its alarm variant).
    Boottime,
}

/// A namespace to join instead of creating (see [`Sandbox::join`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Join {
    /// The kind.
    pub namespace: Namespace,
    /// A namespace file: `/proc/<pid>/ns/<kind>` or one kept by a bind mount.
    pub path: PathBuf,
}

/// A description of a sandbox: which namespaces, which root filesystem, which network, which
/// ids. It is plain data (`Clone`, serde), and spawning it many times gives independent
/// sandboxes.
///
/// By default every namespace is new (user, mount, PID, UTS, IPC, network, cgroup, time),
/// the hostname is `sandbox`, the root is the host's own tree with a fresh `/proc`,
/// the network is [`Network::loopback`], a built-in init runs as PID 1, and the sandbox is
/// killed when its [`Child`](crate::Child) handle is dropped. The program keeps no
/// capability, runs with `no_new_privs` in a session of its own, under the
/// [default seccomp profile](crate::Seccomp::default_profile), with no descriptor of the
/// caller's but its stdio and a minimal environment.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> sandbox_core::Result<()> {
/// use sandbox_core::{Namespace, Network, Sandbox};
/// let sandbox = Sandbox::new().hostname("judge-7").network(Network::none());
/// let out = sandbox.command("/bin/hostname").output().await?;
/// assert_eq!(out.stdout, b"judge-7\n");
/// // The same description, with the host's network:
/// let hosted = sandbox.clone().share(Namespace::Net);
/// # let _ = hosted; Ok(()) }
/// ```
///
/// # Ids
/// A caller that is not root gets its own uid and gid mapped to 0 inside (with
/// `setgroups` denied, as the kernel requires). A caller that is root gets 0 inside mapped to
/// an unprivileged host range ([`Remap`]), so root inside cannot write what only the host's
/// root may. The host's root is mapped only when a map says so explicitly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sandbox {
    pub(crate) shared: BTreeSet<Namespace>,
    pub(crate) joined: Vec<Join>,
    pub(crate) hostname: Option<String>,
    pub(crate) uid_map: Vec<IdMap>,
    pub(crate) gid_map: Vec<IdMap>,
    pub(crate) remap: Remap,
    pub(crate) monotonic_offset: i64,
    pub(crate) boottime_offset: i64,
    pub(crate) rootfs: Rootfs,
    pub(crate) mounts: Vec<Mount>,
    pub(crate) limits: crate::Limits,
    pub(crate) network: Network,
    pub(crate) init: bool,
    pub(crate) kill_on_drop: bool,
    pub(crate) seccomp: crate::Seccomp,
    pub(crate) capabilities: Vec<crate::Capability>,
    pub(crate) landlock: Option<crate::Landlock>,
}

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox {
            shared: BTreeSet::new(),
            joined: Vec::new(),
            hostname: None,
            uid_map: Vec::new(),
            gid_map: Vec::new(),
            remap: Remap::default(),
            monotonic_offset: 0,
            boottime_offset: 0,
            rootfs: Rootfs::default(),
            mounts: Vec::new(),
            limits: crate::Limits::default(),
            network: Network::default(),
            init: true,
            kill_on_drop: true,
            seccomp: crate::Seccomp::default(),
            capabilities: Vec::new(),
            landlock: None,
        }
    }
}

/// The hostname a sandbox with its own UTS namespace gets when none is set.
pub const DEFAULT_HOSTNAME: &str = "sandbox";

impl Sandbox {
    /// A sandbox with every namespace of its own; see the type's documentation.
    pub fn new() -> Sandbox {
        Sandbox::default()
    }

    /// Keeps the caller's namespace of this kind instead of creating one.
    ///
    /// Sharing [`Namespace::Net`] is the same as [`Network::host`].
    pub fn share(mut self, namespace: Namespace) -> Sandbox {
        self.shared.insert(namespace);
        if namespace == Namespace::Net {
            self.network = Network::host();
        }
        self
    }

    /// Starts the sandbox inside an existing namespace: a `/proc/<pid>/ns/<kind>` file or one
    /// kept with [`Child::keep_namespace`](crate::Child::keep_namespace).
    ///
    /// Joining happens before any namespace of the sandbox's own is created, with the
    /// caller's privileges, as runc does. A joined namespace keeps its own settings: a
    /// joined UTS namespace keeps its hostname, a joined network namespace its interfaces.
    pub fn join(mut self, namespace: Namespace, path: impl Into<PathBuf>) -> Sandbox {
        self.joined.push(Join {
            namespace,
            path: path.into(),
        });
        self
    }

    /// Whether the sandbox gets a namespace of this kind of its own.
    pub fn creates(&self, namespace: Namespace) -> bool {
        !self.shared.contains(&namespace) && !self.joins().iter().any(|j| j.namespace == namespace)
    }

    /// Sets the hostname (at most 64 bytes). Needs a UTS namespace of the sandbox's own.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Sandbox {
        self.hostname = Some(hostname.into());
        self
    }

    /// Adds a range to the uid map. Several ranges need a root caller (or `newuidmap` and
    /// `/etc/subuid` entries when the caller is not root).
    pub fn uid_map(mut self, map: IdMap) -> Sandbox {
        self.uid_map.push(map);
        self
    }

    /// Adds a range to the gid map; see [`Sandbox::uid_map`].
    pub fn gid_map(mut self, map: IdMap) -> Sandbox {
        self.gid_map.push(map);
        self
    }

    /// The host range that ids `0..` inside map to when the caller is root and no map is
    /// given. See [`Remap`].
    pub fn remap(mut self, remap: Remap) -> Sandbox {
        self.remap = remap;
        self
    }

    /// Shifts a clock inside the sandbox's time namespace by `seconds` (negative goes back).
    pub fn time_offset(mut self, clock: Clock, seconds: i64) -> Sandbox {
        match clock {
            Clock::Monotonic => self.monotonic_offset = seconds,
            Clock::Boottime => self.boottime_offset = seconds,
        }
        self
    }

    /// Sets the root filesystem.
    pub fn rootfs(mut self, rootfs: Rootfs) -> Sandbox {
        self.rootfs = rootfs;
        self
    }

    /// Adds a mount, placed (in the order added) after the root filesystem is built: a
    /// bind of a host path, a tmpfs, a file with given contents, ...
    ///
    /// Targets are resolved inside the sandbox's root: a symlink in the root cannot make a
    /// mount land outside it. With [`Rootfs::host`], targets must already exist.
    pub fn mount(mut self, mount: Mount) -> Sandbox {
        self.mounts.push(mount);
        self
    }

    /// Sets resource limits; see [`Limits`](crate::Limits) for what is enforced how.
    pub fn limits(mut self, limits: crate::Limits) -> Sandbox {
        self.limits = limits;
        self
    }

    /// Sets the network. [`Network::host`] shares the caller's network namespace.
    pub fn network(mut self, network: Network) -> Sandbox {
        if network == Network::host() {
            self.shared.insert(Namespace::Net);
        } else {
            self.shared.remove(&Namespace::Net);
        }
        self.network = network;
        self
    }

    /// The namespaces to join: the ones given with [`Sandbox::join`], and a persistent
    /// network namespace named by [`Network::Join`].
    pub(crate) fn joins(&self) -> Vec<Join> {
        let mut v = self.joined.clone();
        if let Network::Join { path } = &self.network {
            v.push(Join {
                namespace: Namespace::Net,
                path: path.clone(),
            });
        }
        v
    }

    /// Runs the built-in init as PID 1 (the default), or, with `false`, the program itself.
    ///
    /// The init forks the program, forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and
    /// SIGUSR2 to it, reaps every orphan, and exits with the program's status.
    pub fn init(mut self, init: bool) -> Sandbox {
        self.init = init;
        self
    }

    /// Whether dropping a [`Child`](crate::Child) kills its sandbox (default: `true`,
    /// unlike `tokio::process`). Each [`Command`](crate::Command) can override it.
    pub fn kill_on_drop(mut self, kill: bool) -> Sandbox {
        self.kill_on_drop = kill;
        self
    }

    /// Whether dropping a [`Child`](crate::Child) kills its sandbox.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// Sets the seccomp filter ([`Seccomp::default_profile`](crate::Seccomp::default_profile)
    /// unless changed; [`Seccomp::off`](crate::Seccomp::off) loads none).
    pub fn seccomp(mut self, seccomp: crate::Seccomp) -> Sandbox {
        self.seccomp = seccomp;
        self
    }

    /// Keeps one capability (by default the sandbox keeps none): it stays in the bounding,
    /// permitted, effective and inheritable sets, and in the ambient set, so the program
    /// has it whatever its uid. Capabilities are those of the sandbox's user namespace:
    /// `CAP_NET_ADMIN` there administers the sandbox's network, not the host's. Keeping
    /// `CAP_SYS_ADMIN` (with the seccomp filter off) lets root inside remount writable what
    /// the sandbox made read-only.
    ///
    /// ```
    /// use sandbox_core::{Capability, Sandbox};
    /// let s = Sandbox::new()
    ///     .capability(Capability::NetBindService)
    ///     .capability("net_raw".parse::<Capability>()?);
    /// # let _ = s; Ok::<(), sandbox_core::Error>(())
    /// ```
    pub fn capability(mut self, capability: crate::Capability) -> Sandbox {
        if !self.capabilities.contains(&capability) {
            self.capabilities.push(capability);
        }
        self
    }

    /// The seccomp filter's description.
    pub fn get_seccomp(&self) -> &crate::Seccomp {
        &self.seccomp
    }

    /// The root filesystem.
    pub fn get_rootfs(&self) -> &Rootfs {
        &self.rootfs
    }

    /// The resource limits.
    pub fn get_limits(&self) -> &crate::Limits {
        &self.limits
    }

    /// The landlock rules, if any.
    pub fn get_landlock(&self) -> Option<&crate::Landlock> {
        self.landlock.as_ref()
    }

    /// The network.
    pub fn get_network(&self) -> &Network {
        &self.network
    }

    /// The capabilities the sandbox keeps.
    pub fn get_capabilities(&self) -> &[crate::Capability] {
        &self.capabilities
    }

    /// Restricts, with landlock, which paths inside the root the program may open (when the
    /// kernel has landlock; see [`Landlock::required`](crate::Landlock::required)).
    pub fn landlock(mut self, landlock: crate::Landlock) -> Sandbox {
        self.landlock = Some(landlock);
        self
    }
}

/// The parts of a sandbox's description that hold every process started in it: a process
/// `exec`'d into a running sandbox gets these, whatever its own command's description says.
#[derive(Debug, Clone)]
pub(crate) struct Hardening {
    pub seccomp: crate::Seccomp,
    pub capabilities: Vec<crate::Capability>,
    pub landlock: Option<crate::Landlock>,
    /// For its rlimits (the cgroup and the times belong to the sandbox).
    pub limits: crate::Limits,
}

impl Sandbox {
    /// What holds every process started in this sandbox.
    pub(crate) fn hardening(&self) -> Hardening {
        Hardening {
            seccomp: self.seccomp.clone(),
            capabilities: self.capabilities.clone(),
            landlock: self.landlock.clone(),
            limits: self.limits.clone(),
        }
    }

    /// This description, held by `hardening` instead of its own.
    pub(crate) fn hardened_by(&self, hardening: &Hardening) -> Sandbox {
        let mut hardened = self.clone();
        hardened.seccomp = hardening.seccomp.clone();
        hardened.capabilities = hardening.capabilities.clone();
        hardened.landlock = hardening.landlock.clone();
        hardened.limits = hardening.limits.clone();
        hardened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip_and_defaults() {
        let s = Sandbox::new()
            .hostname("h")
            .share(Namespace::Ipc)
            .uid_map(IdMap::new(0, 1000, 1))
            .time_offset(Clock::Monotonic, -5)
            .rootfs(Rootfs::dir("/srv/root"));
        let j = serde_json::to_string(&s).unwrap();
        let back: Sandbox = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
        let empty: Sandbox = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Sandbox::new());
    }

    #[test]
    fn host_network_shares_the_namespace_and_back() {
        let s = Sandbox::new().network(Network::host());
        assert!(!s.creates(Namespace::Net));
        let s = s.network(Network::none());
        assert!(s.creates(Namespace::Net));
        let s = Sandbox::new().share(Namespace::Net);
        assert_eq!(s.network, Network::host());
    }

    #[test]
    fn joined_namespaces_are_not_created() {
        let s = Sandbox::new().join(Namespace::Uts, "/run/x");
        assert!(!s.creates(Namespace::Uts));
        assert!(s.creates(Namespace::Pid));
    }
}
