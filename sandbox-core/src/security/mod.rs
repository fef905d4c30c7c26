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

mod capabilities;
mod landlock;
mod seccomp;

pub(crate) use capabilities::{capability_mask, last_capability};
pub use capabilities::{parse_capability, Capability};
pub(crate) use landlock::landlock_access;
pub use landlock::Landlock;
// The spawn code's path to the plan's type (it gets the value from `Landlock::prepare`).
#[allow(unused_imports)]
pub(crate) use landlock::LandlockPlan;
pub use seccomp::{Arg, ArgOp, Seccomp, SyscallRule};
pub(crate) use seccomp::{Compiled, SockFprog};
