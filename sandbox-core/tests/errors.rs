//! What cannot run fails with a typed error, never a hang or a panic, and leaves nothing
//! behind: a missing program is the typed exec error, a failed setup step names the step,
//! and bad input is refused before any process exists (no child, no open descriptor).
mod common;
use sandbox_core::{Command, Error, IdMap, Namespace, Rootfs, Sandbox, Stage};
use std::time::Duration;

/// The fd and child counts are per process: the tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn missing_program_is_a_typed_exec_error() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    for init in [true, false] {
        let e = tokio::time::timeout(
            Duration::from_secs(10),
            Sandbox::new().init(init).command("/no/such").status(),
        )
        .await
        .expect("no hang")
        .unwrap_err();
        assert!(
            matches!(e, Error::Setup { stage: Stage::Exec, ref what, .. } if what.as_deref() == Some("/no/such")),
            "{e:?}"
        );
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(
            e.to_string(),
            "exec /no/such: No such file or directory (ENOENT)"
        );
    }
}

#[tokio::test]
async fn setup_failures_name_the_step() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut c = Sandbox::new().command("/bin/true");
    c.current_dir("/no/such/dir");
    let e = c.status().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "chdir /no/such/dir: No such file or directory (ENOENT)"
    );
    // A file that is not executable.
    let f = tempfile::NamedTempFile::new().unwrap();
    let path = f.path().display().to_string();
    let e = Sandbox::new().command(&path).status().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("exec {path}: Permission denied (EACCES)")
    );
}

/// Each of these is refused before a process exists: no child appears, no fd is left open.
#[tokio::test]
async fn bad_input_is_refused_before_spawning() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    // Warm up the library's threads and their fds.
    Sandbox::new().command("/bin/true").status().await.unwrap();
    let fds = common::open_fds();
    let kids = common::children();
    let long = "h".repeat(65);
    let cases: Vec<(Command, &str)> = vec![
        (
            Command::new("bin/sh"),
            "invalid program \"bin/sh\": not an absolute path",
        ),
        (Command::new(""), "invalid program \"\": empty path"),
        (
            Sandbox::new().hostname(long).command("/bin/true"),
            "longer than 64 bytes",
        ),
        (
            Sandbox::new().hostname("a\0b").command("/bin/true"),
            "contains a NUL byte",
        ),
        (
            {
                let mut c = Command::new("/bin/echo");
                c.arg("nul\0inside");
                c
            },
            "argument contains a NUL byte",
        ),
        (
            Sandbox::new()
                .uid_map(IdMap::new(0, 100000, 100))
                .uid_map(IdMap::new(50, 300000, 100))
                .command("/bin/true"),
            "invalid uid map: ranges 0 100000 100 and 50 300000 100 overlap inside",
        ),
        (
            Sandbox::new()
                .rootfs(Rootfs::dir("/no/such/rootfs"))
                .command("/bin/true"),
            "rootfs /no/such/rootfs: No such file or directory",
        ),
        (
            Sandbox::new()
                .join(Namespace::Net, "/no/such/netns")
                .command("/bin/true"),
            "join net namespace /no/such/netns",
        ),
        (
            Sandbox::new()
                .share(Namespace::Uts)
                .hostname("x")
                .command("/bin/true"),
            "conflicting settings",
        ),
    ];
    for (mut cmd, want) in cases {
        let e = cmd.spawn().await.unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
    }
    assert_eq!(common::open_fds(), fds, "an fd was left open");
    assert_eq!(common::children(), kids, "a process was created");
}

#[tokio::test]
async fn a_failed_spawn_leaves_no_process() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    Sandbox::new().command("/bin/true").status().await.unwrap();
    let fds = common::open_fds();
    for _ in 0..20 {
        Sandbox::new()
            .command("/no/such")
            .status()
            .await
            .unwrap_err();
    }
    assert!(common::children().is_empty(), "{:?}", common::children());
    assert_eq!(common::open_fds(), fds);
}
