//! Stdio (piped, null, inherit, a file), the environment, and the working directory behave
//! as with tokio::process.
mod common;
use sandbox_core::{Command, Sandbox, Stdio};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn piped_stdin_stdout_stderr() {
    common::require_root();
    let mut child = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg("read line; echo out:$line; echo err:$line >&2; exit 3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\n")
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.stdout, b"out:hello\n");
    assert_eq!(out.stderr, b"err:hello\n");
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test]
async fn output_reads_null_stdin_and_stdio_can_be_a_file() {
    common::require_root();
    let out = Command::new("/bin/cat").output().await.unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let f = tempfile::NamedTempFile::new().unwrap();
    let o = Sandbox::new()
        .command("/bin/echo")
        .arg("into a file")
        .stdout(f.reopen().unwrap())
        .status()
        .await
        .unwrap();
    assert!(o.success());
    assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "into a file\n");
}

#[tokio::test]
async fn environment_is_minimal_and_settable() {
    common::require_root();
    std::env::set_var("SANDBOX_TEST_SECRET", "do-not-leak");
    let out = Sandbox::new()
        .hostname("envbox")
        .command("/usr/bin/env")
        .env("GREETING", "hi")
        .output()
        .await
        .unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = env.lines().map(|l| l.split('=').next().unwrap()).collect();
    names.sort();
    let mut want = vec!["GREETING", "HOME", "HOSTNAME", "PATH"];
    if std::env::var_os("TERM").is_some() {
        want.push("TERM");
    }
    want.sort();
    assert_eq!(names, want, "{env}");
    assert!(!env.contains("do-not-leak"));
    assert!(env.contains("HOSTNAME=envbox"));
    let out = Command::new("/usr/bin/env")
        .env_clear()
        .env("ONLY", "this")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ONLY=this\n");
}

#[tokio::test]
async fn working_directory_is_inside_the_sandbox() {
    common::require_root();
    let out = Sandbox::new()
        .command("/bin/pwd")
        .current_dir("/tmp")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"/tmp\n");
    let out = Command::new("/bin/pwd").output().await.unwrap();
    assert_eq!(out.stdout, b"/\n");
}

#[tokio::test]
async fn try_wait_and_wait_are_idempotent() {
    common::require_root();
    let mut child = Command::new("/bin/sleep").arg("0.2").spawn().await.unwrap();
    assert_eq!(child.try_wait().unwrap(), None);
    let a = child.wait().await.unwrap();
    let b = child.wait().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(child.try_wait().unwrap(), Some(a));
    assert!(a.wall_time >= std::time::Duration::from_millis(200));
    assert!(child.signal(libc::SIGTERM).is_err());
}
