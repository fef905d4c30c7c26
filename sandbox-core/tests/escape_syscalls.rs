//! The kernel interfaces that reach past a sandbox are refused to its program: keyrings,
//! `bpf`, `perf_event_open`, `userfaultfd`, module loading, `reboot`, `personality`, raw
//! sockets, raising a hard rlimit, `io_uring` (whose operations the filter never sees) and
//! x32 calls (which would match no rule). Each attack also runs as a control on the host,
//! where it works, but for those that would change the machine (see `common/escape.rs`).
mod common;

use common::escape::{blocked, escapes_without_sandbox, SERIAL};

/// Attacks refused with EPERM whose control run on the host works (a process keyring, a
/// map, a counter, a personality, a socket: all gone with the process).
const WITH_CONTROL: [&str; 7] = [
    "keyctl",
    "add-key",
    "bpf",
    "perf-event-open",
    "userfaultfd",
    "personality",
    "raw-socket",
];

/// Attacks refused with EPERM that get no control run: module loading and reboot would
/// change the machine; raising a hard rlimit takes CAP_SYS_RESOURCE, which this machine's
/// root itself lacks.
const WITHOUT_CONTROL: [&str; 3] = ["init-module", "reboot", "raise-rlimit"];

#[tokio::test]
async fn kernel_interfaces_that_reach_the_host_are_refused() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for attack in WITH_CONTROL.iter().chain(&WITHOUT_CONTROL) {
        blocked(&[attack], &["EPERM"]).await;
    }
    // The controls: on the host each reaches the kernel and works.
    for attack in WITH_CONTROL.iter().chain(&["io-uring"]) {
        escapes_without_sandbox(&[], &[attack]);
    }
    // io_uring would run operations the filter never sees; x32 calls would match no rule
    // (this kernel has no x32 ABI, so there is no control run for it).
    blocked(&["io-uring"], &["ENOSYS"]).await;
    blocked(&["x32"], &["ENOSYS"]).await;
}
