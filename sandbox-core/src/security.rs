//! Hardening: the seccomp filter, the capabilities a sandbox keeps, and landlock rules.
//!
//! Every sandbox gets, by default: no capabilities at all (bounding, effective, permitted,
//! inheritable and ambient sets cleared), `no_new_privs`, a new session, and the
//! [default seccomp profile](Seccomp::default_profile). [`Sandbox::seccomp`],
//! [`Sandbox::capability`] and [`Sandbox::landlock`] change that.
//!
//! [`Sandbox::seccomp`]: crate::Sandbox::seccomp
//! [`Sandbox::capability`]: crate::Sandbox::capability
//! [`Sandbox::landlock`]: crate::Sandbox::landlock

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub use caps::Capability;

/// How a condition compares a system call's argument with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgOp {
    /// `arg == value`
    Eq,
    /// `arg != value`
    Ne,
    /// `arg < value` (unsigned)
    Lt,
    /// `arg <= value` (unsigned)
    Le,
    /// `arg > value` (unsigned)
    Gt,
    /// `arg >= value` (unsigned)
    Ge,
    /// `arg & mask == value`
    MaskedEq(u64),
}

/// A condition on one argument of a system call: `Arg::new(1).eq(0x5412)` is "the second
/// argument is 0x5412". Arguments are compared as 64-bit values, or as their low 32 bits
/// with [`Arg::dword`] (for `int` arguments such as `ioctl`'s request or flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arg {
    /// The argument's position, 0 to 5.
    pub index: u8,
    /// Compare only the low 32 bits.
    pub dword: bool,
    /// The comparison.
    pub op: ArgOp,
    /// The value compared with.
    pub value: u64,
}

impl Arg {
    /// A condition on argument `index` (0 to 5) as a 64-bit value; complete it with one of
    /// the comparisons (`eq`, `ne`, ...).
    pub fn new(index: u8) -> Arg {
        Arg {
            index,
            dword: false,
            op: ArgOp::Eq,
            value: 0,
        }
    }

    /// A condition on the low 32 bits of argument `index` (an `int` or `unsigned int`).
    pub fn dword(index: u8) -> Arg {
        Arg {
            dword: true,
            ..Arg::new(index)
        }
    }

    fn with(mut self, op: ArgOp, value: u64) -> Arg {
        self.op = op;
        self.value = value;
        self
    }

    /// The argument equals `value`.
    pub fn eq(self, value: u64) -> Arg {
        self.with(ArgOp::Eq, value)
    }
    /// The argument differs from `value`.
    pub fn ne(self, value: u64) -> Arg {
        self.with(ArgOp::Ne, value)
    }
    /// The argument is below `value`.
    pub fn lt(self, value: u64) -> Arg {
        self.with(ArgOp::Lt, value)
    }
    /// The argument is at most `value`.
    pub fn le(self, value: u64) -> Arg {
        self.with(ArgOp::Le, value)
    }
    /// The argument is above `value`.
    pub fn gt(self, value: u64) -> Arg {
        self.with(ArgOp::Gt, value)
    }
    /// The argument is at least `value`.
    pub fn ge(self, value: u64) -> Arg {
        self.with(ArgOp::Ge, value)
    }
    /// `argument & mask == value`.
    pub fn masked_eq(self, mask: u64, value: u64) -> Arg {
        self.with(ArgOp::MaskedEq(mask), value)
    }
    /// Every bit of `bits` is set in the argument (a flag test; give one bit for "this
    /// flag is set").
    pub fn has_bit(self, bit: u64) -> Arg {
        self.with(ArgOp::MaskedEq(bit), bit)
    }
}

/// A refused system call: calls of `name` whose arguments meet every condition of `when`
/// (all calls, when there is none) fail with `errno` (default `EPERM`) without running.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallRule {
    /// The system call's name, as in `man 2 syscalls` (`keyctl`, `ioctl`, ...).
    pub name: String,
    /// Conditions on its arguments, all of which must hold.
    #[serde(default)]
    pub when: Vec<Arg>,
    /// The error the call returns.
    #[serde(default = "eperm")]
    pub errno: i32,
}

fn eperm() -> i32 {
    libc::EPERM
}

impl SyscallRule {
    /// Refuses every call of `name` with `EPERM`.
    pub fn new(name: impl Into<String>) -> SyscallRule {
        SyscallRule {
            name: name.into(),
            when: Vec::new(),
            errno: libc::EPERM,
        }
    }

    /// Refuses only the calls whose arguments also meet `arg`.
    pub fn when(mut self, arg: Arg) -> SyscallRule {
        self.when.push(arg);
        self
    }

    /// The error returned instead of `EPERM` (`ENOSYS` makes many programs fall back to an
    /// older call).
    pub fn errno(mut self, errno: i32) -> SyscallRule {
        self.errno = errno;
        self
    }
}

/// The seccomp filter of a sandbox: a deny-list, loaded last before `execve` (after
/// `no_new_privs`), inherited by every process of the sandbox.
///
/// [`Seccomp::default_profile`] (the default) refuses what a sandboxed program has no
/// business doing, in the spirit of Docker's default profile (see
/// [`Seccomp::default_rules`] for the list and why). [`Seccomp::allow`] takes calls out of
/// it, [`Seccomp::deny`] and [`Seccomp::rule`] add to it, [`Seccomp::off`] loads no
/// filter.
///
/// Calls from another ABI (32-bit `int 0x80` on x86_64) kill the process; x32 calls fail
/// with `ENOSYS`.
///
/// ```
/// use sandbox_core::{Arg, Sandbox, Seccomp, SyscallRule};
/// let seccomp = Seccomp::default_profile()
///     .allow("ptrace")
///     .deny("socket")
///     .rule(SyscallRule::new("prctl").when(Arg::dword(0).eq(libc::PR_SET_NAME as u64)));
/// let sandbox = Sandbox::new().seccomp(seccomp);
/// # let _ = sandbox;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seccomp {
    /// Load a filter at all.
    pub enabled: bool,
    /// Start from the default profile.
    pub defaults: bool,
    /// Names taken out of the default profile.
    pub allow: BTreeSet<String>,
    /// Rules added.
    pub deny: Vec<SyscallRule>,
}

impl Default for Seccomp {
    fn default() -> Seccomp {
        Seccomp::default_profile()
    }
}

const CLONE_NAMESPACES: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];
const CLONE_NEWTIME: u64 = 0x80;

/// Unconditionally refused with `EPERM` on every architecture: the name, and why.
const DENY_COMMON: &[(&str, &str)] = &[
    ("acct", "process accounting is the host's"),
    ("add_key", "the kernel keyring is not namespaced"),
    ("keyctl", "the kernel keyring is not namespaced"),
    ("request_key", "the kernel keyring is not namespaced"),
    ("bpf", "eBPF programs reach into the kernel"),
    (
        "perf_event_open",
        "observes the host and has a long record of bugs",
    ),
    ("userfaultfd", "the standard tool for widening kernel races"),
    ("kexec_load", "replaces the running kernel"),
    ("kexec_file_load", "replaces the running kernel"),
    ("init_module", "loads kernel code"),
    ("finit_module", "loads kernel code"),
    ("delete_module", "unloads kernel code"),
    (
        "open_by_handle_at",
        "opens files by handle, outside the root (the 'shocker' escape)",
    ),
    ("name_to_handle_at", "the other half of open_by_handle_at"),
    ("mount", "the sandbox's mounts are final"),
    ("umount2", "the sandbox's mounts are final (masks stay)"),
    ("pivot_root", "the sandbox's root is final"),
    ("fsopen", "new mount API: the sandbox's mounts are final"),
    ("fsconfig", "new mount API: the sandbox's mounts are final"),
    ("fsmount", "new mount API: the sandbox's mounts are final"),
    ("fspick", "new mount API: the sandbox's mounts are final"),
    (
        "move_mount",
        "new mount API: the sandbox's mounts are final",
    ),
    ("open_tree", "new mount API: the sandbox's mounts are final"),
    (
        "mount_setattr",
        "new mount API: read-only mounts stay read-only",
    ),
    ("swapon", "swap is the host's"),
    ("swapoff", "swap is the host's"),
    ("reboot", "reboots the host (or ends the PID namespace)"),
    ("settimeofday", "the clock is the host's"),
    ("clock_settime", "the clock is the host's"),
    ("clock_adjtime", "the clock is the host's"),
    ("ptrace", "no tracing of any process"),
    ("process_vm_readv", "reads another process's memory"),
    ("process_vm_writev", "writes another process's memory"),
    (
        "kcmp",
        "compares kernel objects of other processes (an address leak)",
    ),
    ("pidfd_getfd", "takes descriptors from another process"),
    ("setns", "no joining other namespaces"),
    ("quotactl", "disk quotas are the host's"),
    ("quotactl_fd", "disk quotas are the host's"),
    ("syslog", "the kernel log is the host's"),
    ("vhangup", "hangs up the terminal"),
    ("lookup_dcookie", "profiling interface, kernel addresses"),
    ("fanotify_init", "watches the whole file system"),
];

/// Refused with `EPERM` on x86_64 (the other architectures never had them).
const DENY_X86_64: &[(&str, &str)] = &[
    ("create_module", "obsolete module call"),
    ("get_kernel_syms", "obsolete module call"),
    ("query_module", "obsolete module call"),
    ("nfsservctl", "obsolete NFS server call"),
    ("_sysctl", "obsolete sysctl interface"),
    ("uselib", "obsolete, loads a library by path"),
    ("ustat", "obsolete file system statistics"),
    ("sysfs", "obsolete file system type lookup"),
    ("ioperm", "direct I/O port access"),
    ("iopl", "direct I/O port access"),
];

/// Refused with `ENOSYS`, which programs take as "not here" and fall back.
const NOSYS: &[(&str, &str)] = &[
    (
        "clone3",
        "its flags are in memory, out of the filter's sight; C libraries fall back to clone",
    ),
    (
        "io_uring_setup",
        "io_uring performs operations the filter never sees",
    ),
    (
        "io_uring_enter",
        "io_uring performs operations the filter never sees",
    ),
    (
        "io_uring_register",
        "io_uring performs operations the filter never sees",
    ),
];

const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// Personalities a program may set (Docker's list): Linux, 32-bit Linux, the `uname26`
/// variants, and the query.
const PERSONALITIES: [u64; 5] = [0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

impl Seccomp {
    /// The default profile; see [`Seccomp::default_rules`].
    pub fn default_profile() -> Seccomp {
        Seccomp {
            enabled: true,
            defaults: true,
            allow: BTreeSet::new(),
            deny: Vec::new(),
        }
    }

    /// No filter at all.
    pub fn off() -> Seccomp {
        Seccomp {
            enabled: false,
            ..Seccomp::default_profile()
        }
    }

    /// A filter with only the rules added with [`Seccomp::deny`] and [`Seccomp::rule`].
    pub fn empty() -> Seccomp {
        Seccomp {
            defaults: false,
            ..Seccomp::default_profile()
        }
    }

    /// Whether a filter is loaded.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Takes every rule about `name` out of the default profile (`ptrace`, to debug inside,
    /// or `io_uring_setup`). Allowing a name that a rule of [`Seccomp::deny`] refuses is a
    /// conflict, reported at spawn.
    pub fn allow(mut self, name: impl Into<String>) -> Seccomp {
        self.allow.insert(name.into());
        self
    }

    /// Refuses every call of `name` with `EPERM`.
    pub fn deny(self, name: impl Into<String>) -> Seccomp {
        self.rule(SyscallRule::new(name))
    }

    /// Adds a rule (a call, conditions on its arguments, an errno).
    pub fn rule(mut self, rule: SyscallRule) -> Seccomp {
        self.deny.push(rule);
        self
    }

    /// The rules of the default profile, each with why it is there:
    /// - refused with `EPERM`: the kernel keyring (`keyctl`, `add_key`, `request_key`),
    ///   `bpf`, `perf_event_open`, `userfaultfd`, kernel replacement and modules
    ///   (`kexec_*`, `*_module`), `open_by_handle_at` and `name_to_handle_at`, every mount
    ///   call (`mount`, `umount2`, `pivot_root`, the `fsopen` family, `open_tree`,
    ///   `move_mount`, `mount_setattr`), `swapon`/`swapoff`, `reboot`, setting the clock
    ///   (`settimeofday`, `clock_settime`, `clock_adjtime`), `acct`, `ptrace` and the other
    ///   ways into another process (`process_vm_readv`/`writev`, `kcmp`, `pidfd_getfd`),
    ///   `setns`, `quotactl`, `syslog`, `vhangup`, `lookup_dcookie`, `fanotify_init`, and
    ///   obsolete calls (`uselib`, `_sysctl`, `ioperm`, `iopl`, ... on x86_64);
    /// - refused with `EPERM` by argument: `unshare` and `clone` with any `CLONE_NEW*` flag,
    ///   `personality` other than Linux, 32-bit Linux or the query, `ioctl(TIOCSTI)`
    ///   (pushing keystrokes into a terminal) and `ioctl(TIOCLINUX)`;
    /// - refused with `ENOSYS` (so programs fall back): `clone3` (its flags are in memory,
    ///   out of a filter's sight; C libraries then use `clone`, whose flags are checked) and
    ///   `io_uring_*` (its operations bypass the filter).
    pub fn default_rules() -> Vec<(SyscallRule, &'static str)> {
        Seccomp::default_rules_for(native_arch())
    }

    fn default_rules_for(arch: seccompiler::TargetArch) -> Vec<(SyscallRule, &'static str)> {
        let mut v = Vec::new();
        let only_x86_64: &[(&str, &str)] = if arch == seccompiler::TargetArch::x86_64 {
            DENY_X86_64
        } else {
            &[]
        };
        for (name, why) in DENY_COMMON.iter().chain(only_x86_64) {
            v.push((SyscallRule::new(*name), *why));
        }
        for bit in CLONE_NAMESPACES.iter().chain([&CLONE_NEWTIME]) {
            v.push((
                SyscallRule::new("unshare").when(Arg::new(0).has_bit(*bit)),
                "no new namespaces",
            ));
        }
        // CLONE_NEWTIME (0x80) is part of clone's exit-signal byte: only clone3 takes it.
        for bit in CLONE_NAMESPACES {
            v.push((
                SyscallRule::new("clone").when(Arg::new(0).has_bit(bit)),
                "no new namespaces",
            ));
        }
        let mut personality = SyscallRule::new("personality");
        for p in PERSONALITIES {
            personality = personality.when(Arg::dword(0).ne(p));
        }
        v.push((
            personality,
            "no other execution domains (READ_IMPLIES_EXEC, ...)",
        ));
        v.push((
            SyscallRule::new("ioctl").when(Arg::dword(1).eq(TIOCSTI)),
            "pushes keystrokes into a terminal",
        ));
        v.push((
            SyscallRule::new("ioctl").when(Arg::dword(1).eq(TIOCLINUX)),
            "reads and writes the console",
        ));
        for (name, why) in NOSYS {
            v.push((SyscallRule::new(*name).errno(libc::ENOSYS), *why));
        }
        v
    }

    /// Every rule in force, the default ones first.
    fn effective_rules(&self, arch: seccompiler::TargetArch) -> Vec<SyscallRule> {
        let mut v: Vec<SyscallRule> = if self.defaults {
            Seccomp::default_rules_for(arch)
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| !self.allow.contains(&r.name))
                .collect()
        } else {
            Vec::new()
        };
        v.extend(self.deny.iter().cloned());
        v
    }

    /// Checks the profile and compiles it to BPF (cached per profile).
    pub(crate) fn compile(&self) -> Result<Option<Arc<Compiled>>> {
        if !self.enabled {
            return Ok(None);
        }
        static DEFAULT: OnceLock<Arc<Compiled>> = OnceLock::new();
        static CACHE: OnceLock<Mutex<HashMap<Seccomp, Arc<Compiled>>>> = OnceLock::new();
        if *self == Seccomp::default_profile() {
            if let Some(c) = DEFAULT.get() {
                return Ok(Some(c.clone()));
            }
            let c = Arc::new(self.build(native_arch())?);
            return Ok(Some(DEFAULT.get_or_init(|| c).clone()));
        }
        let cache = CACHE.get_or_init(Default::default);
        if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(self) {
            return Ok(Some(c.clone()));
        }
        let c = Arc::new(self.build(native_arch())?);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(self.clone(), c.clone());
        Ok(Some(c))
    }

    fn check(&self) -> Result<()> {
        for r in &self.deny {
            if self.allow.contains(&r.name) {
                return Err(Error::Conflict(format!(
                    "seccomp: system call {:?} is both allowed and denied",
                    r.name
                )));
            }
            if !(1..=4095).contains(&r.errno) {
                return Err(Error::Invalid {
                    what: "seccomp errno",
                    reason: format!("{} for {:?} is not an errno (1 to 4095)", r.errno, r.name),
                });
            }
            for a in &r.when {
                if a.index > 5 {
                    return Err(Error::Invalid {
                        what: "seccomp argument condition",
                        reason: format!(
                            "argument {} of {:?}: system calls have arguments 0 to 5",
                            a.index, r.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The BPF program: one filter, whatever the errnos (see [`assemble`]).
    fn build(&self, arch: seccompiler::TargetArch) -> Result<Compiled> {
        self.check()?;
        let defaults = self.effective_rules(arch);
        // Names allowed must exist too: a typo would otherwise go unnoticed.
        let names: Vec<&str> = self
            .allow
            .iter()
            .map(String::as_str)
            .chain(defaults.iter().map(|r| r.name.as_str()))
            .collect();
        let numbers = syscall_numbers(&names, arch)?;
        let user = defaults.len() - self.deny.len();
        // The caller's rules first: for one call, the first rule that matches decides.
        let mut by_nr: BTreeMap<u32, Vec<&SyscallRule>> = BTreeMap::new();
        for r in defaults[user..].iter().chain(&defaults[..user]) {
            by_nr.entry(numbers[&r.name]).or_default().push(r);
        }
        let program = assemble(&by_nr, arch);
        if program.len() > BPF_MAXINSNS {
            return Err(Error::Invalid {
                what: "seccomp profile",
                reason: format!(
                    "{} BPF instructions, more than the kernel's {BPF_MAXINSNS}",
                    program.len()
                ),
            });
        }
        Ok(Compiled::new(program))
    }
}

const BPF_MAXINSNS: usize = 4096;

/// The number of system call `name` on `arch`.
#[cfg(test)]
fn syscall_number(name: &str, arch: seccompiler::TargetArch) -> Result<u32> {
    Ok(syscall_numbers(&[name], arch)?[name])
}

/// The numbers of the default profile's calls on this machine's architecture, from libc:
/// building the default filter then needs no table at all (seccompiler's costs about a
/// millisecond to build, once per process). A unit test checks them against seccompiler.
fn native_number(name: &str) -> Option<u32> {
    let n = match name {
        "acct" => libc::SYS_acct,
        "add_key" => libc::SYS_add_key,
        "keyctl" => libc::SYS_keyctl,
        "request_key" => libc::SYS_request_key,
        "bpf" => libc::SYS_bpf,
        "perf_event_open" => libc::SYS_perf_event_open,
        "userfaultfd" => libc::SYS_userfaultfd,
        "kexec_load" => libc::SYS_kexec_load,
        "kexec_file_load" => libc::SYS_kexec_file_load,
        "init_module" => libc::SYS_init_module,
        "finit_module" => libc::SYS_finit_module,
        "delete_module" => libc::SYS_delete_module,
        "open_by_handle_at" => libc::SYS_open_by_handle_at,
        "name_to_handle_at" => libc::SYS_name_to_handle_at,
        "mount" => libc::SYS_mount,
        "umount2" => libc::SYS_umount2,
        "pivot_root" => libc::SYS_pivot_root,
        "fsopen" => libc::SYS_fsopen,
        "fsconfig" => libc::SYS_fsconfig,
        "fsmount" => libc::SYS_fsmount,
        "fspick" => libc::SYS_fspick,
        "move_mount" => libc::SYS_move_mount,
        "open_tree" => libc::SYS_open_tree,
        "mount_setattr" => libc::SYS_mount_setattr,
        "swapon" => libc::SYS_swapon,
        "swapoff" => libc::SYS_swapoff,
        "reboot" => libc::SYS_reboot,
        "settimeofday" => libc::SYS_settimeofday,
        "clock_settime" => libc::SYS_clock_settime,
        "clock_adjtime" => libc::SYS_clock_adjtime,
        "ptrace" => libc::SYS_ptrace,
        "process_vm_readv" => libc::SYS_process_vm_readv,
        "process_vm_writev" => libc::SYS_process_vm_writev,
        "kcmp" => libc::SYS_kcmp,
        "pidfd_getfd" => libc::SYS_pidfd_getfd,
        "setns" => libc::SYS_setns,
        "quotactl" => libc::SYS_quotactl,
        "quotactl_fd" => libc::SYS_quotactl_fd,
        "syslog" => libc::SYS_syslog,
        "vhangup" => libc::SYS_vhangup,
        "lookup_dcookie" => libc::SYS_lookup_dcookie,
        "fanotify_init" => libc::SYS_fanotify_init,
        "unshare" => libc::SYS_unshare,
        "clone" => libc::SYS_clone,
        "personality" => libc::SYS_personality,
        "ioctl" => libc::SYS_ioctl,
        "clone3" => libc::SYS_clone3,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "io_uring_enter" => libc::SYS_io_uring_enter,
        "io_uring_register" => libc::SYS_io_uring_register,
        _ => return native_arch_number(name),
    };
    Some(n as u32)
}

#[cfg(target_arch = "x86_64")]
fn native_arch_number(name: &str) -> Option<u32> {
    let n = match name {
        // (Removed from the kernel; libc no longer names them.)
        "create_module" => 174,
        "get_kernel_syms" => 177,
        "query_module" => 178,
        "nfsservctl" => libc::SYS_nfsservctl,
        "_sysctl" => libc::SYS__sysctl,
        "uselib" => libc::SYS_uselib,
        "ustat" => libc::SYS_ustat,
        "sysfs" => libc::SYS_sysfs,
        "ioperm" => libc::SYS_ioperm,
        "iopl" => libc::SYS_iopl,
        _ => return None,
    };
    Some(n as u32)
}

#[cfg(not(target_arch = "x86_64"))]
fn native_arch_number(_name: &str) -> Option<u32> {
    None
}

/// The numbers of system calls `names` on `arch`. seccompiler's tables are not public; its
/// compiler is: a filter with one call is the architecture check (3 instructions), the
/// load of the number, and the comparison with it. Names not seen before are compiled
/// together, one filter each, in one call (one table built), then remembered.
fn syscall_numbers(names: &[&str], arch: seccompiler::TargetArch) -> Result<HashMap<String, u32>> {
    static CACHE: OnceLock<Mutex<HashMap<(String, bool), u32>>> = OnceLock::new();
    let x86 = arch == seccompiler::TargetArch::x86_64;
    let cache = CACHE.get_or_init(Default::default);
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    {
        let known = cache.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if let Some(n) = native_number(name).filter(|_| arch == native_arch()) {
                out.insert(name.to_string(), n);
                continue;
            }
            match known.get(&(name.to_string(), x86)) {
                Some(n) => {
                    out.insert(name.to_string(), *n);
                }
                None => missing.push(*name),
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let mut doc = serde_json::Map::new();
    for (i, name) in missing.iter().enumerate() {
        doc.insert(
            format!("n{i}"),
            serde_json::json!({
                "mismatch_action": "allow",
                "match_action": { "errno": libc::EPERM },
                "filter": [{ "syscall": name }],
            }),
        );
    }
    let text = serde_json::Value::Object(doc).to_string();
    let map = seccompiler::compile_from_json(text.as_bytes(), arch)
        .map_err(|e| profile_error(&e, arch))?;
    let mut known = cache.lock().unwrap_or_else(|e| e.into_inner());
    for (i, name) in missing.iter().enumerate() {
        let n = match map.get(&format!("n{i}")).and_then(|p| p.get(4)) {
            Some(insn) if insn.code == bpf::JMP | bpf::JEQ => insn.k,
            _ => {
                return Err(Error::Invalid {
                    what: "seccomp profile",
                    reason: format!("cannot tell the number of system call {name:?}"),
                })
            }
        };
        known.insert((name.to_string(), x86), n);
        out.insert(name.to_string(), n);
    }
    Ok(out)
}

/// Classic BPF opcodes and `struct seccomp_data` offsets.
mod bpf {
    pub const LD_W_ABS: u16 = 0x20;
    pub const JMP: u16 = 0x05;
    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const RET: u16 = 0x06;
    pub const ALU_AND_K: u16 = 0x04 | 0x50;
    pub const NR: u32 = 0;
    pub const ARCH: u32 = 4;
    /// Argument `i`'s low 32 bits (little-endian); the high ones follow.
    pub fn arg_low(i: u8) -> u32 {
        16 + 8 * u32::from(i)
    }
}

/// A BPF program under construction, with forward jumps to labels.
struct Asm {
    insns: Vec<seccompiler::sock_filter>,
    labels: Vec<usize>,
    fixups: Vec<(usize, usize)>,
}

impl Asm {
    fn op(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.insns
            .push(seccompiler::sock_filter { code, jt, jf, k });
    }
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }
    fn place(&mut self, label: usize) {
        self.labels[label] = self.insns.len();
    }
    /// An unconditional jump (32-bit offset: any distance forward).
    fn ja(&mut self, label: usize) {
        self.fixups.push((self.insns.len(), label));
        self.op(bpf::JMP | bpf::JA, 0, 0, 0);
    }
    fn ret(&mut self, action: u32) {
        self.op(bpf::RET, 0, 0, action);
    }
    fn finish(mut self) -> Vec<seccompiler::sock_filter> {
        for (at, label) in self.fixups {
            self.insns[at].k = (self.labels[label] - (at + 1)) as u32;
        }
        self.insns
    }

    /// Continues when argument condition `a` holds, jumps to `fail` otherwise.
    fn condition(&mut self, a: &Arg, fail: usize) {
        let lo = bpf::arg_low(a.index);
        let (vlo, vhi) = (a.value as u32, (a.value >> 32) as u32);
        // "If the comparison holds, skip the jump to `fail`" (or the reverse).
        let check = |asm: &mut Asm, code: u16, k: u32, holds_when_true: bool| {
            let (jt, jf) = if holds_when_true { (1, 0) } else { (0, 1) };
            asm.op(bpf::JMP | code, jt, jf, k);
            asm.ja(fail);
        };
        if a.dword {
            self.op(bpf::LD_W_ABS, 0, 0, lo);
            match a.op {
                ArgOp::Eq => check(self, bpf::JEQ, vlo, true),
                ArgOp::Ne => check(self, bpf::JEQ, vlo, false),
                ArgOp::Gt => check(self, bpf::JGT, vlo, true),
                ArgOp::Ge => check(self, bpf::JGE, vlo, true),
                ArgOp::Lt => check(self, bpf::JGE, vlo, false),
                ArgOp::Le => check(self, bpf::JGT, vlo, false),
                ArgOp::MaskedEq(m) => {
                    self.op(bpf::ALU_AND_K, 0, 0, m as u32);
                    check(self, bpf::JEQ, vlo, true)
                }
            }
            return;
        }
        match a.op {
            ArgOp::Eq => {
                self.op(bpf::LD_W_ABS, 0, 0, lo);
                check(self, bpf::JEQ, vlo, true);
                self.op(bpf::LD_W_ABS, 0, 0, lo + 4);
                check(self, bpf::JEQ, vhi, true);
            }
            ArgOp::MaskedEq(m) => {
                self.op(bpf::LD_W_ABS, 0, 0, lo);
                self.op(bpf::ALU_AND_K, 0, 0, m as u32);
                check(self, bpf::JEQ, vlo, true);
                self.op(bpf::LD_W_ABS, 0, 0, lo + 4);
                self.op(bpf::ALU_AND_K, 0, 0, (m >> 32) as u32);
                check(self, bpf::JEQ, vhi, true);
            }
            ArgOp::Ne => {
                // Holds when either half differs.
                self.op(bpf::LD_W_ABS, 0, 0, lo);
                self.op(bpf::JMP | bpf::JEQ, 0, 3, vlo);
                self.op(bpf::LD_W_ABS, 0, 0, lo + 4);
                self.op(bpf::JMP | bpf::JEQ, 0, 1, vhi);
                self.ja(fail);
            }
            ArgOp::Gt | ArgOp::Ge => {
                // High halves decide unless equal; then the low halves.
                let low = if a.op == ArgOp::Gt {
                    bpf::JGT
                } else {
                    bpf::JGE
                };
                self.op(bpf::LD_W_ABS, 0, 0, lo + 4);
                self.op(bpf::JMP | bpf::JGT, 4, 0, vhi);
                self.op(bpf::JMP | bpf::JEQ, 0, 2, vhi);
                self.op(bpf::LD_W_ABS, 0, 0, lo);
                self.op(bpf::JMP | low, 1, 0, vlo);
                self.ja(fail);
            }
            ArgOp::Lt | ArgOp::Le => {
                // The negation of Ge / Gt.
                let low = if a.op == ArgOp::Lt {
                    bpf::JGE
                } else {
                    bpf::JGT
                };
                self.op(bpf::LD_W_ABS, 0, 0, lo + 4);
                self.op(bpf::JMP | bpf::JGT, 3, 0, vhi);
                self.op(bpf::JMP | bpf::JEQ, 0, 3, vhi);
                self.op(bpf::LD_W_ABS, 0, 0, lo);
                self.op(bpf::JMP | low, 0, 1, vlo);
                self.ja(fail);
            }
        }
    }

    /// A binary search over the sorted call numbers: each leads to its block, any other
    /// number to `allow`. Any number takes a few steps, which keeps the kernel's per-filter
    /// work small: when a filter is attached it runs the filter for every call number to
    /// find the ones always allowed (its cache), so a linear chain of rules costs
    /// hundreds of microseconds per spawn.
    fn search(&mut self, nrs: &[(u32, usize)], allow: usize) {
        if nrs.len() <= 2 {
            for &(nr, block) in nrs {
                self.op(bpf::JMP | bpf::JEQ, 0, 1, nr);
                self.ja(block);
            }
            self.ja(allow);
            return;
        }
        let mid = nrs.len() / 2;
        let right = self.label();
        self.op(bpf::JMP | bpf::JGE, 0, 1, nrs[mid].0);
        self.ja(right);
        self.search(&nrs[..mid], allow);
        self.place(right);
        self.search(&nrs[mid..], allow);
    }
}

/// The filter: the architecture check (another ABI is killed), x32 calls refused with
/// `ENOSYS` (on x86_64 they carry the native architecture, with `nr | 0x40000000`, and
/// would match no rule), a binary search on the call number, then per call its rules in
/// order (all conditions of a rule met: its errno), and `ALLOW` for everything else.
fn assemble(
    by_nr: &BTreeMap<u32, Vec<&SyscallRule>>,
    arch: seccompiler::TargetArch,
) -> Vec<seccompiler::sock_filter> {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let x86_64 = arch == seccompiler::TargetArch::x86_64;
    let mut asm = Asm {
        insns: Vec::new(),
        labels: Vec::new(),
        fixups: Vec::new(),
    };
    asm.op(bpf::LD_W_ABS, 0, 0, bpf::ARCH);
    let audit = if x86_64 {
        AUDIT_ARCH_X86_64
    } else {
        AUDIT_ARCH_AARCH64
    };
    asm.op(bpf::JMP | bpf::JEQ, 1, 0, audit);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.op(bpf::LD_W_ABS, 0, 0, bpf::NR);
    if x86_64 {
        asm.op(bpf::JMP | bpf::JGE, 0, 1, X32_SYSCALL_BIT);
        asm.ret(errno(libc::ENOSYS));
    }
    let allow = asm.label();
    let blocks: Vec<(u32, usize)> = by_nr.keys().map(|&nr| (nr, asm.label())).collect();
    asm.search(&blocks, allow);
    asm.place(allow);
    asm.ret(libc::SECCOMP_RET_ALLOW);
    for ((_, block), rules) in blocks.iter().zip(by_nr.values()) {
        asm.place(*block);
        let mut always = false;
        for r in rules {
            if r.when.is_empty() {
                asm.ret(errno(r.errno));
                always = true;
                break;
            }
            let next = asm.label();
            for a in &r.when {
                asm.condition(a, next);
            }
            asm.ret(errno(r.errno));
            asm.place(next);
        }
        if !always {
            asm.ret(libc::SECCOMP_RET_ALLOW);
        }
    }
    asm.finish()
}

/// seccompiler's error as ours; its "unknown name" error type is not public, so the name is
/// taken from the message (`Invalid syscall name: NAME for given arch: ARCH.`).
fn profile_error(e: &seccompiler::Error, arch: seccompiler::TargetArch) -> Error {
    let text = e.to_string();
    const MARK: &str = "Invalid syscall name: ";
    let reason = match text.find(MARK) {
        Some(i) => {
            let rest = &text[i + MARK.len()..];
            let name = rest.split(" for given arch").next().unwrap_or(rest);
            format!("no system call named {name:?} on {arch:?}")
        }
        None => text,
    };
    Error::Invalid {
        what: "seccomp profile",
        reason,
    }
}

fn native_arch() -> seccompiler::TargetArch {
    #[cfg(target_arch = "x86_64")]
    return seccompiler::TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return seccompiler::TargetArch::aarch64;
}

/// `struct sock_fprog`, pointing into a [`Compiled`]'s program.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SockFprog {
    len: u16,
    filter: *const seccompiler::sock_filter,
}

/// A compiled profile: one BPF program, and the `sock_fprog` the child hands to
/// `seccomp(2)`.
#[derive(Debug)]
pub(crate) struct Compiled {
    // Owns the memory `fprog` points into.
    #[cfg_attr(not(test), allow(dead_code))]
    program: Vec<seccompiler::sock_filter>,
    fprog: SockFprog,
}

// SAFETY: the raw pointer in `fprog` points into `program`, which the value owns and never
// changes after construction (moving the Vec does not move its heap buffer); nothing is
// mutated through a shared reference.
unsafe impl Send for Compiled {}
// SAFETY: as above.
unsafe impl Sync for Compiled {}

impl Compiled {
    fn new(program: Vec<seccompiler::sock_filter>) -> Compiled {
        let fprog = SockFprog {
            len: program.len() as u16,
            filter: program.as_ptr(),
        };
        Compiled { program, fprog }
    }

    /// The program, as `seccomp(2)` takes it.
    pub(crate) fn fprog(&self) -> &SockFprog {
        &self.fprog
    }

    #[cfg(test)]
    fn program(&self) -> &[seccompiler::sock_filter] {
        &self.program
    }
}

/// Parses a capability name: `CAP_NET_ADMIN`, `cap_net_admin` or `net_admin`.
pub fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse().map_err(|_| Error::Invalid {
        what: "capability",
        reason: format!("{name:?} is not a capability (see capabilities(7))"),
    })
}

/// The bitmask of a set of capabilities.
pub(crate) fn capability_mask(set: &[Capability]) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub(crate) fn last_capability() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63)
    })
}

/// Landlock rules: the only paths (inside the sandbox's root) the program may open, read-only
/// or read-write, each with everything beneath it. Applied when the kernel has landlock;
/// [`Landlock::required`] makes its absence an error instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Landlock {
    /// Paths readable (and executable), with what is beneath.
    pub read_only: Vec<PathBuf>,
    /// Paths readable and writable, with what is beneath.
    pub read_write: Vec<PathBuf>,
    /// Fail the spawn when the kernel has no landlock.
    pub required: bool,
}

impl Landlock {
    /// No path allowed yet.
    pub fn new() -> Landlock {
        Landlock::default()
    }

    /// Allows reading (and executing) `path` and everything beneath it.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Landlock {
        self.read_only.push(path.into());
        self
    }

    /// Allows reading and writing `path` and everything beneath it.
    pub fn read_write(mut self, path: impl Into<PathBuf>) -> Landlock {
        self.read_write.push(path.into());
        self
    }

    /// Fails the spawn ([`Error::Unsupported`]) on a kernel without landlock, instead of
    /// running without it.
    pub fn required(mut self) -> Landlock {
        self.required = true;
        self
    }
}

/// Landlock's filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
pub(crate) mod landlock_access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// The rights that apply to a file (the others are about directories).
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
    /// Reading and executing.
    pub const READ: u64 = EXECUTE | READ_FILE | READ_DIR;

    /// Every right that landlock ABI `abi` knows (and so restricts).
    pub fn handled(abi: u32) -> u64 {
        match abi {
            0 => 0,
            1 => (1 << 13) - 1,
            2 => (1 << 14) - 1,
            3 | 4 => (1 << 15) - 1,
            _ => (1 << 16) - 1,
        }
    }
}

/// The kernel's landlock ABI version, or `None` without landlock.
fn landlock_abi() -> Option<u32> {
    // The kernel's answer does not change: asked once, not on every spawn.
    static ABI: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *ABI.get_or_init(ask_landlock_abi)
}

fn ask_landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no attribute pointer and no size.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

/// A landlock ruleset the child fills (paths are resolved inside its root) and applies.
#[derive(Debug)]
pub(crate) struct LandlockPlan {
    pub ruleset: std::os::fd::OwnedFd,
    /// `(path inside the root, rights)`.
    pub rules: Vec<(std::ffi::CString, u64)>,
}

impl Landlock {
    /// Checks the rules and creates the ruleset; `None` when the kernel has no landlock and
    /// it is not required.
    pub(crate) fn prepare(&self) -> Result<Option<LandlockPlan>> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let mut rules = Vec::new();
        for (paths, rights) in [
            (&self.read_only, landlock_access::READ),
            (&self.read_write, u64::MAX),
        ] {
            for p in paths {
                if !p.is_absolute() {
                    return Err(Error::Invalid {
                        what: "landlock path",
                        reason: format!("{} is not an absolute path", p.display()),
                    });
                }
                let c =
                    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Nul {
                        what: "landlock path",
                        value: p.display().to_string(),
                    })?;
                rules.push((c, rights));
            }
        }
        let Some(abi) = landlock_abi() else {
            if self.required {
                return Err(Error::Unsupported(
                    "landlock: this kernel has none (Linux 5.13+, with landlock in the \
                     lsm= list)"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let handled = landlock_access::handled(abi);
        for r in &mut rules {
            r.1 &= handled;
        }
        #[repr(C)]
        struct RulesetAttr {
            handled_access_fs: u64,
        }
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: a ruleset attribute of the size given; the result is a new descriptor.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0,
            )
        };
        if fd < 0 {
            return Err(Error::os(
                "create a landlock ruleset",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a new descriptor (close-on-exec by the kernel), owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        let ruleset =
            crate::sys::above_stdio(fd).map_err(|e| Error::os("create a landlock ruleset", e))?;
        Ok(Some(LandlockPlan { ruleset, rules }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for seccomp programs (the instructions `assemble` uses).
    fn run(p: &[seccompiler::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                0 => nr,
                4 => arch,
                o if o >= 16 => {
                    let a = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    }
                }
                _ => panic!("load at {off}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = &p[pc];
            pc += 1;
            match i.code {
                bpf::LD_W_ABS => acc = word(i.k),
                bpf::ALU_AND_K => acc &= i.k,
                bpf::RET => return i.k,
                c if c == bpf::JMP | bpf::JA => pc += i.k as usize,
                c => {
                    let holds = match c & !bpf::JMP {
                        bpf::JEQ => acc == i.k,
                        bpf::JGT => acc > i.k,
                        bpf::JGE => acc >= i.k,
                        other => panic!("opcode {other:#x}"),
                    };
                    pc += usize::from(if holds { i.jt } else { i.jf });
                }
            }
        }
    }

    const X86: u32 = 0xC000_003E;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn default_x86_64() -> Vec<seccompiler::sock_filter> {
        Seccomp::default_profile()
            .build(seccompiler::TargetArch::x86_64)
            .unwrap()
            .program()
            .to_vec()
    }

    #[test]
    fn the_default_profile_compiles_on_every_architecture() {
        for arch in [
            seccompiler::TargetArch::x86_64,
            seccompiler::TargetArch::aarch64,
        ] {
            let c = Seccomp::default_profile().build(arch).unwrap();
            // One filter whatever the errnos: one attach, one pass of the kernel's cache.
            assert!(c.program().len() < 600, "{arch:?}: {}", c.program().len());
        }
    }

    #[test]
    fn the_native_table_agrees_with_seccompilers() {
        let mut names: Vec<String> = Seccomp::default_rules()
            .into_iter()
            .map(|(r, _)| r.name)
            .collect();
        names.sort();
        names.dedup();
        let arch = native_arch();
        for name in &names {
            let ours = native_number(name).unwrap_or_else(|| panic!("{name} not in libc's table"));
            let text = serde_json::json!({ "n": {
                "mismatch_action": "allow",
                "match_action": { "errno": 1 },
                "filter": [{ "syscall": name }],
            } })
            .to_string();
            let map = seccompiler::compile_from_json(text.as_bytes(), arch).unwrap();
            assert_eq!(map["n"][4].k, ours, "{name}");
        }
    }

    #[test]
    fn numbers_come_from_the_right_table() {
        let x86 = seccompiler::TargetArch::x86_64;
        assert_eq!(syscall_number("keyctl", x86).unwrap(), 250);
        assert_eq!(syscall_number("ioctl", x86).unwrap(), 16);
        assert_eq!(syscall_number("clone3", x86).unwrap(), 435);
        let arm = seccompiler::TargetArch::aarch64;
        assert_eq!(syscall_number("ioctl", arm).unwrap(), 29);
        assert_eq!(
            syscall_number("keyctl", native_arch()).unwrap(),
            libc::SYS_keyctl as u32
        );
    }

    #[test]
    fn the_default_profile_decides_as_documented() {
        let p = default_x86_64();
        let call = |nr: i64, args: [u64; 6]| run(&p, nr as u32, X86, args);
        let none = [0; 6];
        assert_eq!(
            run(&p, 39, 0x4000_0003, none),
            libc::SECCOMP_RET_KILL_PROCESS
        );
        assert_eq!(call(0x4000_0000 | libc::SYS_getpid, none), ENOSYS);
        for nr in [
            libc::SYS_read,
            libc::SYS_getpid,
            libc::SYS_openat,
            libc::SYS_exit_group,
        ] {
            assert_eq!(call(nr, none), ALLOW, "{nr}");
        }
        for nr in [
            libc::SYS_keyctl,
            libc::SYS_bpf,
            libc::SYS_mount,
            libc::SYS_ptrace,
            libc::SYS_setns,
            libc::SYS_open_by_handle_at,
        ] {
            assert_eq!(call(nr, none), EPERM, "{nr}");
        }
        assert_eq!(call(libc::SYS_clone3, none), ENOSYS);
        assert_eq!(call(libc::SYS_io_uring_setup, none), ENOSYS);
        let flags = |f: i32| [f as u64, 0, 0, 0, 0, 0];
        let fork = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
        assert_eq!(call(libc::SYS_clone, flags(fork)), ALLOW);
        assert_eq!(
            call(libc::SYS_clone, flags(fork | libc::CLONE_NEWUSER)),
            EPERM
        );
        assert_eq!(call(libc::SYS_unshare, flags(libc::CLONE_FILES)), ALLOW);
        assert_eq!(call(libc::SYS_unshare, flags(libc::CLONE_NEWNS)), EPERM);
        assert_eq!(call(libc::SYS_unshare, flags(0x80)), EPERM, "CLONE_NEWTIME");
        let ioctl = |req: u64| call(libc::SYS_ioctl, [0, req, 0, 0, 0, 0]);
        assert_eq!(ioctl(TIOCSTI), EPERM);
        assert_eq!(ioctl(1 << 32 | TIOCSTI), EPERM, "the request is an int");
        assert_eq!(ioctl(TIOCLINUX), EPERM);
        assert_eq!(ioctl(libc::TCGETS), ALLOW);
        let persona = |v: u64| call(libc::SYS_personality, [v, 0, 0, 0, 0, 0]);
        assert_eq!(persona(0), ALLOW);
        assert_eq!(persona(0xffff_ffff), ALLOW);
        assert_eq!(persona(0x0040_0000), EPERM, "READ_IMPLIES_EXEC");
    }

    #[test]
    fn argument_conditions_compare_as_documented() {
        // Values where halves are equal, differ, or sit at the edges.
        let edges = [
            0u64,
            1,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
            0x1_ffff_ffff,
            0x8000_0000_0000_0000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values: Vec<u64> = edges.to_vec();
        values.extend((0..24).map(|_| next()));
        for dword in [false, true] {
            for op in ["eq", "ne", "lt", "le", "gt", "ge", "masked"] {
                for &v in &values {
                    let a = if dword { Arg::dword(2) } else { Arg::new(2) };
                    let mask = v.rotate_left(7) | 0xff;
                    let a = match op {
                        "eq" => a.eq(v),
                        "ne" => a.ne(v),
                        "lt" => a.lt(v),
                        "le" => a.le(v),
                        "gt" => a.gt(v),
                        "ge" => a.ge(v),
                        _ => a.masked_eq(mask, v & mask),
                    };
                    let s = Seccomp::empty().rule(SyscallRule::new("read").when(a));
                    let p = s.build(seccompiler::TargetArch::x86_64).unwrap();
                    let p = p.program();
                    for &x in values
                        .iter()
                        .chain(&[v, v.wrapping_add(1), v.wrapping_sub(1)])
                    {
                        let (xx, vv, mm) = if dword {
                            (x & 0xffff_ffff, v & 0xffff_ffff, mask & 0xffff_ffff)
                        } else {
                            (x, v, mask)
                        };
                        let want = match op {
                            "eq" => xx == vv,
                            "ne" => xx != vv,
                            "lt" => xx < vv,
                            "le" => xx <= vv,
                            "gt" => xx > vv,
                            "ge" => xx >= vv,
                            _ => xx & mm == vv & mm,
                        };
                        let got = run(p, 0, X86, [0, 0, x, 0, 0, 0]) == EPERM;
                        assert_eq!(got, want, "dword={dword} {op} {v:#x} at {x:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_callers_rules_come_first_and_a_rule_needs_all_its_conditions() {
        let s = Seccomp::default_profile()
            .rule(
                SyscallRule::new("ioctl")
                    .when(Arg::dword(1).eq(TIOCSTI))
                    .errno(libc::ENOTTY),
            )
            .rule(
                SyscallRule::new("socket")
                    .when(Arg::dword(0).eq(2))
                    .when(Arg::dword(1).eq(3))
                    .errno(libc::EACCES),
            );
        let c = s.build(seccompiler::TargetArch::x86_64).unwrap();
        let p = c.program();
        let enotty = libc::SECCOMP_RET_ERRNO | libc::ENOTTY as u32;
        let eacces = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
        assert_eq!(run(p, 16, X86, [0, TIOCSTI, 0, 0, 0, 0]), enotty);
        assert_eq!(run(p, 16, X86, [0, TIOCLINUX, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(p, 41, X86, [2, 3, 0, 0, 0, 0]), eacces);
        assert_eq!(run(p, 41, X86, [2, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(p, 41, X86, [10, 3, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn unknown_names_are_typed_errors() {
        for s in [
            Seccomp::default_profile().deny("no_such_call"),
            Seccomp::default_profile().allow("ptraec"),
        ] {
            match s.compile() {
                Err(Error::Invalid { what, reason }) => {
                    assert_eq!(what, "seccomp profile");
                    assert!(reason.contains("no system call named"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn conflicts_and_bad_rules_are_refused() {
        let s = Seccomp::default_profile().allow("socket").deny("socket");
        assert!(matches!(s.compile(), Err(Error::Conflict(_))));
        let s = Seccomp::empty().rule(SyscallRule::new("socket").errno(0));
        assert!(matches!(s.compile(), Err(Error::Invalid { .. })));
        let s = Seccomp::empty().rule(SyscallRule::new("socket").when(Arg::new(6).eq(1)));
        assert!(matches!(s.compile(), Err(Error::Invalid { .. })));
    }

    #[test]
    fn allowing_takes_every_rule_of_a_name_away() {
        let s = Seccomp::default_profile().allow("clone").allow("ioctl");
        let rules = s.effective_rules(native_arch());
        assert!(rules.iter().all(|r| r.name != "clone" && r.name != "ioctl"));
        assert!(rules.iter().any(|r| r.name == "unshare"));
        assert!(s.compile().unwrap().is_some());
        assert!(Seccomp::off().compile().unwrap().is_none());
        // Everything allowed away still compiles.
        let mut all = Seccomp::default_profile();
        for (r, _) in Seccomp::default_rules() {
            all = all.allow(r.name);
        }
        let c = all.build(seccompiler::TargetArch::x86_64).unwrap();
        assert_eq!(run(c.program(), 250, X86, [0; 6]), ALLOW);
    }

    #[test]
    fn profiles_round_trip_through_serde() {
        let s = Seccomp::default_profile()
            .allow("ptrace")
            .rule(
                SyscallRule::new("socket")
                    .when(Arg::dword(0).eq(40))
                    .errno(libc::EAFNOSUPPORT),
            )
            .rule(SyscallRule::new("clone").when(Arg::new(0).masked_eq(0xff, 3)));
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Seccomp>(&j).unwrap(), s);
        let short: Seccomp = serde_json::from_str(r#"{"deny":[{"name":"socket"}]}"#).unwrap();
        assert_eq!(short.deny[0].errno, libc::EPERM);
        assert!(short.defaults && short.enabled);
    }

    #[test]
    fn capability_names_parse_in_every_spelling() {
        for n in ["CAP_NET_ADMIN", "cap_net_admin", "net_admin", " Net_Admin "] {
            assert_eq!(parse_capability(n).unwrap(), Capability::CAP_NET_ADMIN);
        }
        assert!(matches!(
            parse_capability("net_adnim"),
            Err(Error::Invalid {
                what: "capability",
                ..
            })
        ));
    }
}
