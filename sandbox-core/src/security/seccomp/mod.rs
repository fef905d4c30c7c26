//! The seccomp filter of a sandbox: [`Seccomp`] (also at the crate's root), the deny-list
//! loaded last before `execve`; [`SyscallRule`], one refused system call; [`Arg`] and
//! [`ArgOp`], a condition on one of its arguments.
//!
//! ```
//! use sandbox_core::seccomp::{Arg, Seccomp, SyscallRule};
//! // The default profile, and no `prctl(PR_SET_NAME)`.
//! let seccomp = Seccomp::default_profile()
//!     .rule(SyscallRule::new("prctl").when(Arg::dword(0).eq(libc::PR_SET_NAME as u64)));
//! # let _ = seccomp;
//! ```

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

// Here: the builder, its checks, and its compilation to one BPF program (cached per
// profile). The default profile's lists are in `profile.rs`, system call numbers in
// `syscalls.rs`, the assembler in `bpf.rs`.
mod bpf;
mod profile;
mod syscalls;

use bpf::assemble;
pub(crate) use bpf::{Compiled, SockFprog};
use syscalls::{native_arch, syscall_numbers};

/// How a condition compares a system call's argument with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgOp {
    /// `arg == value`
    Eq,
    /// `arg != value`
    Ne,
    /// `arg < value` (unsigned)
    Lt,
    /// `arg <= value` (unsigned)
    Le,
    /// `arg > value` (unsigned)
    Gt,
    /// `arg >= value` (unsigned)
    Ge,
    /// `arg & mask == value`
    MaskedEq(u64),
}

/// A condition on one argument of a system call: `Arg::new(1).eq(0x5412)` is "the second
/// argument is 0x5412". Arguments are compared as 64-bit values, or as their low 32 bits
/// with [`Arg::dword`] (for `int` arguments such as `ioctl`'s request or flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arg {
    /// The argument's position, 0 to 5.
    pub index: u8,
    /// Compare only the low 32 bits.
    pub dword: bool,
    /// The comparison.
    pub op: ArgOp,
    /// The value compared with.
    pub value: u64,
}

impl Arg {
    /// A condition on argument `index` (0 to 5) as a 64-bit value; complete it with one of
    /// the comparisons (`eq`, `ne`, ...).
    pub fn new(index: u8) -> Arg {
        Arg {
            index,
            dword: false,
            op: ArgOp::Eq,
            value: 0,
        }
    }

    /// A condition on the low 32 bits of argument `index` (an `int` or `unsigned int`).
    pub fn dword(index: u8) -> Arg {
        Arg {
            dword: true,
            ..Arg::new(index)
        }
    }

    fn with(mut self, op: ArgOp, value: u64) -> Arg {
        self.op = op;
        self.value = value;
        self
    }

    /// The argument equals `value`.
    pub fn eq(self, value: u64) -> Arg {
        self.with(ArgOp::Eq, value)
    }
    /// The argument differs from `value`.
    pub fn ne(self, value: u64) -> Arg {
        self.with(ArgOp::Ne, value)
    }
    /// The argument is below `value`.
    pub fn lt(self, value: u64) -> Arg {
        self.with(ArgOp::Lt, value)
    }
    /// The argument is at most `value`.
    pub fn le(self, value: u64) -> Arg {
        self.with(ArgOp::Le, value)
    }
    /// The argument is above `value`.
    pub fn gt(self, value: u64) -> Arg {
        self.with(ArgOp::Gt, value)
    }
    /// The argument is at least `value`.
    pub fn ge(self, value: u64) -> Arg {
        self.with(ArgOp::Ge, value)
    }
    /// `argument & mask == value`.
    pub fn masked_eq(self, mask: u64, value: u64) -> Arg {
        self.with(ArgOp::MaskedEq(mask), value)
    }
    /// Every bit of `bit` is set in the argument (a flag test; give one bit for "this flag
    /// is set").
    pub fn has_bit(self, bit: u64) -> Arg {
        self.with(ArgOp::MaskedEq(bit), bit)
    }
}

/// A refused system call: calls of `name` whose arguments meet every condition of `when`
/// (all calls, when there is none) fail with `errno` (default `EPERM`) without running.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallRule {
    /// The system call's name, as in `man 2 syscalls` (`keyctl`, `ioctl`, ...).
    pub name: String,
    /// Conditions on its arguments, all of which must hold.
    #[serde(default)]
    pub when: Vec<Arg>,
    /// The error the call returns.
    #[serde(default = "eperm")]
    pub errno: i32,
}

fn eperm() -> i32 {
    libc::EPERM
}

impl SyscallRule {
    /// Refuses every call of `name` with `EPERM`.
    pub fn new(name: impl Into<String>) -> SyscallRule {
        SyscallRule {
            name: name.into(),
            when: Vec::new(),
            errno: libc::EPERM,
        }
    }

    /// Refuses only the calls whose arguments also meet `arg`.
    pub fn when(mut self, arg: Arg) -> SyscallRule {
        self.when.push(arg);
        self
    }

    /// The error returned instead of `EPERM` (`ENOSYS` makes many programs fall back to an
    /// older call).
    pub fn errno(mut self, errno: i32) -> SyscallRule {
        self.errno = errno;
        self
    }
}

/// The seccomp filter of a sandbox: a deny-list, loaded last before `execve` (after
/// `no_new_privs`), inherited by every process of the sandbox.
///
/// [`Seccomp::default_profile`] (the default) refuses what a sandboxed program has no
/// business doing, in the spirit of Docker's default profile (see
/// [`Seccomp::default_rules`] for the list and why). [`Seccomp::allow`] takes calls out of
/// it, [`Seccomp::deny`] and [`Seccomp::rule`] add to it, [`Seccomp::off`] loads no
/// filter.
///
/// Calls from another ABI (32-bit `int 0x80` on x86_64) kill the process; x32 calls fail
/// with `ENOSYS`.
///
/// ```
/// use sandbox_core::seccomp::{Arg, Seccomp, SyscallRule};
/// use sandbox_core::Sandbox;
/// let seccomp = Seccomp::default_profile()
///     .allow("ptrace")
///     .deny("socket")
///     .rule(SyscallRule::new("prctl").when(Arg::dword(0).eq(libc::PR_SET_NAME as u64)));
/// let sandbox = Sandbox::new().seccomp(seccomp);
/// # let _ = sandbox;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Seccomp {
    /// Load a filter at all.
    pub enabled: bool,
    /// Start from the default profile.
    pub defaults: bool,
    /// Names taken out of the default profile.
    pub allow: BTreeSet<String>,
    /// Rules added.
    pub deny: Vec<SyscallRule>,
}

impl Default for Seccomp {
    fn default() -> Seccomp {
        Seccomp::default_profile()
    }
}

impl Seccomp {
    /// The default profile; see [`Seccomp::default_rules`].
    pub fn default_profile() -> Seccomp {
        Seccomp {
            enabled: true,
            defaults: true,
            allow: BTreeSet::new(),
            deny: Vec::new(),
        }
    }

    /// No filter at all.
    pub fn off() -> Seccomp {
        Seccomp {
            enabled: false,
            ..Seccomp::default_profile()
        }
    }

    /// A filter with only the rules added with [`Seccomp::deny`] and [`Seccomp::rule`].
    pub fn empty() -> Seccomp {
        Seccomp {
            defaults: false,
            ..Seccomp::default_profile()
        }
    }

    /// Whether a filter is loaded.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Takes every rule about `name` out of the default profile (`ptrace`, to debug inside,
    /// or `io_uring_setup`). Allowing a name that a rule of [`Seccomp::deny`] refuses is a
    /// conflict, reported at spawn.
    pub fn allow(mut self, name: impl Into<String>) -> Seccomp {
        self.allow.insert(name.into());
        self
    }

    /// Refuses every call of `name` with `EPERM`.
    pub fn deny(self, name: impl Into<String>) -> Seccomp {
        self.rule(SyscallRule::new(name))
    }

    /// Adds a rule (a call, conditions on its arguments, an errno).
    pub fn rule(mut self, rule: SyscallRule) -> Seccomp {
        self.deny.push(rule);
        self
    }
    /// Every rule in force, the default ones first.
    fn effective_rules(&self, arch: seccompiler::TargetArch) -> Vec<SyscallRule> {
        let mut v: Vec<SyscallRule> = if self.defaults {
            Seccomp::default_rules_for(arch)
                .into_iter()
                .map(|(r, _)| r)
                .filter(|r| !self.allow.contains(&r.name))
                .collect()
        } else {
            Vec::new()
        };
        v.extend(self.deny.iter().cloned());
        v
    }

    /// Checks the profile and compiles it to BPF (cached per profile).
    pub(crate) fn compile(&self) -> Result<Option<Arc<Compiled>>> {
        if !self.enabled {
            return Ok(None);
        }
        static DEFAULT: OnceLock<Arc<Compiled>> = OnceLock::new();
        static CACHE: OnceLock<Mutex<HashMap<Seccomp, Arc<Compiled>>>> = OnceLock::new();
        if *self == Seccomp::default_profile() {
            if let Some(c) = DEFAULT.get() {
                return Ok(Some(c.clone()));
            }
            let c = Arc::new(self.compile_for(native_arch())?);
            return Ok(Some(DEFAULT.get_or_init(|| c).clone()));
        }
        let cache = CACHE.get_or_init(Default::default);
        if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(self) {
            return Ok(Some(c.clone()));
        }
        let c = Arc::new(self.compile_for(native_arch())?);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(self.clone(), c.clone());
        Ok(Some(c))
    }

    fn check(&self) -> Result<()> {
        for r in &self.deny {
            if self.allow.contains(&r.name) {
                return Err(Error::Conflict(format!(
                    "seccomp: system call {:?} is both allowed and denied",
                    r.name
                )));
            }
            if !(1..=4095).contains(&r.errno) {
                return Err(Error::Invalid {
                    what: "seccomp errno",
                    reason: format!("{} for {:?} is not an errno (1 to 4095)", r.errno, r.name),
                });
            }
            for a in &r.when {
                if a.index > 5 {
                    return Err(Error::Invalid {
                        what: "seccomp argument condition",
                        reason: format!(
                            "argument {} of {:?}: system calls have arguments 0 to 5",
                            a.index, r.name
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks the profile and compiles it to BPF for `arch`, uncached: one filter, whatever
    /// the errnos (see [`assemble`]).
    fn compile_for(&self, arch: seccompiler::TargetArch) -> Result<Compiled> {
        self.check()?;
        let rules = self.effective_rules(arch);
        // Names allowed must exist too: a typo would otherwise go unnoticed.
        let names: Vec<&str> = self
            .allow
            .iter()
            .map(String::as_str)
            .chain(rules.iter().map(|r| r.name.as_str()))
            .collect();
        let numbers = syscall_numbers(&names, arch)?;
        let user = rules.len() - self.deny.len();
        // The caller's rules first: for one call, the first rule that matches decides.
        let mut by_nr: BTreeMap<u32, Vec<&SyscallRule>> = BTreeMap::new();
        for r in rules[user..].iter().chain(&rules[..user]) {
            by_nr.entry(numbers[&r.name]).or_default().push(r);
        }
        let program = assemble(&by_nr, arch);
        if program.len() > BPF_MAXINSNS {
            return Err(Error::Invalid {
                what: "seccomp profile",
                reason: format!(
                    "{} BPF instructions, more than the kernel's {BPF_MAXINSNS}",
                    program.len()
                ),
            });
        }
        Ok(Compiled::new(program))
    }
}

const BPF_MAXINSNS: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use bpf::tests::{run, ALLOW, EPERM, X86};
    use profile::{TIOCLINUX, TIOCSTI};

    #[test]
    fn the_callers_rules_come_first_and_a_rule_needs_all_its_conditions() {
        let s = Seccomp::default_profile()
            .rule(
                SyscallRule::new("ioctl")
                    .when(Arg::dword(1).eq(TIOCSTI))
                    .errno(libc::ENOTTY),
            )
            .rule(
                SyscallRule::new("socket")
                    .when(Arg::dword(0).eq(2))
                    .when(Arg::dword(1).eq(3))
                    .errno(libc::EACCES),
            );
        let c = s.compile_for(seccompiler::TargetArch::x86_64).unwrap();
        let p = c.program();
        let enotty = libc::SECCOMP_RET_ERRNO | libc::ENOTTY as u32;
        let eacces = libc::SECCOMP_RET_ERRNO | libc::EACCES as u32;
        assert_eq!(run(p, 16, X86, [0, TIOCSTI, 0, 0, 0, 0]), enotty);
        assert_eq!(run(p, 16, X86, [0, TIOCLINUX, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(p, 41, X86, [2, 3, 0, 0, 0, 0]), eacces);
        assert_eq!(run(p, 41, X86, [2, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(p, 41, X86, [10, 3, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn unknown_names_are_typed_errors() {
        for s in [
            Seccomp::default_profile().deny("no_such_call"),
            Seccomp::default_profile().allow("ptraec"),
        ] {
            match s.compile() {
                Err(Error::Invalid { what, reason }) => {
                    assert_eq!(what, "seccomp profile");
                    assert!(reason.contains("no system call named"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn conflicts_and_bad_rules_are_refused() {
        let s = Seccomp::default_profile().allow("socket").deny("socket");
        assert!(matches!(s.compile(), Err(Error::Conflict(_))));
        let s = Seccomp::empty().rule(SyscallRule::new("socket").errno(0));
        assert!(matches!(s.compile(), Err(Error::Invalid { .. })));
        let s = Seccomp::empty().rule(SyscallRule::new("socket").when(Arg::new(6).eq(1)));
        assert!(matches!(s.compile(), Err(Error::Invalid { .. })));
    }

    #[test]
    fn allowing_takes_every_rule_of_a_name_away() {
        let s = Seccomp::default_profile().allow("clone").allow("ioctl");
        let rules = s.effective_rules(native_arch());
        assert!(rules.iter().all(|r| r.name != "clone" && r.name != "ioctl"));
        assert!(rules.iter().any(|r| r.name == "unshare"));
        assert!(s.compile().unwrap().is_some());
        assert!(Seccomp::off().compile().unwrap().is_none());
        // Everything allowed away still compiles.
        let mut all = Seccomp::default_profile();
        for (r, _) in Seccomp::default_rules() {
            all = all.allow(r.name);
        }
        let c = all.compile_for(seccompiler::TargetArch::x86_64).unwrap();
        assert_eq!(run(c.program(), 250, X86, [0; 6]), ALLOW);
    }

    #[test]
    fn profiles_round_trip_through_serde() {
        let s = Seccomp::default_profile()
            .allow("ptrace")
            .rule(
                SyscallRule::new("socket")
                    .when(Arg::dword(0).eq(40))
                    .errno(libc::EAFNOSUPPORT),
            )
            .rule(SyscallRule::new("clone").when(Arg::new(0).masked_eq(0xff, 3)));
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Seccomp>(&j).unwrap(), s);
        let short: Seccomp = serde_json::from_str(r#"{"deny":[{"name":"socket"}]}"#).unwrap();
        assert_eq!(short.deny[0].errno, libc::EPERM);
        assert!(short.defaults && short.enabled);
    }
}
