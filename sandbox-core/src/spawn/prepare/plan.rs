//! The plan the child reads between `clone3` and `execve`: plain data, built by the parent
//! (every string a `CString`, every list a fixed array or a vector made before the clone).

use super::super::stack::Stacks;
use sandbox_fs::plan::MountPlan;
use std::ffi::CString;
use std::os::fd::RawFd;

/// The most file descriptors the child keeps besides 0, 1 and 2.
pub(crate) const MAX_KEEP: usize = 32;

/// The most descriptors a command passes on purpose.
pub(crate) const MAX_PASS: usize = 16;

/// A NULL-terminated array of C strings (`argv`, `envp`) and the strings it points into.
pub(crate) struct CStrArray {
    _owned: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `_owned`, which the array owns and never changes after
// construction, so the array may move to (and be read from) another thread.
unsafe impl Send for CStrArray {}

// SAFETY: as above; nothing is mutated through a shared reference.
unsafe impl Sync for CStrArray {}

impl CStrArray {
    pub(super) fn new(owned: Vec<CString>) -> CStrArray {
        let mut ptrs: Vec<*const libc::c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CStrArray {
            _owned: owned,
            ptrs,
        }
    }

    /// The NULL-terminated pointer array.
    pub(crate) fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

impl std::fmt::Debug for CStrArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self._owned).finish()
    }
}

/// An interface the child configures itself (ioctls: allocation-free, no thread in its
/// namespace needed): address, netmask, up, default route. Addresses in network order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfConfig {
    pub name: [u8; 16],
    pub addr: u32,
    pub mask: u32,
    pub gateway: u32,
}

impl IfConfig {
    /// `eth0` with an address, its prefix length and a default route through `gateway`.
    pub(crate) fn eth0(
        addr: std::net::Ipv4Addr,
        prefix: u8,
        gateway: std::net::Ipv4Addr,
    ) -> IfConfig {
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
            gateway: u32::from(gateway).to_be(),
        }
    }
}

/// rlimits the child sets before `execve`: `(RLIMIT_*, soft, hard)`.
pub(crate) type Rlimits = [(u32, u64, u64); 8];

/// The ids the child switches to once its user namespace has maps (`set_ids`), and
/// whether it clears its supplementary groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub set_ids: bool,
    pub clear_groups: bool,
    pub groups_best_effort: bool,
}

/// Everything the child reads between `clone3` and `execve`. Built by the parent; the child
/// (which shares the parent's memory) only reads it, except `relayed_pid`, which the kernel
/// fills. It must stay alive, unchanged, until every process that uses it has executed or
/// exited: the parent holds it until the end of file on the sync channel, and hands it to
/// the reaper with the processes when a spawn is abandoned.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    /// `CLONE_NEW*` flags given to `clone3`.
    pub clone_flags: u64,
    /// Share the caller's memory (`CLONE_VM`). Not when joining namespaces: a process that
    /// joins an existing user and PID namespace can be seen, signalled and (being root of
    /// that namespace) ptraced by what already runs there, so it gets a private copy of the
    /// caller's memory and makes it non-dumpable before its first `setns` (and `setns` into
    /// a time namespace refuses a process that shares its memory anyway).
    pub share_memory: bool,
    /// The child's end of the sync channel.
    pub sync_fd: RawFd,
    /// The write end of the status pipe (init → parent), or -1.
    pub status_fd: RawFd,
    /// What to place on 0, 1, 2 (-1: leave the inherited one).
    pub stdio: [RawFd; 3],
    /// The stdio slot (0-2) holding a pty to make the controlling terminal, or -1.
    pub controlling_tty: libc::c_int,
    /// Descriptors passed on purpose: `(descriptor, number inside)`, `pass[..pass_len]`;
    /// every number inside is below `pass_floor`, and so are none of the descriptors the
    /// child still needs when it places them (sync channel, status pipe).
    pub pass: [(RawFd, RawFd); MAX_PASS],
    pub pass_len: usize,
    pub pass_floor: RawFd,
    /// Descriptors kept open besides 0-2, sorted ascending; `keep[..keep_len]`.
    pub keep: [RawFd; MAX_KEEP],
    pub keep_len: usize,
    /// Namespaces to join, in order: `(fd, CLONE_NEW* type)`.
    pub joins: Vec<(RawFd, libc::c_int)>,
    /// Wait for the parent's GO before going on.
    pub wait_go: bool,
    /// Create the user namespace after joining, then ask the parent for maps.
    pub late_userns: bool,
    /// Namespaces created with `unshare` after the user namespace (late path).
    pub unshare_flags: libc::c_int,
    /// Ids to switch to.
    pub identity: Option<Identity>,
    /// The caller's dumpable setting, put back after the child changes ids (the memory,
    /// whose setting it is, is shared).
    pub parent_dumpable: libc::c_int,
    /// The PID namespace is entered after the clone: a sibling (`CLONE_PARENT`) runs in it;
    /// the kernel writes its pid to `stacks.relayed_pid()`.
    pub relay: bool,
    /// Create a time namespace.
    pub time_ns: bool,
    /// Text for `/proc/self/timens_offsets`.
    pub time_offsets: Option<CString>,
    /// Create a cgroup namespace.
    pub cgroup_ns: bool,
    pub hostname: Option<CString>,
    pub lo_up: bool,
    /// `eth0` of a bridged network, configured by the child after GO.
    pub eth0: Option<IfConfig>,
    pub mounts: MountPlan,
    /// The memfd of the built-in init, or -1 to execute the program directly.
    pub init_fd: RawFd,
    /// The init's arguments: status fd, sync fd, flags, exec stage, the program's argv.
    pub init_argv: CStrArray,
    /// The program dies with its parent (no PID namespace would take it down otherwise).
    pub program_pdeathsig: bool,
    /// A cgroup directory to clone the child into (`CLONE_INTO_CGROUP`, v2), or -1.
    pub into_cgroup: RawFd,
    /// rlimits set before `execve`: `(RLIMIT_*, soft, hard)`, `rlimits[..rlimits_len]`.
    pub rlimits: Rlimits,
    pub rlimits_len: usize,
    /// The capabilities kept (a bitmask); every other one leaves the bounding, effective,
    /// permitted, inheritable and ambient sets before `execve`.
    pub caps_keep: u64,
    /// The highest capability of the running kernel.
    pub cap_last: u32,
    /// A landlock ruleset to fill and apply before the seccomp filter, or -1.
    pub landlock_fd: RawFd,
    /// Its rules: `(path inside the root, rights)`.
    pub landlock_rules: Vec<(CString, u64)>,
    /// The seccomp filter, loaded last (after `no_new_privs`), or none.
    pub seccomp: Option<std::sync::Arc<crate::security::Compiled>>,
    pub program: CString,
    pub argv: CStrArray,
    pub envp: CStrArray,
    pub cwd: CString,
    /// The stacks the children run on.
    pub stacks: Stacks,
}
