//! The error type of the crate, and the setup stages a child can fail in.

use crate::Namespace;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which id a map is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// User ids (`uid_map`).
    Uid,
    /// Group ids (`gid_map`).
    Gid,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Uid => "uid",
            IdKind::Gid => "gid",
        })
    }
}

/// The step of sandbox setup, in the freshly cloned child, that failed.
///
/// The child cannot allocate, so it reports a stage number, an `errno` and an index; the
/// parent turns them into [`Error::Setup`] with the path or object the step was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[non_exhaustive]
pub enum Stage {
    /// Setting the parent-death signal.
    ParentDeathSignal = 1,
    /// Making a private copy of the caller's memory non-dumpable.
    Dumpable,
    /// Arranging the file descriptors (stdio, closing the rest).
    FileDescriptors,
    /// Waiting for the parent (id maps, network) before going on.
    Handshake,
    /// Joining an existing namespace.
    JoinNamespace,
    /// Creating namespaces after joining others.
    Unshare,
    /// Dropping supplementary groups.
    SetGroups,
    /// Switching to the sandbox's group id.
    SetGid,
    /// Switching to the sandbox's user id.
    SetUid,
    /// Creating the time namespace and writing its clock offsets.
    TimeNamespace,
    /// Creating the cgroup namespace.
    CgroupNamespace,
    /// Setting the hostname.
    Hostname,
    /// Bringing up the loopback interface.
    Loopback,
    /// One step of the mount plan.
    Mount,
    /// Forking the init, the relay or the program.
    Fork,
    /// Changing to the working directory.
    Chdir,
    /// Resetting signal dispositions and the signal mask.
    Signals,
    /// Executing the program.
    Exec,
    /// Executing the built-in init (from its memfd).
    Init,
    /// Dropping capabilities from the bounding set.
    Capabilities,
    /// Configuring the sandbox's side of a bridged network (`eth0`).
    Network,
    /// Setting resource limits (rlimits).
    Limits,
    /// Starting a new session (`setsid`).
    Session,
    /// Making the pty the controlling terminal.
    Terminal,
    /// Setting `no_new_privs`.
    NoNewPrivs,
    /// Applying the landlock rules (detail: the rule's index).
    Landlock,
    /// Loading the seccomp filter.
    Seccomp,
}

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        const ALL: [Stage; 27] = [
            ParentDeathSignal,
            Dumpable,
            FileDescriptors,
            Handshake,
            JoinNamespace,
            Unshare,
            SetGroups,
            SetGid,
            SetUid,
            TimeNamespace,
            CgroupNamespace,
            Hostname,
            Loopback,
            Mount,
            Fork,
            Chdir,
            Signals,
            Exec,
            Init,
            Capabilities,
            Network,
            Limits,
            Session,
            Terminal,
            NoNewPrivs,
            Landlock,
            Seccomp,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::ParentDeathSignal => "set parent-death signal",
            Stage::Dumpable => "make non-dumpable",
            Stage::FileDescriptors => "set up file descriptors",
            Stage::Handshake => "wait for parent",
            Stage::JoinNamespace => "join namespace",
            Stage::Unshare => "create namespaces",
            Stage::SetGroups => "setgroups",
            Stage::SetGid => "setgid",
            Stage::SetUid => "setuid",
            Stage::TimeNamespace => "set up time namespace",
            Stage::CgroupNamespace => "create cgroup namespace",
            Stage::Hostname => "sethostname",
            Stage::Loopback => "bring up lo",
            Stage::Mount => "mount",
            Stage::Fork => "fork",
            Stage::Chdir => "chdir",
            Stage::Signals => "reset signals",
            Stage::Exec => "exec",
            Stage::Init => "exec the built-in init",
            Stage::Capabilities => "drop capabilities",
            Stage::Network => "configure eth0",
            Stage::Limits => "set resource limits",
            Stage::Session => "setsid",
            Stage::Terminal => "set the controlling terminal",
            Stage::NoNewPrivs => "set no_new_privs",
            Stage::Landlock => "apply landlock rules",
            Stage::Seccomp => "load the seccomp filter",
        })
    }
}

/// An `errno` value, shown as its message and its name: `No such file or directory (ENOENT)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The symbolic name, e.g. `ENOENT`.
    pub fn name(self) -> String {
        format!("{:?}", nix::errno::Errno::from_raw(self.0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = io::Error::from_raw_os_error(self.0).to_string();
        // io::Error appends " (os error N)"; keep only the message.
        let msg = msg.split(" (os error").next().unwrap_or(&msg);
        write!(f, "{msg} ({})", self.name())
    }
}

/// Everything that can go wrong creating or handling a sandbox.
///
/// Errors in the description (bad paths, bad maps, conflicting settings) are returned before
/// any process exists. Errors of the child's setup come back as [`Error::Setup`], naming the
/// stage and what it was about: `exec /no/such: No such file or directory (ENOENT)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program path is empty or relative.
    #[error("invalid program {program:?}: {reason}")]
    InvalidProgram {
        /// The program as given.
        program: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A string handed to the kernel contains a NUL byte.
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul {
        /// What the string is (`argument`, `environment variable`, ...).
        what: &'static str,
        /// The string, lossily converted.
        value: String,
    },
    /// The hostname is too long or malformed.
    #[error("invalid hostname {hostname:?}: {reason}")]
    InvalidHostname {
        /// The hostname as given.
        hostname: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A uid or gid map is malformed, overlaps, or cannot be written by this caller.
    #[error("invalid {kind} map: {reason}")]
    IdMap {
        /// Which map.
        kind: IdKind,
        /// What is wrong with it.
        reason: String,
    },
    /// Two settings of the sandbox contradict each other.
    #[error("conflicting settings: {0}")]
    Conflict(String),
    /// A cgroup could not be set up, read or removed.
    #[error("cgroup: {what}: {source}")]
    Cgroup {
        /// What was attempted, on which path.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Something asked for that this version cannot do (yet); never silently ignored.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A setting is out of range.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The setting.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace to join cannot be opened or is not a namespace of that kind.
    #[error("join {namespace} namespace {path}: {reason}")]
    Join {
        /// The kind of namespace.
        namespace: Namespace,
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The root filesystem cannot be planned.
    #[error(transparent)]
    Fs(#[from] sandbox_fs::Error),
    /// The network cannot be planned.
    #[error(transparent)]
    Net(#[from] sandbox_net::Error),
    /// A step of the child's setup failed (reported by the child itself).
    #[error("{}: {errno}", setup_what(*.stage, .what.as_deref()))]
    Setup {
        /// The step.
        stage: Stage,
        /// What the step was about (a path, a namespace), when there is one.
        what: Option<String>,
        /// The error number the kernel returned.
        errno: Errno,
    },
    /// A system call or file operation in the parent failed.
    #[error("{op}: {source}")]
    Os {
        /// What was attempted, on what (`clone3`, `write /proc/42/uid_map`).
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The sandbox's handle has already been waited for, so the operation has nothing to act on.
    #[error("the sandbox has already exited and been reaped")]
    Reaped,
}

fn setup_what(stage: Stage, what: Option<&str>) -> String {
    match (stage, what) {
        // Mount steps describe themselves: "mount proc on /proc", "bind /a on /b".
        (Stage::Mount, Some(w)) => w.to_string(),
        (_, Some(w)) => format!("{stage} {w}"),
        (_, None) => stage.to_string(),
    }
}

impl Error {
    pub(crate) fn os(op: impl Into<String>, source: io::Error) -> Error {
        Error::Os {
            op: op.into(),
            source,
        }
    }

    /// The `errno` behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Setup { errno, .. } => Some(errno.0),
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.raw_os_error() {
            Some(n) => io::Error::from_raw_os_error(n).kind(),
            None => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_error_names_stage_path_and_errno() {
        let e = Error::Setup {
            stage: Stage::Exec,
            what: Some("/no/such".into()),
            errno: Errno(libc::ENOENT),
        };
        assert_eq!(
            e.to_string(),
            "exec /no/such: No such file or directory (ENOENT)"
        );
    }

    #[test]
    fn stage_numbers_round_trip() {
        for n in 0..40 {
            if let Some(s) = Stage::from_u32(n) {
                assert_eq!(s as u32, n);
            }
        }
        assert_eq!(Stage::from_u32(Stage::Exec as u32), Some(Stage::Exec));
        assert_eq!(Stage::from_u32(0), None);
    }
}
