//! A sandboxed program holds no capability in any of its five sets and cannot gain one:
//! `no_new_privs` is set (no set-uid binary can give it one) and a seccomp filter is on —
//! as it reports itself and as the host reads in its `/proc/<pid>/status`. Its working
//! directory is inside its new root.
mod common;

use common::escape::{
    assert_capability_sets, program_status_from_host, run_in, sandbox, status_line, SERIAL,
};

#[tokio::test]
async fn the_program_has_no_capability_and_cannot_gain_one() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let (code, text) = run_in(&sandbox(), &["setuid-gain"]).await;
    assert_eq!(code, 0, "{text}");
    assert_capability_sets(&text, "0000000000000000");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    // The same, seen from the host.
    let status = program_status_from_host(&sandbox()).await;
    assert_capability_sets(&status, "0000000000000000");
    assert_eq!(status_line(&status, "NoNewPrivs"), "NoNewPrivs:\t1");
    assert_eq!(status_line(&status, "Seccomp"), "Seccomp:\t2");
    // The working directory is inside the new root.
    let out = sandbox()
        .command("/bin/readlink")
        .arg("/proc/self/cwd")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"/\n");
}
