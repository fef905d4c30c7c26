//! The child's timeline marks (the `timeline` feature): the `CLOCK_MONOTONIC` time at which
//! it passed a step, stored in its slot of the page it shares with the caller (see
//! `spawn/timeline.rs`). A raw `clock_gettime` and one store: no allocation. Without the
//! feature, `mark` is empty.

use crate::spawn::prepare::ChildPlan;

/// Marks the end of the step whose slot is `slot`.
#[cfg(feature = "timeline")]
pub(super) fn mark(plan: &ChildPlan, slot: usize) {
    use super::syscall::sys;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let ptr: *mut libc::timespec = &mut ts;
    if sys!(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, ptr).is_err() {
        return;
    }
    let ns = (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64);
    if let Some(s) = plan.stacks.marks().get(slot) {
        s.store(ns, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Marks the end of the step whose slot is `slot` (the `timeline` feature is off: nothing).
#[cfg(not(feature = "timeline"))]
#[inline(always)]
pub(super) fn mark(_plan: &ChildPlan, _slot: usize) {}
