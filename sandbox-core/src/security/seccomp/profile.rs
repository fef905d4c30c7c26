//! The default seccomp profile: what it refuses, and why each entry is there.

use super::syscalls::native_arch;
use super::{Arg, Seccomp, SyscallRule};

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

pub(super) const TIOCSTI: u64 = 0x5412;
pub(super) const TIOCLINUX: u64 = 0x541C;

/// Personalities a program may set (Docker's list): Linux, 32-bit Linux, the `uname26`
/// variants, and the query.
const PERSONALITIES: [u64; 5] = [0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

impl Seccomp {
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

    pub(super) fn default_rules_for(
        arch: seccompiler::TargetArch,
    ) -> Vec<(SyscallRule, &'static str)> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::bpf::tests::{run, ALLOW, ENOSYS, EPERM, X86};

    fn default_x86_64() -> Vec<seccompiler::sock_filter> {
        Seccomp::default_profile()
            .compile_for(seccompiler::TargetArch::x86_64)
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
            let c = Seccomp::default_profile().compile_for(arch).unwrap();
            // One filter whatever the errnos: one attach, one pass of the kernel's cache.
            assert!(c.program().len() < 600, "{arch:?}: {}", c.program().len());
        }
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
}
