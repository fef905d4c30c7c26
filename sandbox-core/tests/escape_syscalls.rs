//! The kernel interfaces that reach past a sandbox are refused to its program: keyrings,
//! `bpf`, `perf_event_open`, `userfaultfd`, module loading, `reboot`, `personality`, raw
//! sockets, raising a hard rlimit, `io_uring` (whose operations the filter never sees) and
//! x32 calls (which would match no rule). Each attack also runs as a control on the host,
//! where it works, but for those that would change the machine (see `common/escape.rs`).
mod common;

use common::escape::{blocked, escapes_without_sandbox, SERIAL};

#[tokio::test]
async fn kernel_interfaces_that_reach_the_host_are_refused() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for attack in [
        "keyctl",
        "add-key",
        "bpf",
        "perf-event-open",
        "userfaultfd",
        "init-module",
        "reboot",
        "personality",
        "raw-socket",
        "raise-rlimit",
    ] {
        blocked(&[attack], &["EPERM"]).await;
    }
    // The controls: on the host each reaches the kernel and works (a process keyring, a
    // map, a counter, a personality, a socket: all gone with the process). Module loading
    // and reboot get no control run: they would change the machine; nor does raising a
    // hard rlimit: it takes CAP_SYS_RESOURCE, which this machine's root itself lacks.
    for attack in [
        "keyctl",
        "add-key",
        "bpf",
        "perf-event-open",
        "userfaultfd",
        "personality",
        "raw-socket",
        "io-uring",
    ] {
        escapes_without_sandbox(&[], &[attack]);
    }
    // io_uring would run operations the filter never sees; x32 calls would match no rule
    // (this kernel has no x32 ABI, so there is no control run for it).
    blocked(&["io-uring"], &["ENOSYS"]).await;
    blocked(&["x32"], &["ENOSYS"]).await;
}
