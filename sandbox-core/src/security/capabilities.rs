//! The capabilities a sandbox keeps: [`Capability`], its names, and the masks the child
//! applies.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Declares [`Capability`] from one line per capability (its doc, its kernel name, its
/// variant and its number), so the name is written once for `Display`, `FromStr` and serde.
macro_rules! capabilities {
    ($($(#[doc = $doc:literal])* $name:literal => $variant:ident = $index:literal,)*) => {
        /// A Linux capability (see `capabilities(7)`), one a sandbox may keep with
        /// [`Sandbox::capability`](crate::Sandbox::capability).
        ///
        /// Written and read as the kernel spells it: `CAP_NET_RAW` (its `Display`, and its
        /// serde form in a profile). [`FromStr`] also takes `cap_net_raw`, `net_raw` or
        /// ` Net_Raw ` (any case, the `CAP_` prefix optional, spaces around ignored):
        ///
        /// ```
        /// use sandbox_core::Capability;
        /// let raw: Capability = "net_raw".parse()?;
        /// assert_eq!(raw, Capability::NetRaw);
        /// assert_eq!(raw.to_string(), "CAP_NET_RAW");
        /// assert_eq!(raw.index(), 13);
        /// assert!("net_rwa".parse::<Capability>().is_err());
        /// # Ok::<(), sandbox_core::ParseCapabilityError>(())
        /// ```
        ///
        /// The variants are the kernel's names in Rust's case (`CAP_SYS_ADMIN` is
        /// `SysAdmin`), up to `CAP_CHECKPOINT_RESTORE` (Linux 5.9); new ones may follow.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[non_exhaustive]
        #[repr(u8)]
        pub enum Capability {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("`", $name, "` (", stringify!($index), ").")]
                #[serde(rename = $name)]
                $variant = $index,
            )*
        }

        /// Every capability, in the kernel's order.
        const ALL: &[Capability] = &[$(Capability::$variant),*];

        impl Capability {
            /// The kernel's name: `CAP_NET_RAW`.
            fn name(self) -> &'static str {
                match self {
                    $(Capability::$variant => $name,)*
                }
            }
        }
    };
}

capabilities! {
    /// Change the owner and group of any file.
    "CAP_CHOWN" => Chown = 0,
    /// Bypass file read, write and execute permission checks.
    "CAP_DAC_OVERRIDE" => DacOverride = 1,
    /// Bypass file read and directory read and search permission checks (and open files by
    /// handle).
    "CAP_DAC_READ_SEARCH" => DacReadSearch = 2,
    /// Bypass the checks that the caller owns a file (`chmod`, `utime`, ...).
    "CAP_FOWNER" => Fowner = 3,
    /// Keep a file's set-user-ID and set-group-ID bits when it is modified.
    "CAP_FSETID" => Fsetid = 4,
    /// Send signals to any process.
    "CAP_KILL" => Kill = 5,
    /// Change the process's group ids and supplementary groups at will.
    "CAP_SETGID" => Setgid = 6,
    /// Change the process's user ids at will.
    "CAP_SETUID" => Setuid = 7,
    /// Drop capabilities from the bounding set, change the securebits.
    "CAP_SETPCAP" => Setpcap = 8,
    /// Set the immutable and append-only file attributes.
    "CAP_LINUX_IMMUTABLE" => LinuxImmutable = 9,
    /// Bind to ports below 1024.
    "CAP_NET_BIND_SERVICE" => NetBindService = 10,
    /// Broadcast and listen to multicast (unused by the kernel).
    "CAP_NET_BROADCAST" => NetBroadcast = 11,
    /// Administer the network: interfaces, addresses, routes, firewall.
    "CAP_NET_ADMIN" => NetAdmin = 12,
    /// Open raw and packet sockets (`ping`, packet capture).
    "CAP_NET_RAW" => NetRaw = 13,
    /// Lock memory (`mlock`, `mlockall`, `SHM_LOCK`).
    "CAP_IPC_LOCK" => IpcLock = 14,
    /// Bypass permission checks on System V IPC objects.
    "CAP_IPC_OWNER" => IpcOwner = 15,
    /// Load and unload kernel modules.
    "CAP_SYS_MODULE" => SysModule = 16,
    /// Raw I/O: I/O ports (`iopl`, `ioperm`), `/dev/mem`, `/proc/kcore`.
    "CAP_SYS_RAWIO" => SysRawio = 17,
    /// Use `chroot`, and `setns` into mount namespaces.
    "CAP_SYS_CHROOT" => SysChroot = 18,
    /// Trace any process (`ptrace`), read and write its memory.
    "CAP_SYS_PTRACE" => SysPtrace = 19,
    /// Turn process accounting on and off (`acct`).
    "CAP_SYS_PACCT" => SysPacct = 20,
    /// System administration at large: `mount`, `sethostname`, namespaces, and much more.
    "CAP_SYS_ADMIN" => SysAdmin = 21,
    /// Reboot, and load a new kernel (`kexec_load`).
    "CAP_SYS_BOOT" => SysBoot = 22,
    /// Raise priorities, set real-time scheduling and CPU affinity of any process.
    "CAP_SYS_NICE" => SysNice = 23,
    /// Override resource limits and disk quotas.
    "CAP_SYS_RESOURCE" => SysResource = 24,
    /// Set the system clock and the hardware clock.
    "CAP_SYS_TIME" => SysTime = 25,
    /// Configure terminals (`vhangup`, privileged console `ioctl`s).
    "CAP_SYS_TTY_CONFIG" => SysTtyConfig = 26,
    /// Create device files (`mknod`).
    "CAP_MKNOD" => Mknod = 27,
    /// Take leases on any file.
    "CAP_LEASE" => Lease = 28,
    /// Write records to the kernel's audit log.
    "CAP_AUDIT_WRITE" => AuditWrite = 29,
    /// Turn kernel auditing on and off, change its rules.
    "CAP_AUDIT_CONTROL" => AuditControl = 30,
    /// Set file capabilities; map uid 0 into a new user namespace.
    "CAP_SETFCAP" => Setfcap = 31,
    /// Override mandatory access control (Smack).
    "CAP_MAC_OVERRIDE" => MacOverride = 32,
    /// Configure mandatory access control (Smack).
    "CAP_MAC_ADMIN" => MacAdmin = 33,
    /// Privileged `syslog` operations; see kernel addresses in `/proc`.
    "CAP_SYSLOG" => Syslog = 34,
    /// Set timers that wake the system from suspend.
    "CAP_WAKE_ALARM" => WakeAlarm = 35,
    /// Block system suspend (`EPOLLWAKEUP`).
    "CAP_BLOCK_SUSPEND" => BlockSuspend = 36,
    /// Read the audit log through a multicast netlink socket.
    "CAP_AUDIT_READ" => AuditRead = 37,
    /// Performance monitoring (`perf_event_open`, ...).
    "CAP_PERFMON" => Perfmon = 38,
    /// Privileged BPF operations (maps, programs).
    "CAP_BPF" => Bpf = 39,
    /// Checkpoint and restore processes (`clone3`'s `set_tid`, other processes'
    /// `map_files`).
    "CAP_CHECKPOINT_RESTORE" => CheckpointRestore = 40,
}

impl Capability {
    /// The capability's number, its bit in the kernel's masks (`CapEff` in
    /// `/proc/<pid>/status`, ...): `CAP_NET_RAW` is 13.
    pub fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Capability {
    type Err = ParseCapabilityError;

    /// `CAP_NET_ADMIN`, `cap_net_admin`, `net_admin` or ` Net_Admin `.
    fn from_str(s: &str) -> Result<Capability, ParseCapabilityError> {
        let upper = s.trim().to_ascii_uppercase();
        let short = upper.strip_prefix("CAP_").unwrap_or(&upper);
        ALL.iter()
            .copied()
            .find(|c| c.name().strip_prefix("CAP_") == Some(short))
            .ok_or_else(|| ParseCapabilityError {
                input: s.to_owned(),
            })
    }
}

/// A name that is no capability, refused by [`Capability`]'s [`FromStr`]. Into [`Error`] it
/// becomes [`Error::Invalid`] (`what` is `"capability"`), so `?` works where a
/// [`Result`](crate::Result) is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a capability (see capabilities(7))")]
pub struct ParseCapabilityError {
    input: String,
}

impl ParseCapabilityError {
    /// The name as it was given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl From<ParseCapabilityError> for Error {
    fn from(e: ParseCapabilityError) -> Error {
        Error::Invalid {
            what: "capability",
            reason: e.to_string(),
        }
    }
}

/// The bitmask of a set of capabilities.
pub(crate) fn capability_mask(set: &[Capability]) -> u64 {
    set.iter().fold(0, |m, c| m | (1 << c.index()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_parse_in_every_spelling() {
        for n in ["CAP_NET_ADMIN", "cap_net_admin", "net_admin", " Net_Admin "] {
            assert_eq!(n.parse::<Capability>().unwrap(), Capability::NetAdmin);
        }
        for n in ["net_adnim", "CAP_CAP_NET_ADMIN", "NetAdmin", "cap_", ""] {
            let e = n.parse::<Capability>().unwrap_err();
            assert_eq!(e.input(), n);
            assert!(e.to_string().contains(&format!("{n:?}")), "{e}");
            assert!(matches!(
                Error::from(e),
                Error::Invalid {
                    what: "capability",
                    ..
                }
            ));
        }
    }

    #[test]
    fn every_capability_has_its_number_and_reads_back_as_written() {
        assert_eq!(ALL.len(), 41);
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(usize::from(c.index()), i, "{c}");
            let name = c.to_string();
            assert!(name.starts_with("CAP_"), "{name}");
            assert_eq!(name.parse::<Capability>().unwrap(), *c);
            assert_eq!(name.to_lowercase()[4..].parse::<Capability>().unwrap(), *c);
            // Profiles spell it as the kernel does (as the `caps` crate wrote it before).
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("{name:?}"));
            assert_eq!(serde_json::from_str::<Capability>(&json).unwrap(), *c);
        }
        assert_eq!(Capability::NetRaw.index(), 13);
        assert_eq!(Capability::SysAdmin.to_string(), "CAP_SYS_ADMIN");
        assert_eq!(Capability::CheckpointRestore.index(), 40);
        assert_eq!(
            capability_mask(&[Capability::Chown, Capability::NetRaw]),
            1 | (1 << 13)
        );
    }

    /// The bit of each capability is the kernel's: every `#define CAP_<NAME> <bit>` of the
    /// kernel's own header names the capability of that bit here, and the other way round
    /// (the child drops and keeps capabilities by these bits).
    #[test]
    fn names_and_bits_are_the_kernels() {
        let header = "/usr/include/linux/capability.h";
        let text = std::fs::read_to_string(header).unwrap_or_else(|e| {
            panic!("{header}: {e} (the kernel's headers come with libc6-dev/linux-libc-dev)")
        });
        let mut kernel: Vec<(String, u8)> = Vec::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if let (Some("#define"), Some(name), Some(bit)) = (w.next(), w.next(), w.next()) {
                if let (true, Ok(bit)) = (name.starts_with("CAP_"), bit.parse::<u8>()) {
                    kernel.push((name.to_string(), bit));
                }
            }
        }
        // CAP_LAST_CAP is an alias of the last one, not a capability of its own.
        kernel.retain(|(name, _)| name != "CAP_LAST_CAP");
        assert!(kernel.len() >= 41, "{header}: {kernel:?}");
        for (name, bit) in &kernel {
            let c: Capability = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.index(), *bit, "{name}");
        }
        for c in ALL {
            assert!(
                kernel
                    .iter()
                    .any(|(n, b)| *n == c.to_string() && *b == c.index()),
                "{c} is not in {header}"
            );
        }
    }
}
