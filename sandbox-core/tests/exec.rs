//! `Child::exec` runs a program inside a running sandbox: in every one of its namespaces
//! (its hostname, its PID namespace), held to the sandbox's own seccomp filter,
//! capabilities and rlimits whatever the command says; a failing exec reports like a
//! failing spawn, and exec into an ended sandbox is an error. An exec'd process is reaped
//! as soon as it ends, so the sandbox can end before anyone waits for it, and its handle
//! then has no pid left to reuse.
mod common;
use sandbox_core::{Command, Sandbox, Stdio};

#[tokio::test]
async fn exec_runs_inside_the_running_sandbox() {
    common::require_root();
    let mut sb = Sandbox::new()
        .hostname("exec-target")
        .command("/bin/sleep")
        .arg("1000")
        .spawn()
        .await
        .unwrap();
    let target = sb.namespace_ids().unwrap();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("hostname; cd /proc && echo [0-9]*; echo $$; read x || true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut ex = sb.exec(&cmd).await.unwrap();
    // From the host: the exec'd process is in every one of the sandbox's namespaces.
    assert_eq!(ex.namespace_ids().unwrap(), target);
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(ex.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "exec-target");
    let pids: Vec<u32> = lines
        .next_line()
        .await
        .unwrap()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let me: u32 = lines.next_line().await.unwrap().unwrap().parse().unwrap();
    // init, sleep, and this shell: the sandbox's own PID namespace.
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&1) && pids.contains(&2) && pids.contains(&me));
    drop(ex.stdin.take());
    assert!(ex.wait().await.unwrap().success());
    // A failing exec reports like a failing spawn.
    let e = sb.exec(&Command::new("/no/such")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec /no/such: No such file or directory (ENOENT)"
    );
    sb.kill().await.unwrap();
    // Exec into an ended sandbox is a typed error.
    assert!(sb.exec(&Command::new("/bin/true")).await.is_err());
}

/// A sandbox ends even while a process exec'd into it is still held, unwaited: the
/// exec'd process (whose parent is the caller, outside the sandbox's PID namespace) is
/// reaped as soon as it dies, so the namespace's init can finish exiting.
#[tokio::test]
async fn a_sandbox_ends_before_its_execd_process_is_waited_for() {
    common::require_root();
    let (mut child, mut lines) = common::shell(&Sandbox::new(), "echo up; read x || true").await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "up");
    let mut held = child
        .exec(Command::new("/bin/sleep").arg("1000"))
        .await
        .unwrap();
    let pid = held.id().unwrap();
    child.start_kill().unwrap();
    let o = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the sandbox ends while the exec'd handle is held")
        .unwrap();
    assert_eq!(o.ending, sandbox_core::Ending::Signaled(libc::SIGKILL));
    // Reaped already (no zombie left), and its handle still tells how it ended.
    assert!(common::state(pid).is_none(), "{:?}", common::state(pid));
    let e = held.wait().await.unwrap();
    assert_eq!(e.ending, sandbox_core::Ending::Signaled(libc::SIGKILL));
}

/// An exec'd process reaped early is gone for its handle too: no pid to reuse.
#[tokio::test]
async fn an_execd_process_that_ended_has_no_pid_left() {
    common::require_root();
    let (mut child, mut lines) = common::shell(&Sandbox::new(), "echo up; read x || true").await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "up");
    let done = child.exec(&Command::new("/bin/true")).await.unwrap();
    let pid = done.id().unwrap();
    // (Polled without blocking the runtime, on which the early reaper runs.)
    for _ in 0..500 {
        if common::state(pid).is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(common::state(pid).is_none(), "not reaped");
    assert_eq!(
        done.id(),
        None,
        "the pid of a reaped process is not handed out"
    );
    assert!(matches!(
        done.exec(&Command::new("/bin/true")).await,
        Err(sandbox_core::Error::Reaped)
    ));
    assert!(matches!(
        done.namespace_ids(),
        Err(sandbox_core::Error::Reaped)
    ));
    drop(child.stdin.take());
    child.wait().await.unwrap();
}

/// A process exec'd into a sandbox is held as the sandbox's first one: its seccomp filter,
/// capabilities and rlimits, whatever the command's own description says.
#[tokio::test]
async fn an_execd_process_gets_the_sandboxs_hardening() {
    common::require_root();
    let sandbox = Sandbox::new()
        .capability(sandbox_core::Capability::NetRaw)
        .limits(sandbox_core::Limits::new().open_files(77));
    let (mut child, mut lines) = common::shell(&sandbox, "echo up; read x || true").await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "up");
    let mut cmd = Sandbox::new()
        .seccomp(sandbox_core::Seccomp::off())
        .command("/bin/sh");
    cmd.arg("-c")
        .arg("grep -E '^(CapEff|Seccomp):' /proc/self/status; ulimit -n")
        .stdout(Stdio::piped());
    let out = child
        .exec(&cmd)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CapEff:\t0000000000002000"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(text.ends_with("77\n"), "{text}");
    // The command keeps its own description.
    assert!(!cmd.get_sandbox().get_seccomp().is_enabled());
    drop(child.stdin.take());
    child.wait().await.unwrap();
}
