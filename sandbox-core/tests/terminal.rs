//! Sessions and terminals: every sandbox runs in a session of its own, without the caller's
//! controlling terminal; `Stdio::pty()` gives it a terminal of its own.
mod common;

use sandbox_core::{Sandbox, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `(session id, tty_nr)` of a process, from the host's `/proc/<pid>/stat`.
fn session_and_tty(pid: u32) -> (i64, i64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = s.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // After the name: state ppid pgrp session tty_nr ...
    (f[3].parse().unwrap(), f[4].parse().unwrap())
}

#[tokio::test]
async fn a_sandbox_has_a_session_of_its_own_and_no_terminal() {
    common::require_root();
    let (mut child, mut lines) = common::shell(&Sandbox::new(), "echo up; read x || true").await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "up");
    let init = child.id().unwrap();
    let prog = common::children_of(init)[0];
    let (my_session, _) = session_and_tty(std::process::id());
    for pid in [init, prog] {
        let (session, tty) = session_and_tty(pid);
        assert_ne!(session, my_session, "pid {pid} shares the caller's session");
        // The sandbox's first process leads the session (its host pid is the session id).
        assert_eq!(session, i64::from(init), "pid {pid}");
        assert_eq!(tty, 0, "pid {pid} has a controlling terminal");
    }
    drop(child.stdin.take());
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn a_pty_is_the_programs_controlling_terminal() {
    common::require_root();
    let mut child = Sandbox::new()
        .command("/bin/sh")
        .stdin(Stdio::pty())
        .stdout(Stdio::pty())
        .stderr(Stdio::pty())
        .spawn()
        .await
        .unwrap();
    let mut pty = child.pty.take().expect("the caller's side of the pty");
    assert!(child.stdout.is_none() && child.stdin.is_none());
    pty.resize(40, 100).unwrap();
    assert_eq!(pty.size().unwrap(), (40, 100));
    let init = child.id().unwrap();
    // The program sees a terminal, its size, and itself in the foreground.
    pty.write_all(b"tty -s && echo T$((1+1)); stty size; echo S$((2+2)); read x\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("S4") {
        let n = tokio::time::timeout(Duration::from_secs(10), pty.read(&mut buf))
            .await
            .expect("the shell answers on its terminal")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("T2"), "{text}");
    assert!(text.contains("40 100"), "{text}");
    // From the host: the program's controlling terminal is a pty, in its own session.
    let prog = common::children_of(init)[0];
    let (session, tty) = session_and_tty(prog);
    assert_eq!(session, i64::from(init));
    assert_ne!(tty, 0);
    assert_ne!(session, session_and_tty(std::process::id()).0);
    // The end of the program is the end of the terminal's stream.
    pty.write_all(b"done\nexit 3\n").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), pty.read_to_end(&mut rest))
        .await
        .expect("the stream ends with the sandbox")
        .unwrap();
    assert_eq!(
        child.wait().await.unwrap().ending,
        sandbox_core::Ending::Exited(3)
    );
}
