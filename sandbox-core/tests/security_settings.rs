//! The security settings open or narrow exactly what they name, and nothing else: a kept
//! capability is in every set and works, a syscall allowed (or denied with an errno) changes
//! only that call, `Seccomp::off()` lets every call reach the kernel, and a Landlock ruleset
//! limits the paths the program may open inside its root. Bad settings (unknown or
//! contradictory syscall rules, a bad errno or capability name, a relative Landlock path)
//! are typed errors before anything is spawned; a Landlock path missing inside the root is
//! a setup error that names it. (The attack program: `common/escape.rs`.)
mod common;

use common::escape::{
    assert_capability_sets, blocked_in, program_status_from_host, run_in, sandbox, SERIAL,
};
use sandbox_core::{Capability, Error, Landlock, Seccomp};

/// The builders open exactly what they name, and nothing else.
#[tokio::test]
async fn what_is_kept_or_allowed_works_and_only_that() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    // A kept capability is in every set, and works.
    let raw = sandbox().capability(Capability::NetRaw);
    let (code, text) = run_in(&raw, &["raw-socket"]).await;
    assert_eq!(code, 1, "a kept CAP_NET_RAW opens a raw socket: {text}");
    let (_, text) = run_in(&raw, &["setuid-gain"]).await;
    let want = format!("{:016x}", 1u64 << 13);
    assert_capability_sets(&text, &want);
    assert_capability_sets(&program_status_from_host(&raw).await, &want);
    blocked_in(&raw, &["mknod"], &["EPERM"]).await;
    // An allowed call goes through; the rest of the profile stays.
    let ptrace = sandbox().seccomp(Seccomp::default_profile().allow("ptrace"));
    let (code, text) = run_in(&ptrace, &["ptrace-child"]).await;
    assert_eq!(code, 1, "ptrace allowed: {text}");
    blocked_in(&ptrace, &["keyctl"], &["EPERM"]).await;
    // A denied call is refused with the errno asked for.
    let no_sockets = sandbox().seccomp(
        Seccomp::default_profile()
            .rule(sandbox_core::seccomp::SyscallRule::new("socket").errno(libc::EACCES)),
    );
    blocked_in(&no_sockets, &["raw-socket"], &["EACCES"]).await;
    // Off: keyctl reaches the kernel (and works on a keyring of the sandbox's own).
    let off = sandbox().seccomp(Seccomp::off());
    let (code, text) = run_in(&off, &["keyctl"]).await;
    assert_eq!(code, 1, "no filter: {text}");
}

#[tokio::test]
async fn bad_security_settings_are_typed_errors_before_spawning() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let kids = common::children();
    let cases = [
        sandbox().seccomp(Seccomp::default_profile().deny("no_such_call")),
        sandbox().seccomp(Seccomp::default_profile().allow("ptraec")),
        sandbox().seccomp(Seccomp::default_profile().allow("socket").deny("socket")),
        sandbox().seccomp(
            Seccomp::empty().rule(sandbox_core::seccomp::SyscallRule::new("socket").errno(100_000)),
        ),
    ];
    for s in cases {
        let e = s.command("/attacks").output().await.unwrap_err();
        match &e {
            Error::Invalid { .. } | Error::Conflict(_) => {}
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("seccomp"), "{e}");
    }
    assert!(matches!(
        "CAP_FLY".parse::<Capability>().map_err(Error::from),
        Err(Error::Invalid {
            what: "capability",
            ..
        })
    ));
    assert_eq!(common::children(), kids);
}

/// Landlock narrows what the program may open inside its own root.
#[tokio::test]
async fn landlock_limits_the_paths_the_program_may_open() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let locked = sandbox().landlock(
        Landlock::new()
            .read_only("/attacks")
            .read_write("/tmp")
            .required(),
    );
    // Outside the rules: refused, though the root shows it (and without landlock, opens).
    blocked_in(&locked, &["open", "/etc/hostname"], &["EACCES"]).await;
    let (code, text) = run_in(&sandbox(), &["open", "/etc/hostname"]).await;
    assert_eq!(code, 1, "{text}");
    // Read-write beneath /tmp; read-only on the program itself.
    let (code, text) = run_in(&locked, &["create", "/tmp/f"]).await;
    assert_eq!(code, 1, "creating under a read-write path works: {text}");
    blocked_in(&locked, &["create", "/attacks"], &["EACCES"]).await;
    // A path missing inside the root is a setup error that names it.
    let e = sandbox()
        .landlock(Landlock::new().read_only("/attacks").read_only("/no/such"))
        .command("/attacks")
        .output()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/no/such"), "{e}");
    // And a relative one never gets that far.
    let e = sandbox()
        .landlock(Landlock::new().read_only("usr"))
        .command("/attacks")
        .output()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                what: "landlock path",
                ..
            }
        ),
        "{e}"
    );
}
