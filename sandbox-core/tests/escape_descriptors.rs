//! Only the descriptors given on purpose reach a sandboxed program: the caller's own (even
//! those opened without `O_CLOEXEC`) stay behind, those passed with `pass_fd` arrive at the
//! numbers asked for and nothing else does, and a terminal given as its stdin cannot be used
//! to push keystrokes into the caller's input (`TIOCSTI`). Each attack also runs as a
//! control on the host, where it works (see `common/escape.rs`).
mod common;

use common::escape::{attacks, blocked, canary, escapes_without_sandbox, run_in, sandbox, SERIAL};
use sandbox_core::{Error, Stdio};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[tokio::test]
async fn keystrokes_cannot_be_pushed_into_the_callers_terminal() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let pty = nix::pty::openpty(None, None).unwrap();
    // Raw: a pushed character is readable at once (canonical mode waits for a newline).
    let mut raw = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    nix::sys::termios::cfmakeraw(&mut raw);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &raw).unwrap();
    let slave = pty.slave.try_clone().unwrap();
    for attack in ["tiocsti", "tiocsti-high-bits"] {
        let sandbox = sandbox();
        let out = sandbox
            .command("/attacks")
            .arg(attack)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), format!("blocked {attack} EPERM"), "{out:?}");
    }
    // The control, on the host (whose root may push into any terminal): it works.
    let out = std::process::Command::new(attacks())
        .arg("tiocsti")
        .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ESCAPED tiocsti"),
        "{out:?}"
    );
    nix::fcntl::fcntl(
        &pty.slave,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut pushed = [0u8; 1];
    assert_eq!(nix::unistd::read(&pty.slave, &mut pushed), Ok(1));
    assert_eq!(&pushed, b"x");
    // Nothing else waits to be read on the terminal.
    let mut buf = [0u8; 16];
    assert_eq!(
        nix::unistd::read(&pty.slave, &mut buf),
        Err(nix::errno::Errno::EAGAIN)
    );
}

#[tokio::test]
async fn descriptors_of_the_caller_are_not_inherited() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let (_dir, canary) = canary();
    let c = std::ffi::CString::new(canary.to_str().unwrap()).unwrap();
    // Opened without O_CLOEXEC, as careless code does.
    // SAFETY: a valid path; the descriptor is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0);
    // SAFETY: a descriptor just opened, owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let number = fd.as_raw_fd().to_string();
    blocked(&["fd", &number], &["EBADF"]).await;
    let (code, text) = run_in(&sandbox(), &["list-fds"]).await;
    assert_eq!(code, 0, "descriptors above 2 are open: {text}");
    // The control: a plain child inherits it (std's spawn keeps non-CLOEXEC descriptors).
    escapes_without_sandbox(&[], &["fd", &number]);
    let out = std::process::Command::new(attacks())
        .arg("list-fds")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("open {number}")),
        "{out:?}"
    );
}

/// Descriptors passed on purpose arrive at the numbers asked for, and only they.
#[tokio::test]
async fn descriptors_passed_on_purpose_arrive_and_nothing_else() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let (r, w) = nix::unistd::pipe().unwrap();
    let (_r2, w2) = nix::unistd::pipe().unwrap();
    // Numbers that the caller's own descriptors (and the spawn's) may well occupy.
    for target in [3, 5, 40] {
        let sb = sandbox();
        let mut cmd = sb.command("/attacks");
        cmd.args(["write-fd", &target.to_string(), "through"])
            .pass_fd(target, w.try_clone().unwrap())
            .pass_fd(if target == 3 { 4 } else { 3 }, w2.try_clone().unwrap());
        let out = cmd.output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("ESCAPED write-fd"), "{text}");
        let mut buf = [0u8; 7];
        nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf, b"through");
    }
    // Above the sandbox's own open-files limit too (it applies once they are in place).
    let sb = sandbox().limits(sandbox_core::Limits::new().open_files(16));
    let mut cmd = sb.command("/attacks");
    cmd.args(["write-fd", "20", "through"])
        .pass_fd(20, w.try_clone().unwrap());
    let out = cmd.output().await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("ESCAPED write-fd"),
        "{out:?}"
    );
    let mut buf = [0u8; 7];
    nix::unistd::read(&r, &mut buf).unwrap();
    let sb = sandbox();
    let mut cmd = sb.command("/attacks");
    cmd.arg("list-fds").pass_fd(7, w.try_clone().unwrap());
    let out = cmd.output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "open 7\n");
    // Bad numbers are refused before anything runs.
    let sb = sandbox();
    let mut cmd = sb.command("/attacks");
    cmd.pass_fd(2, w.try_clone().unwrap());
    assert!(matches!(
        cmd.output().await,
        Err(Error::Invalid {
            what: "passed descriptor number",
            ..
        })
    ));
    let mut cmd = sb.command("/attacks");
    cmd.pass_fd(9, w.try_clone().unwrap())
        .pass_fd(9, w2.try_clone().unwrap());
    assert!(matches!(cmd.output().await, Err(Error::Conflict(_))));
    let mut cmd = sb.command("/attacks");
    cmd.pass_fd(1 << 30, w.try_clone().unwrap());
    assert!(matches!(cmd.output().await, Err(Error::Invalid { .. })));
}
