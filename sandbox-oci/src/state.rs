//! Containers' state in the runtime's `--root`: one directory per container, holding
//! `state.json` — the OCI state (id, status, pid, bundle) and what tells the container's
//! process from a later one with the same pid (its start time, from `/proc/PID/stat`).

use serde_json::json;
use std::path::{Path, PathBuf};

/// The state directory of a runtime (`--root`).
#[derive(Debug, Clone)]
pub struct Store {
    /// Where containers' directories live.
    pub root: PathBuf,
}

/// What is kept of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The container's id.
    pub id: String,
    /// The bundle it was made from.
    pub bundle: PathBuf,
    /// The host pid of its first process.
    pub pid: i32,
    /// That process's start time (clock ticks since boot), against pid reuse.
    pub started: u64,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
}

/// A container's status, as the OCI state names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its process runs.
    Running,
    /// Its process has ended.
    Stopped,
}

impl Status {
    /// The OCI name (`running`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// Why a container's state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An id runc would refuse too.
    #[error("container id {0:?}: letters, digits, `_`, `+`, `-` and `.` only, not `.` or `..`, at most 1024 bytes")]
    BadId(String),
    /// The id is taken.
    #[error("container {0} already exists")]
    Exists(String),
    /// No such container.
    #[error("container {0} does not exist")]
    Missing(String),
    /// The state directory or a state file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A state file that is not ours.
    #[error("{0}: not a state file of this runtime")]
    Corrupt(PathBuf),
    /// A runtime is creating the container now.
    #[error("container {0} is being created")]
    Busy(String),
}

/// An id claimed by this process: its directory, locked (`flock`) until dropped, so that
/// no other runtime takes the directory of a container still being created for its own.
#[derive(Debug)]
pub struct Claim {
    /// The container's directory in `--root`.
    pub dir: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a container id as runc does: `^[\w+\-.]+$`, neither `.` nor `..`.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_string()))
    }
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), if it lives.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

impl Store {
    /// The store at `root` (made on first use, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Claims `id`: its directory is made and locked, or the id is taken.
    pub fn claim(&self, id: &str) -> Result<Claim, StateError> {
        check_id(id)?;
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io(&self.root))?;
        let dir = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()))
            }
            Err(e) => return Err(io(&dir)(e)),
        }
        let lock = std::fs::File::open(&dir).map_err(io(&dir)).and_then(|f| {
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| io(&dir)(e.into()))
        });
        match lock {
            Ok(lock) => Ok(Claim { dir, _lock: lock }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Forgets an id claimed but never recorded (its runtime died meanwhile); refused while
    /// a runtime holds the claim.
    pub fn remove_unrecorded(&self, id: &str) -> Result<(), StateError> {
        check_id(id)?;
        let dir = self.dir(id);
        let f = std::fs::File::open(&dir).map_err(io(&dir))?;
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(_held) => self.remove(id),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(StateError::Busy(id.to_string())),
            Err((_, e)) => Err(io(&dir)(e.into())),
        }
    }

    /// Records a container (written to a temporary file, then renamed over).
    pub fn save(&self, r: &Record) -> Result<(), StateError> {
        let dir = self.dir(&r.id);
        let text = json!({
            "id": r.id,
            "bundle": r.bundle,
            "pid": r.pid,
            "started": r.started,
            "created": r.created,
        })
        .to_string();
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        let path = dir.join("state.json");
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// A container's record.
    pub fn load(&self, id: &str) -> Result<Record, StateError> {
        check_id(id)?;
        let path = self.dir(id).join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing(id.to_string()))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| StateError::Corrupt(path.clone()))?;
        let field = |k: &str| v.get(k).ok_or_else(|| StateError::Corrupt(path.clone()));
        Ok(Record {
            id: field("id")?.as_str().unwrap_or_default().to_string(),
            bundle: PathBuf::from(field("bundle")?.as_str().unwrap_or_default()),
            pid: field("pid")?.as_i64().unwrap_or(0) as i32,
            started: field("started")?.as_u64().unwrap_or(0),
            created: field("created")?.as_str().unwrap_or_default().to_string(),
        })
    }

    /// The ids of every container recorded.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Forgets a container (its directory).
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        check_id(id)?;
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&dir)(e)),
        }
    }
}

impl Record {
    /// Whether the recorded process still runs (the same process: pid and start time).
    pub fn status(&self) -> Status {
        match start_time(self.pid) {
            Some(t) if t == self.started => Status::Running,
            _ => Status::Stopped,
        }
    }

    /// The OCI state (`state` prints it).
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        json!({
            "ociVersion": crate::OCI_VERSION,
            "id": self.id,
            "status": status.as_str(),
            "pid": if status == Status::Running { self.pid } else { 0 },
            "bundle": self.bundle,
            "created": self.created,
            "owner": "",
        })
    }
}

/// Now, as RFC 3339 in UTC with nanoseconds (what `created` holds).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_runc_takes_them() {
        for good in ["a", "ctr-1", "x_y.z+w", &"a".repeat(1024)] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é", &"a".repeat(1025)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_tell_a_dead_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("root"));
        let claim = store.claim("c1").unwrap();
        assert!(matches!(store.claim("c1"), Err(StateError::Exists(_))));
        // Claimed, not yet recorded: not to be removed while claimed.
        assert!(matches!(
            store.remove_unrecorded("c1"),
            Err(StateError::Busy(_))
        ));
        let me = std::process::id() as i32;
        let r = Record {
            id: "c1".into(),
            bundle: "/b".into(),
            pid: me,
            started: start_time(me).unwrap(),
            created: now_rfc3339(),
        };
        store.save(&r).unwrap();
        assert_eq!(store.load("c1").unwrap(), r);
        assert_eq!(r.status(), Status::Running);
        // Another start time: a later process that got the same pid.
        let other = Record {
            started: r.started + 1,
            ..r.clone()
        };
        assert_eq!(other.status(), Status::Stopped);
        assert_eq!(store.ids().unwrap(), ["c1"]);
        drop(claim);
        store.remove("c1").unwrap();
        assert!(matches!(store.load("c1"), Err(StateError::Missing(_))));
    }

    #[test]
    fn rfc3339_dates() {
        let t = now_rfc3339();
        assert_eq!(t.len(), "2026-12-08T02:56:05.123456789Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
