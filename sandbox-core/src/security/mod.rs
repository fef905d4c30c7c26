//! Hardening: the seccomp filter, the capabilities a sandbox keeps, and landlock rules.
//!
//! Every sandbox gets, by default: no capabilities at all (bounding, effective, permitted,
//! inheritable and ambient sets cleared), `no_new_privs`, a new session, and the
//! [default seccomp profile](Seccomp::default_profile). [`Sandbox::seccomp`],
//! [`Sandbox::capability`] and [`Sandbox::landlock`] change that.
//!
//! # The layers, one file each
//! - [`capabilities`]: [`Capability`], and the mask of those a sandbox keeps.
//! - [`landlock`]: [`Landlock`], the paths the program may open, and the ruleset the
//!   caller creates for the child to fill.
//! - [`seccomp`]: [`Seccomp`] and its rules; under it, `profile` (the default deny lists,
//!   and why each entry), `syscalls` (system call numbers by name) and `bpf` (the
//!   assembler that turns the rules into one filter).
//!
//! # When each is applied
//! Everything that can fail on bad input is done by the caller, before any process exists:
//! the filter is compiled (and cached per profile), the landlock ruleset is created, the
//! capabilities become a bitmask. The child (`spawn/child*`) then applies them with raw
//! system calls, last of its setup, in this order:
//! 1. a new session (`setsid`);
//! 2. capabilities: every one not kept leaves the bounding set, then the effective,
//!    permitted and inheritable sets; the kept ones are raised in the ambient set;
//! 3. `no_new_privs`, so no `execve` gains privileges back;
//! 4. landlock: the ruleset is filled with the paths, resolved inside the new root, and
//!    enforced;
//! 5. (the descriptors passed on purpose and the rlimits;)
//! 6. the seccomp filter, last: after it only `execve` runs (and, with the `timeline`
//!    feature, one `clock_gettime` marking the time the filter took).
//!
//! [`Sandbox::seccomp`]: crate::Sandbox::seccomp
//! [`Sandbox::capability`]: crate::Sandbox::capability
//! [`Sandbox::landlock`]: crate::Sandbox::landlock

mod capabilities;
mod landlock;
pub mod seccomp;

pub(crate) use capabilities::{capability_mask, last_capability};
pub use capabilities::{Capability, ParseCapabilityError};
pub(crate) use landlock::landlock_access;
pub use landlock::Landlock;
pub use seccomp::Seccomp;
pub(crate) use seccomp::{Compiled, SockFprog};
