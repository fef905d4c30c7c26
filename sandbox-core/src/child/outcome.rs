//! [`Outcome`]: how a run ended ([`Ending`]) and what it used.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ending {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal.
    Signaled(i32),
    /// The wall-time limit passed: the parent killed the sandbox.
    WallTimeExceeded,
    /// The CPU-time limit was used up (the program was killed by `SIGXCPU`, or by
    /// `SIGKILL` at the hard limit).
    CpuTimeExceeded,
    /// A captured stream passed the output limit: the parent killed the sandbox.
    OutputLimitExceeded,
    /// The sandbox needed more memory than its limit: the kernel killed it.
    OutOfMemory,
}

/// The outcome of a sandboxed run: how it ended and how long it took.
///
/// With the built-in init, this is the *program's* status (not the init's): a program killed
/// by SIGSEGV reports `Signaled(11)` even though PID 1 itself cannot die of a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// From the start of the spawn to the end of the sandbox.
    #[serde(rename = "wall_time_ms", with = "millis")]
    pub wall_time: Duration,
    /// User CPU time of the whole sandbox (every process and thread), when it had a cgroup
    /// (any of the memory, pids, cpus or CPU-time limits).
    #[serde(
        rename = "cpu_user_ms",
        with = "opt_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_user: Option<Duration>,
    /// System CPU time of the whole sandbox, likewise.
    #[serde(
        rename = "cpu_system_ms",
        with = "opt_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_system: Option<Duration>,
    /// Peak memory of the whole sandbox in bytes, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory: Option<u64>,
    /// A captured stream was cut at the output limit.
    #[serde(default)]
    pub output_truncated: bool,
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64() * 1e3),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = Option::<f64>::deserialize(d)?;
        Ok(ms.map(|ms| Duration::try_from_secs_f64(ms.max(0.0) / 1e3).unwrap_or(Duration::MAX)))
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(ms.max(0.0) / 1e3).unwrap_or(Duration::MAX))
    }
}

impl Outcome {
    pub(crate) fn from_wait_status(status: i32, wall_time: Duration) -> Outcome {
        let ending = if libc::WIFSIGNALED(status) {
            Ending::Signaled(libc::WTERMSIG(status))
        } else {
            Ending::Exited(libc::WEXITSTATUS(status))
        };
        Outcome {
            ending,
            wall_time,
            cpu_user: None,
            cpu_system: None,
            peak_memory: None,
            output_truncated: false,
        }
    }

    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.ending == Ending::Exited(0)
    }

    /// The exit code, if the program exited.
    pub fn code(&self) -> Option<i32> {
        match self.ending {
            Ending::Exited(c) => Some(c),
            _ => None,
        }
    }

    /// The signal that killed the program, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.ending {
            Ending::Signaled(s) => Some(s),
            _ => None,
        }
    }

    /// The status a shell would report: the exit code, or 128 + the signal number (a run
    /// the parent ended at a limit reports 128 + SIGKILL, 137; a CPU-time end 128 +
    /// SIGXCPU, 152).
    pub fn shell_code(&self) -> i32 {
        match self.ending {
            Ending::Exited(c) => c,
            Ending::Signaled(s) => 128 + s,
            Ending::CpuTimeExceeded => 128 + libc::SIGXCPU,
            Ending::WallTimeExceeded | Ending::OutputLimitExceeded | Ending::OutOfMemory => {
                128 + libc::SIGKILL
            }
        }
    }
}
