//! A spawn's timeline (the `timeline` feature): when each stage of one spawn ended, in the
//! caller and in the child, on one clock (`CLOCK_MONOTONIC`), so a bench can show where the
//! time of a spawn goes (`cargo bench --bench spawn_loop --features timeline -- --timeline`).
//!
//! The caller's marks are pushed here as it passes them. The child, which may not allocate,
//! stores the time of each of its steps into a slot of the page it shares with the caller
//! (`Stacks::marks`, written by `spawn/child/timeline.rs`); the caller copies them in once
//! the child has executed. Without the feature none of this is compiled.

#[cfg(feature = "timeline")]
use std::sync::atomic::Ordering;
#[cfg(feature = "timeline")]
use std::time::Duration;

/// What a spawn records its stages in: a [`Timeline`] with the feature, nothing without.
#[cfg(feature = "timeline")]
pub(crate) type Recorder = Timeline;

/// What a spawn records its stages in: a `Timeline` with the feature, nothing without.
#[cfg(not(feature = "timeline"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorder;

#[cfg(not(feature = "timeline"))]
impl Recorder {
    #[inline(always)]
    pub(crate) fn start() -> Recorder {
        Recorder
    }

    #[inline(always)]
    pub(crate) fn mark(&mut self, _stage: &str) {}

    #[inline(always)]
    pub(crate) fn take_child_marks(
        &mut self,
        _slots: &[std::sync::atomic::AtomicU64],
        _ops: impl FnOnce() -> Vec<String>,
    ) {
    }
}

/// The child's named steps: their slots in the shared page, in the order the child passes
/// them (the mount steps follow, one slot each, from [`FIRST_MOUNT`](slot::FIRST_MOUNT)).
pub(crate) mod slot {
    /// The child's first instruction.
    pub const STARTED: usize = 0;
    /// Its stdio placed and every other descriptor closed.
    pub const FDS: usize = 1;
    /// The caller's GO received (id maps written, cgroup joined, bridge connected).
    pub const GO: usize = 2;
    /// Namespaces joined or created, ids switched.
    pub const NAMESPACES: usize = 3;
    /// Hostname, loopback and `eth0` set.
    pub const NETWORK: usize = 4;
    /// Capabilities dropped, `no_new_privs`, landlock, descriptors and rlimits set.
    pub const HARDENED: usize = 5;
    /// The seccomp filter loaded: the `execve` comes next.
    pub const SECCOMP: usize = 6;
    /// The first mount step's slot.
    pub const FIRST_MOUNT: usize = 8;
    /// The names of the named slots.
    #[cfg(feature = "timeline")]
    pub const NAMES: [(usize, &str); 7] = [
        (STARTED, "child: started"),
        (FDS, "child: descriptors arranged"),
        (GO, "child: GO received"),
        (NAMESPACES, "child: namespaces entered, ids set"),
        (NETWORK, "child: hostname and network set"),
        (HARDENED, "child: capabilities, landlock, rlimits"),
        (SECCOMP, "child: seccomp loaded, execve"),
    ];
}

/// The time now on `CLOCK_MONOTONIC`, in nanoseconds.
#[cfg(feature = "timeline")]
fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    t.as_nanos() as u64
}

/// When each stage of one spawn (and of waiting for its end) was done, measured from the
/// start of the spawn: the caller's steps, the child's, one per step of its mount plan, and
/// the wait's. Recorded only with the `timeline` feature; see [`Child::timeline`].
///
/// [`Child::timeline`]: crate::Child::timeline
#[cfg(feature = "timeline")]
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    start: u64,
    marks: Vec<(String, u64)>,
}

#[cfg(feature = "timeline")]
impl Timeline {
    /// A timeline that starts now.
    pub(crate) fn start() -> Timeline {
        Timeline {
            start: now_ns(),
            marks: Vec::new(),
        }
    }

    /// Marks the end of a stage of the caller's, now.
    pub(crate) fn mark(&mut self, stage: &str) {
        self.marks.push((stage.to_string(), now_ns()));
    }

    /// Copies the child's marks from the shared page (once the child has executed), naming
    /// each mount step after `ops` (what each step does, in order), and clears them.
    pub(crate) fn take_child_marks(
        &mut self,
        slots: &[std::sync::atomic::AtomicU64],
        ops: impl FnOnce() -> Vec<String>,
    ) {
        let named = slot::NAMES.iter().map(|&(i, name)| (i, name.to_string()));
        let mounts = ops()
            .into_iter()
            .enumerate()
            .map(|(k, op)| (slot::FIRST_MOUNT + k, format!("child: {op}")));
        for (i, name) in named.chain(mounts) {
            if let Some(s) = slots.get(i) {
                let t = s.swap(0, Ordering::Relaxed);
                if t != 0 {
                    self.marks.push((name, t));
                }
            }
        }
    }

    /// The stages in the order they ended, each with its time since the spawn began.
    pub fn marks(&self) -> Vec<(&str, Duration)> {
        let mut v: Vec<(&str, Duration)> = self
            .marks
            .iter()
            .map(|(name, t)| {
                (
                    name.as_str(),
                    Duration::from_nanos(t.saturating_sub(self.start)),
                )
            })
            .collect();
        v.sort_by_key(|&(_, d)| d);
        v
    }
}
