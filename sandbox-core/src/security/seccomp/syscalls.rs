//! System call numbers by name: libc's for this machine's architecture, seccompiler's
//! tables for the others.

use super::bpf;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The number of system call `name` on `arch`.
#[cfg(test)]
fn syscall_number(name: &str, arch: seccompiler::TargetArch) -> Result<u32> {
    Ok(syscall_numbers(&[name], arch)?[name])
}

/// The numbers of the default profile's calls on this machine's architecture, from libc:
/// building the default filter then needs no table at all (seccompiler's costs about a
/// millisecond to build, once per process). A unit test checks them against seccompiler.
fn native_number(name: &str) -> Option<u32> {
    let n = match name {
        "acct" => libc::SYS_acct,
        "add_key" => libc::SYS_add_key,
        "keyctl" => libc::SYS_keyctl,
        "request_key" => libc::SYS_request_key,
        "bpf" => libc::SYS_bpf,
        "perf_event_open" => libc::SYS_perf_event_open,
        "userfaultfd" => libc::SYS_userfaultfd,
        "kexec_load" => libc::SYS_kexec_load,
        "kexec_file_load" => libc::SYS_kexec_file_load,
        "init_module" => libc::SYS_init_module,
        "finit_module" => libc::SYS_finit_module,
        "delete_module" => libc::SYS_delete_module,
        "open_by_handle_at" => libc::SYS_open_by_handle_at,
        "name_to_handle_at" => libc::SYS_name_to_handle_at,
        "mount" => libc::SYS_mount,
        "umount2" => libc::SYS_umount2,
        "pivot_root" => libc::SYS_pivot_root,
        "fsopen" => libc::SYS_fsopen,
        "fsconfig" => libc::SYS_fsconfig,
        "fsmount" => libc::SYS_fsmount,
        "fspick" => libc::SYS_fspick,
        "move_mount" => libc::SYS_move_mount,
        "open_tree" => libc::SYS_open_tree,
        "mount_setattr" => libc::SYS_mount_setattr,
        "swapon" => libc::SYS_swapon,
        "swapoff" => libc::SYS_swapoff,
        "reboot" => libc::SYS_reboot,
        "settimeofday" => libc::SYS_settimeofday,
        "clock_settime" => libc::SYS_clock_settime,
        "clock_adjtime" => libc::SYS_clock_adjtime,
        "ptrace" => libc::SYS_ptrace,
        "process_vm_readv" => libc::SYS_process_vm_readv,
        "process_vm_writev" => libc::SYS_process_vm_writev,
        "kcmp" => libc::SYS_kcmp,
        "pidfd_getfd" => libc::SYS_pidfd_getfd,
        "setns" => libc::SYS_setns,
        "quotactl" => libc::SYS_quotactl,
        "quotactl_fd" => libc::SYS_quotactl_fd,
        "syslog" => libc::SYS_syslog,
        "vhangup" => libc::SYS_vhangup,
        "lookup_dcookie" => libc::SYS_lookup_dcookie,
        "fanotify_init" => libc::SYS_fanotify_init,
        "unshare" => libc::SYS_unshare,
        "clone" => libc::SYS_clone,
        "personality" => libc::SYS_personality,
        "ioctl" => libc::SYS_ioctl,
        "clone3" => libc::SYS_clone3,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "io_uring_enter" => libc::SYS_io_uring_enter,
        "io_uring_register" => libc::SYS_io_uring_register,
        _ => return native_arch_number(name),
    };
    Some(n as u32)
}

#[cfg(target_arch = "x86_64")]
fn native_arch_number(name: &str) -> Option<u32> {
    let n = match name {
        // (Removed from the kernel; libc no longer names them.)
        "create_module" => 174,
        "get_kernel_syms" => 177,
        "query_module" => 178,
        "nfsservctl" => libc::SYS_nfsservctl,
        "_sysctl" => libc::SYS__sysctl,
        "uselib" => libc::SYS_uselib,
        "ustat" => libc::SYS_ustat,
        "sysfs" => libc::SYS_sysfs,
        "ioperm" => libc::SYS_ioperm,
        "iopl" => libc::SYS_iopl,
        _ => return None,
    };
    Some(n as u32)
}

#[cfg(not(target_arch = "x86_64"))]
fn native_arch_number(_name: &str) -> Option<u32> {
    None
}

/// The numbers of system calls `names` on `arch`. seccompiler's tables are not public; its
/// compiler is: a filter with one call is the architecture check (3 instructions), the
/// load of the number, and the comparison with it. Names not seen before are compiled
/// together, one filter each, in one call (one table built), then remembered.
pub(super) fn syscall_numbers(
    names: &[&str],
    arch: seccompiler::TargetArch,
) -> Result<HashMap<String, u32>> {
    static CACHE: OnceLock<Mutex<HashMap<(String, bool), u32>>> = OnceLock::new();
    let x86 = arch == seccompiler::TargetArch::x86_64;
    let cache = CACHE.get_or_init(Default::default);
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    {
        let known = cache.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            if let Some(n) = native_number(name).filter(|_| arch == native_arch()) {
                out.insert(name.to_string(), n);
                continue;
            }
            match known.get(&(name.to_string(), x86)) {
                Some(n) => {
                    out.insert(name.to_string(), *n);
                }
                None => missing.push(*name),
            }
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let mut doc = serde_json::Map::new();
    for (i, name) in missing.iter().enumerate() {
        doc.insert(
            format!("n{i}"),
            serde_json::json!({
                "mismatch_action": "allow",
                "match_action": { "errno": libc::EPERM },
                "filter": [{ "syscall": name }],
            }),
        );
    }
    let text = serde_json::Value::Object(doc).to_string();
    let map = seccompiler::compile_from_json(text.as_bytes(), arch)
        .map_err(|e| profile_error(&e, arch))?;
    let mut known = cache.lock().unwrap_or_else(|e| e.into_inner());
    for (i, name) in missing.iter().enumerate() {
        let n = match map.get(&format!("n{i}")).and_then(|p| p.get(4)) {
            Some(insn) if insn.code == bpf::JMP | bpf::JEQ => insn.k,
            _ => {
                return Err(Error::Invalid {
                    what: "seccomp profile",
                    reason: format!("cannot tell the number of system call {name:?}"),
                })
            }
        };
        known.insert((name.to_string(), x86), n);
        out.insert(name.to_string(), n);
    }
    Ok(out)
}

/// seccompiler's error as ours; its "unknown name" error type is not public, so the name is
/// taken from the message (`Invalid syscall name: NAME for given arch: ARCH.`).
fn profile_error(e: &seccompiler::Error, arch: seccompiler::TargetArch) -> Error {
    let text = e.to_string();
    const MARK: &str = "Invalid syscall name: ";
    let reason = match text.find(MARK) {
        Some(i) => {
            let rest = &text[i + MARK.len()..];
            let name = rest.split(" for given arch").next().unwrap_or(rest);
            format!("no system call named {name:?} on {arch:?}")
        }
        None => text,
    };
    Error::Invalid {
        what: "seccomp profile",
        reason,
    }
}

pub(super) fn native_arch() -> seccompiler::TargetArch {
    #[cfg(target_arch = "x86_64")]
    return seccompiler::TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return seccompiler::TargetArch::aarch64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::Seccomp;

    #[test]
    fn the_native_table_agrees_with_seccompilers() {
        let mut names: Vec<String> = Seccomp::default_rules()
            .into_iter()
            .map(|(r, _)| r.name)
            .collect();
        names.sort();
        names.dedup();
        let arch = native_arch();
        for name in &names {
            let ours = native_number(name).unwrap_or_else(|| panic!("{name} not in libc's table"));
            let text = serde_json::json!({ "n": {
                "mismatch_action": "allow",
                "match_action": { "errno": 1 },
                "filter": [{ "syscall": name }],
            } })
            .to_string();
            let map = seccompiler::compile_from_json(text.as_bytes(), arch).unwrap();
            assert_eq!(map["n"][4].k, ours, "{name}");
        }
    }

    #[test]
    fn numbers_come_from_the_right_table() {
        let x86 = seccompiler::TargetArch::x86_64;
        assert_eq!(syscall_number("keyctl", x86).unwrap(), 250);
        assert_eq!(syscall_number("ioctl", x86).unwrap(), 16);
        assert_eq!(syscall_number("clone3", x86).unwrap(), 435);
        let arm = seccompiler::TargetArch::aarch64;
        assert_eq!(syscall_number("ioctl", arm).unwrap(), 29);
        assert_eq!(
            syscall_number("keyctl", native_arch()).unwrap(),
            libc::SYS_keyctl as u32
        );
    }
}
