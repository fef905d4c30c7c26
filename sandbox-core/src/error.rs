//! The error type of the crate, and the setup stages a child can fail in.

use crate::ns::ParseNamespaceError;
use crate::Namespace;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which id a map is for.
// It lives here, not beside `IdMap`, because the errors name it and this module must stay a
// leaf (it imports only `Namespace`): every other module returns its errors.
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

/// Defines [`Stage`] from one list: each variant with its doc, its number (the first is 1,
/// the rest follow) and the words an error message uses for it.
macro_rules! stages {
    (
        $(#[$em:meta])*
        pub enum Stage {
            $(#[$fm:meta])* $first:ident = $n:literal => $ftext:literal,
            $( $(#[$m:meta])* $name:ident => $text:literal, )*
        }
    ) => {
        $(#[$em])*
        pub enum Stage {
            $(#[$fm])* $first = $n,
            $( $(#[$m])* $name, )*
        }

        impl Stage {
            /// Every stage, in number order.
            const ALL: &'static [Stage] = &[Stage::$first, $(Stage::$name,)*];

            /// What the stage does, as an error message says it.
            fn describe(self) -> &'static str {
                match self {
                    Stage::$first => $ftext,
                    $(Stage::$name => $text,)*
                }
            }
        }
    };
}

stages! {
    /// The step of sandbox setup, in the freshly cloned child, that failed.
    ///
    /// The child cannot allocate, so it reports a stage number, an `errno` and an index; the
    /// parent turns them into [`Error::Setup`] with the path or object the step was about.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u32)]
    #[non_exhaustive]
    pub enum Stage {
        /// Setting the parent-death signal.
        ParentDeathSignal = 1 => "set parent-death signal",
        /// Making a private copy of the caller's memory non-dumpable.
        Dumpable => "make non-dumpable",
        /// Arranging the file descriptors (stdio, closing the rest).
        FileDescriptors => "set up file descriptors",
        /// Waiting for the parent (id maps, network) before going on.
        Handshake => "wait for parent",
        /// Joining an existing namespace.
        JoinNamespace => "join namespace",
        /// Creating namespaces after joining others.
        Unshare => "create namespaces",
        /// Dropping supplementary groups.
        SetGroups => "setgroups",
        /// Switching to the sandbox's group id.
        SetGid => "setgid",
        /// Switching to the sandbox's user id.
        SetUid => "setuid",
        /// Creating the time namespace and writing its clock offsets.
        TimeNamespace => "set up time namespace",
        /// Creating the cgroup namespace.
        CgroupNamespace => "create cgroup namespace",
        /// Setting the hostname.
        Hostname => "sethostname",
        /// Bringing up the loopback interface.
        Loopback => "bring up lo",
        /// One step of the mount plan.
        Mount => "mount",
        /// Forking the init, the relay or the program.
        Fork => "fork",
        /// Changing to the working directory.
        Chdir => "chdir",
        /// Resetting signal dispositions and the signal mask.
        Signals => "reset signals",
        /// Executing the program.
        Exec => "exec",
        /// Executing the built-in init (from its memfd).
        Init => "exec the built-in init",
        /// Dropping capabilities from the bounding set.
        Capabilities => "drop capabilities",
        /// Configuring the sandbox's side of a bridged network (`eth0`).
        Network => "configure eth0",
        /// Setting resource limits (rlimits).
        Limits => "set resource limits",
        /// Starting a new session (`setsid`).
        Session => "setsid",
        /// Making the pty the controlling terminal.
        Terminal => "set the controlling terminal",
        /// Setting `no_new_privs`.
        NoNewPrivs => "set no_new_privs",
        /// Applying the landlock rules (detail: the rule's index).
        Landlock => "apply landlock rules",
        /// Loading the seccomp filter.
        Seccomp => "load the seccomp filter",
    }
}

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|s| *s as u32 == v)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
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

impl From<ParseNamespaceError> for Error {
    fn from(e: ParseNamespaceError) -> Error {
        Error::Invalid {
            what: "namespace",
            reason: e.to_string(),
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
        // Numbered 1, 2, 3… in list order, every one of them found by its number.
        for (i, s) in Stage::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i + 1);
            assert_eq!(Stage::from_u32(i as u32 + 1), Some(*s));
        }
    }
}
