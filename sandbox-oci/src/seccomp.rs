//! `linux.seccomp` → the sandbox's [`Seccomp`] filter.
//!
//! Without a `seccomp` object the sandbox keeps this runtime's default filter (runc loads
//! none): that is one of the things this runtime does that runc does not. A profile that
//! allows by default and refuses named calls becomes a filter of exactly those refusals,
//! with their `errnoRet` (`EPERM` by default; a call to kill for or trap is refused with
//! `EPERM` too, with a warning). Allow-list profiles (refuse by default), argument
//! conditions, notification listeners and filter flags are refused with an error naming the
//! field, for now.

use crate::convert::Warning;
use crate::error::OciError;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as Action};
use sandbox_core::seccomp::SyscallRule;
use sandbox_core::{Sandbox, Seccomp};

/// Applies `seccomp` (if the spec has one) to `sandbox`.
pub(crate) fn apply(
    sandbox: Sandbox,
    seccomp: Option<&LinuxSeccomp>,
    warnings: &mut Vec<Warning>,
) -> Result<Sandbox, OciError> {
    let Some(s) = seccomp else {
        return Ok(sandbox);
    };
    if s.default_action() != Action::ScmpActAllow {
        return Err(OciError::unsupported(
            "linux.seccomp.defaultAction",
            format!(
                "{:?}: only profiles that allow by default and refuse named calls",
                s.default_action()
            ),
        ));
    }
    if s.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(OciError::unsupported(
            "linux.seccomp.flags",
            "no filter flags",
        ));
    }
    if s.listener_path().is_some() {
        return Err(OciError::unsupported(
            "linux.seccomp.listenerPath",
            "no notification listener",
        ));
    }
    let mut filter = Seccomp::empty();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        if rule.action() == Action::ScmpActAllow {
            continue;
        }
        if matches!(
            rule.action(),
            Action::ScmpActLog | Action::ScmpActNotify | Action::ScmpActTrace
        ) {
            return Err(OciError::unsupported(
                format!("linux.seccomp.syscalls[{i}].action"),
                format!("{:?}: calls are allowed or refused", rule.action()),
            ));
        }
        if rule.args().as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(OciError::unsupported(
                format!("linux.seccomp.syscalls[{i}].args"),
                "conditions on arguments",
            ));
        }
        // A call to kill for, or trap: refused with EPERM instead (still refused).
        if rule.action() != Action::ScmpActErrno {
            warnings.push(Warning {
                field: format!("linux.seccomp.syscalls[{i}].action"),
                message: format!(
                    "{:?}: the call is refused with EPERM instead",
                    rule.action()
                ),
            });
        }
        let errno = match (rule.action(), rule.errno_ret()) {
            (Action::ScmpActErrno, Some(e)) if (1..=4095).contains(&e) => e as i32,
            (Action::ScmpActErrno, Some(e)) => {
                return Err(OciError::invalid(
                    format!("linux.seccomp.syscalls[{i}].errnoRet"),
                    format!("{e}: an errno is 1 to 4095"),
                ))
            }
            _ => libc::EPERM,
        };
        for name in rule.names() {
            filter = filter.rule(SyscallRule::new(name.clone()).errno(errno));
        }
    }
    Ok(sandbox.seccomp(filter))
}
