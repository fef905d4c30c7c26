//! Helpers of the escape tests (`escape_*.rs`, `security_settings.rs`). Each case runs one
//! attack (`tests/escape/attacks.c`, built with the host's gcc) inside a sandbox with every
//! default protection — only its root is `Rootfs::host_readonly()` instead of the host's
//! tree, so that there is an "outside" to reach — and asserts that it failed, with the error
//! that says which layer stopped it, and, where the host can see it, that nothing changed on
//! the host. A control run of the same attack straight on the host must report that it
//! worked there: the attack program detects what it tries.
use super as common;
use sandbox_core::{Mount, Rootfs, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One test at a time: some compare the host's processes and mounts before and after.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The attack program, built once per test binary.
pub fn attacks() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BUILT
        .get_or_init(|| common::compile_c("escape/attacks.c"))
        .1
}

/// A default sandbox (but for its root), with the attack program at `/attacks`.
pub fn sandbox() -> Sandbox {
    Sandbox::new()
        .rootfs(Rootfs::host_readonly())
        .mount(Mount::bind(attacks(), "/attacks").readonly())
}

/// Runs `attacks ARGS...` in `sandbox`; returns its exit code and its output. With
/// `SANDBOX_TEST_POOL=fresh` in the environment (`scripts/test.sh` runs the escape suites
/// again so), the attack runs in a sandbox of a [`Pool`](sandbox_core::Pool): made ahead,
/// its init waiting, the program started by a request. With `SANDBOX_TEST_POOL=reused`, it
/// runs twice in one sandbox of a reused pool (when the description allows one), and the
/// second run — in a sandbox the first one used — is the one reported.
pub async fn run_in(sandbox: &Sandbox, args: &[&str]) -> (i32, String) {
    let mut cmd = sandbox.command("/attacks");
    cmd.args(args);
    let out = match std::env::var("SANDBOX_TEST_POOL").as_deref() {
        Ok("fresh") => {
            let pool = sandbox_core::Pool::new(sandbox.clone(), 1).await.unwrap();
            let out = pool.output(&mut cmd).await.unwrap();
            assert_eq!(pool.stats().hits, 1, "ran in a sandbox made ahead");
            out
        }
        Ok("reused") => match sandbox_core::Pool::reused(sandbox.clone(), 1).await {
            Ok(pool) => {
                let first = pool.output(&mut cmd).await.unwrap();
                let second = pool.output(&mut cmd).await.unwrap();
                let s = pool.stats();
                if first.status.success() {
                    assert_eq!((s.hits, s.made), (2, 1), "ran twice in one sandbox: {s:?}");
                }
                second
            }
            Err(sandbox_core::Error::Unsupported(_) | sandbox_core::Error::Conflict(_)) => {
                cmd.output().await.unwrap()
            }
            Err(e) => panic!("{e}"),
        },
        _ => cmd.output().await.unwrap(),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let code = match out.status.ending {
        sandbox_core::Ending::Exited(c) => c,
        other => panic!("{args:?} ended by {other:?}: {text}"),
    };
    (code, text)
}

/// Asserts that attack `args[0]` failed with `errno` (one of them, when several layers may
/// stop it first).
pub async fn blocked(args: &[&str], errnos: &[&str]) {
    blocked_in(&sandbox(), args, errnos).await
}

pub async fn blocked_in(sandbox: &Sandbox, args: &[&str], errnos: &[&str]) {
    let (code, text) = run_in(sandbox, args).await;
    assert_eq!(code, 0, "{args:?}: {text}");
    let got = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("blocked {} ", args[0])))
        .unwrap_or_else(|| panic!("{args:?}: {text}"))
        .to_string();
    assert!(
        errnos.contains(&got.as_str()),
        "{args:?}: {got}, wanted {errnos:?}"
    );
}

/// The control run: `attacks ARGS` straight on the host as root, with nothing to stop it
/// (only wrapped in `wrap`, e.g. `unshare -m`, where success would otherwise change the
/// machine), must report the attack as having worked: the program detects what it tries.
pub fn escapes_without_sandbox(wrap: &[&str], args: &[&str]) {
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(attacks());
            c
        }
        None => std::process::Command::new(attacks()),
    };
    let out = cmd.args(args).current_dir("/").output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "control {wrap:?} {args:?}: {text}"
    );
    assert!(
        text.starts_with(&format!("ESCAPED {}", args[0])),
        "control {args:?}: {text}"
    );
}

/// A world-readable file on the host, outside the sandbox's root.
pub fn canary() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::open_tempdir();
    let f = dir.path().join("canary");
    std::fs::write(&f, "secret").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, f)
}

/// `/proc/<pid>/status` of a sandbox's program, read from the host while it runs.
pub async fn program_status_from_host(sandbox: &Sandbox) -> String {
    common::while_running(sandbox, |child| {
        let init = child.id().unwrap();
        assert!(common::eventually(
            std::time::Duration::from_secs(5),
            || !common::children_of(init).is_empty()
        ));
        let program = common::children_of(init)[0];
        std::fs::read_to_string(format!("/proc/{program}/status")).unwrap()
    })
    .await
}

/// The `Name:\tvalue` line of a status text.
pub fn status_line<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Every capability set in a `/proc/<pid>/status` text is `mask` (16 hex digits).
pub fn assert_capability_sets(status: &str, mask: &str) {
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status_line(status, set),
            format!("{set}:\t{mask}"),
            "{status}"
        );
    }
}
