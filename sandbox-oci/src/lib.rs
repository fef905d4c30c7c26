//! OCI runtime-spec bundles run as sandboxes: a bundle's `config.json` becomes a
//! [`sandbox_core::Sandbox`] and the [`sandbox_core::Command`] to run in it, so an OCI
//! runtime (and through it containerd, podman or Kubernetes) can drive the same
//! isolation, limits and hardening as the library.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bundle = sandbox_oci::Bundle::load("/path/to/bundle")?;
//! let mut c = bundle.convert()?;
//! // A terminal and hooks are the caller's to give and run: one that cannot, refuses.
//! if c.terminal || c.hooks.is_some() {
//!     return Err("this bundle wants a terminal or hooks".into());
//! }
//! for w in &c.warnings {
//!     eprintln!("warning: {w}");
//! }
//! let outcome = c.command.status().await?;
//! # Ok(()) }
//! ```
//!
//! Every field of the spec is applied, refused with an [`OciError`] naming it, or — when
//! leaving it out cannot make the sandbox less isolated (an SELinux label, `cpu.shares`) —
//! reported as a [`Warning`]; nothing is dropped silently. Access-time mount options
//! (`relatime`, `strictatime`, …) and propagation options (the sandbox's mounts are
//! private) are accepted as what the sandbox does anyway.
//!
//! Where this differs from runc: without a `linux.seccomp` object the sandbox keeps its
//! default filter; the process always runs with `no_new_privs`; `/proc`, `/dev` and `/sys`
//! are the sandbox's own (masked as runc masks them); one capability set (the effective
//! one) is kept in every set; the process runs as root of its user namespace. As with
//! runc, the process is the container's first process (PID 1 of its PID namespace): the
//! sandbox's built-in init is not used.
//!
//! The `sandbox-runtime` binary is the runtime command line over it (as runc's): `spec`,
//! `run`, `state`, `list`, `kill`, `delete`, `features`; `create`/`start`/`exec` are not
//! built yet.

mod convert;
mod error;
mod mounts;
mod seccomp;
pub mod state;

pub use convert::{convert, Conversion, Warning};
pub use error::OciError;
pub use oci_spec::runtime::Spec;

use std::path::{Path, PathBuf};

/// The most bytes of a `config.json` read (a hostile bundle cannot make the reader take
/// more memory than this).
pub const MAX_CONFIG: u64 = 4 << 20;

/// An OCI bundle: a directory holding `config.json` (and, usually, the root filesystem).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle's directory.
    pub dir: PathBuf,
    /// Its parsed `config.json`.
    pub spec: Spec,
}

impl Bundle {
    /// Reads `dir/config.json`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Bundle, OciError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join("config.json");
        let config = |reason: String| OciError::Config {
            path: path.clone(),
            reason,
        };
        let file = std::fs::File::open(&path).map_err(|e| config(e.to_string()))?;
        let size = file.metadata().map_err(|e| config(e.to_string()))?.len();
        if size > MAX_CONFIG {
            return Err(config(format!("{size} bytes (at most {MAX_CONFIG})")));
        }
        let reader = std::io::Read::take(std::io::BufReader::new(file), MAX_CONFIG);
        let spec: Spec = serde_json::from_reader(reader).map_err(|e| config(e.to_string()))?;
        Ok(Bundle { dir, spec })
    }

    /// The sandbox and command the bundle describes.
    pub fn convert(&self) -> Result<Conversion, OciError> {
        convert(&self.spec, &self.dir)
    }
}

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// A default `config.json` (as `runc spec` writes, but `sh` without a terminal): every
/// namespace but the user's, runc's three capabilities, its masked and read-only paths.
/// Its `ociVersion` is runc's (`1.0.2-dev`), so that other runtimes take the bundle too.
pub fn default_spec() -> serde_json::Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    })
}

/// What this runtime supports, as the runtime-spec's features document (`features`).
pub fn features() -> serde_json::Value {
    const KERNEL: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    // (Those the sandbox can keep: each, parsed as the conversion parses them.)
    let caps: Vec<String> = KERNEL
        .iter()
        .filter_map(|n| n.parse::<sandbox_core::Capability>().ok())
        .map(|c| c.to_string())
        .collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "private", "rprivate",
            "slave", "rslave", "relatime", "norelatime", "strictatime", "noatime"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"],
                "operators": [], "archs": []},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {}
    })
}
