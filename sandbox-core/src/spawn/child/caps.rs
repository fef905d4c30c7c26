//! Capabilities: only the plan's kept ones survive, in every set.

use super::syscall::{prctl, sys};
use crate::spawn::prepare::ChildPlan;
use libc::c_int;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

/// `struct __user_cap_data_struct` (two of them for 64 capabilities).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Keeps only the plan's capabilities, in every set: bounding (so no `execve` gains one
/// back; root's permitted set after `execve` is its bounding set), effective, permitted,
/// inheritable, and ambient (so a kept one survives `execve` whatever the uid).
pub(super) fn drop_capabilities(plan: &ChildPlan) -> Result<(), c_int> {
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SETPCAP: u32 = 8;
    let keep = plan.caps_keep;
    let mut header = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    sys!(
        libc::SYS_capget,
        &mut header as *mut CapHeader,
        data.as_mut_ptr()
    )?;
    // Without CAP_SETPCAP (a caller that is not root, sharing the user namespace) the
    // bounding set cannot shrink, and need not: such a process has no capability to keep,
    // and no_new_privs stops `execve` from granting any.
    if data[0].effective & (1 << CAP_SETPCAP) != 0 {
        for cap in 0..=plan.cap_last.min(63) {
            if keep & (1u64 << cap) == 0 {
                match prctl(libc::PR_CAPBSET_DROP, cap as usize) {
                    Ok(()) | Err(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let (lo, hi) = (keep as u32, (keep >> 32) as u32);
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: lo,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: hi,
        },
    ];
    header.version = VERSION_3;
    sys!(libc::SYS_capset, &header as *const CapHeader, data.as_ptr())?;
    // (Unused arguments are zero, as prctl requires: `sys!` pads them.)
    sys!(
        libc::SYS_prctl,
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL
    )?;
    for cap in 0..=plan.cap_last.min(63) {
        if keep & (1u64 << cap) != 0 {
            sys!(
                libc::SYS_prctl,
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                cap
            )?;
        }
    }
    Ok(())
}
