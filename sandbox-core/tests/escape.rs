//! Escape attempts (issue 6): each case runs one attack (`tests/escape/attacks.c`, built
//! with the host's gcc) inside a sandbox with every default protection — only its root is
//! `Rootfs::host_readonly()` instead of the host's tree, so that there is an "outside" to
//! reach — and asserts that it failed, with the error that says which layer stopped it,
//! and, where the host can see it, that nothing changed on the host.
mod common;

use sandbox_core::{Capability, Error, Landlock, Mount, Rootfs, Sandbox, Seccomp, Stdio};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One test at a time: some compare the host's processes and mounts before and after.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The attack program, built once per test binary.
fn attacks() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BUILT
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("attacks");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/escape/attacks.c");
            let st = std::process::Command::new("gcc")
                .args(["-O1", "-static", "-o"])
                .arg(&out)
                .arg(&src)
                .status()
                .expect("gcc is missing: scripts/test.sh installs it");
            assert!(st.success(), "building {}", src.display());
            (dir, out)
        })
        .1
}

/// A default sandbox (but for its root), with the attack program at `/attacks`.
fn sandbox() -> Sandbox {
    Sandbox::new()
        .rootfs(Rootfs::host_readonly())
        .mount(Mount::bind(attacks(), "/attacks").readonly())
}

/// Runs `attacks ARGS...` in `sandbox`; returns its exit code and its output.
async fn run_in(sandbox: &Sandbox, args: &[&str]) -> (i32, String) {
    let out = sandbox
        .command("/attacks")
        .args(args)
        .output()
        .await
        .unwrap();
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
async fn blocked(args: &[&str], errnos: &[&str]) {
    blocked_in(&sandbox(), args, errnos).await
}

async fn blocked_in(sandbox: &Sandbox, args: &[&str], errnos: &[&str]) {
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
fn escapes_without_sandbox(wrap: &[&str], args: &[&str]) {
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

/// A private mount namespace for control runs that mount or unmount.
const PRIVATE_MOUNTS: &[&str] = &["unshare", "-m", "--propagation", "private"];

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

/// A world-readable file on the host, outside the sandbox's root.
fn canary() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = dir.path().join("canary");
    std::fs::write(&f, "secret").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, f)
}

#[tokio::test]
async fn a_file_outside_the_root_cannot_be_read() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let (_dir, canary) = canary();
    let path = canary.to_str().unwrap();
    blocked(&["open", path], &["ENOENT"]).await;
    escapes_without_sandbox(&[], &["open", path]);
    blocked(&["dotdot", path], &["ENOENT"]).await;
    escapes_without_sandbox(&[], &["dotdot", path]);
    // The init is not dumpable: its root link is closed to the program (EACCES).
    blocked(&["proc-root", path], &["ENOENT", "EACCES"]).await;
    // (The control goes through this test process's root: the host's PID 1 may be
    // closed even to root.)
    let me = std::process::id().to_string();
    escapes_without_sandbox(&[], &["proc-root", path, &me]);
    blocked(&["proc-self-root", path], &["ENOENT"]).await;
    escapes_without_sandbox(&[], &["proc-self-root", path]);
    // By handle ("shocker"): a handle the host computed for the canary.
    let (ty, bytes) = handle_of(&canary);
    let ty = ty.to_string();
    blocked(&["open-by-handle", &ty, &bytes], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["open-by-handle", &ty, &bytes]);
    blocked(&["name-to-handle"], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["name-to-handle"]);
    // The host's own secrets, under the host's /etc that the root shows read-only.
    blocked(&["open", "/etc/shadow"], &["EACCES"]).await;
    escapes_without_sandbox(&[], &["open", "/etc/shadow"]);
}

/// `name_to_handle_at` on the host: (handle type, handle bytes in hex).
fn handle_of(path: &Path) -> (i32, String) {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        ty: i32,
        data: [u8; 128],
    }
    let mut h = Handle {
        bytes: 128,
        ty: 0,
        data: [0; 128],
    };
    let mut mount_id = 0;
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid path, a handle buffer of the size it declares, an int for the mount id.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let hex: String = h.data[..h.bytes as usize]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (h.ty, hex)
}

#[tokio::test]
async fn host_processes_can_be_neither_seen_nor_signalled_nor_traced() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut sleeper = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    blocked(&["kill", &pid], &["ESRCH"]).await;
    blocked(&["kill", &std::process::id().to_string()], &["ESRCH"]).await;
    // (The control probes with signal 0: the sleeper must live on.)
    escapes_without_sandbox(&[], &["kill", &pid, "0"]);
    blocked(&["ptrace-attach", &pid], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["ptrace-attach", &pid]);
    // Not even a process of the sandbox's own can be traced.
    blocked(&["ptrace-child"], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["ptrace-child"]);
    let (_, text) = run_in(&sandbox(), &["count-processes"]).await;
    // The init and the attack program.
    assert_eq!(text.trim(), "visible 2", "{text}");
    let out = std::process::Command::new(attacks())
        .arg("count-processes")
        .output()
        .unwrap();
    let n: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("visible ")
        .parse()
        .unwrap();
    assert!(n > 10, "the host shows its processes: {n}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the host's sleep died"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[tokio::test]
async fn mounts_and_namespaces_cannot_be_changed() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let before = common::mountinfo();
    // (Controls that mount run in a private mount namespace of their own.)
    for (attack, wrap) in [
        ("mount", PRIVATE_MOUNTS),
        ("remount-root-rw", PRIVATE_MOUNTS),
        ("unshare-user", &[][..]),
        ("unshare-mount", &[]),
        ("clone-newuser", &[]),
        ("setns", &[]),
        ("chroot", &[]),
        ("cgroup-mount", PRIVATE_MOUNTS),
    ] {
        blocked(&[attack], &["EPERM"]).await;
        escapes_without_sandbox(wrap, &[attack]);
    }
    // umount of a mask (the control: /proc, in its private namespace).
    blocked(&["umount", "/proc/kcore"], &["EPERM"]).await;
    escapes_without_sandbox(PRIVATE_MOUNTS, &["umount", "/proc"]);
    // pivot_root onto the sandbox's /tmp (a tmpfs; the control mounts one first).
    blocked(&["pivot-root", "/tmp"], &["EPERM"]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let script = format!("mount -t tmpfs none {d} && exec \"$0\" \"$@\"");
    let mut wrap: Vec<&str> = PRIVATE_MOUNTS.to_vec();
    wrap.extend(["sh", "-c", &script]);
    escapes_without_sandbox(&wrap, &["pivot-root", d]);
    // clone3's flags are out of the filter's sight: it is "not there", and C libraries
    // fall back to clone, whose flags are checked.
    blocked(&["clone3"], &["ENOSYS"]).await;
    escapes_without_sandbox(&[], &["clone3"]);
    assert_eq!(common::mountinfo(), before, "the host's mounts changed");
}

#[tokio::test]
async fn no_device_node_can_be_made() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    blocked(&["mknod"], &["EPERM"]).await;
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("disk");
    escapes_without_sandbox(&[], &["mknod", node.to_str().unwrap()]);
}

#[tokio::test]
async fn proc_sys_and_sys_cannot_be_written() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let host = hostname();
    let agent = "/sys/fs/cgroup/memory/release_agent";
    let agent_before = std::fs::read_to_string(agent).ok();
    // Owned by the host's root (EACCES) and read-only besides (EROFS). The control writes
    // in a UTS namespace of its own.
    blocked(
        &["write", "/proc/sys/kernel/hostname", "escaped"],
        &["EACCES", "EROFS"],
    )
    .await;
    escapes_without_sandbox(
        &["unshare", "-u"],
        &["write", "/proc/sys/kernel/hostname", "escaped"],
    );
    // core_pattern runs a program as the host's root on a crash (a classic escape). The
    // attacks write back what is there, so the control run changes nothing.
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let pattern_line = pattern.trim_end().to_string();
    blocked(
        &["write", "/proc/sys/kernel/core_pattern", &pattern_line],
        &["EACCES", "EROFS"],
    )
    .await;
    escapes_without_sandbox(
        &[],
        &["write", "/proc/sys/kernel/core_pattern", &pattern_line],
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        pattern
    );
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    let thp_before = std::fs::read_to_string(thp).unwrap();
    let thp_now = thp_before
        .split(['[', ']'])
        .nth(1)
        .expect("the current setting in brackets")
        .to_string();
    blocked(&["write", thp, &thp_now], &["EACCES", "EROFS"]).await;
    escapes_without_sandbox(&[], &["write", thp, &thp_now]);
    assert_eq!(std::fs::read_to_string(thp).unwrap(), thp_before);
    // The cgroup release_agent (CVE-2022-0492): no cgroup tree is mounted in the
    // sandbox's /sys, and none can be (cgroup-mount above).
    let agent_now = agent_before.clone().unwrap_or_default();
    let agent_now = agent_now.trim_end();
    blocked(&["write", agent, agent_now], &["ENOENT", "EROFS"]).await;
    escapes_without_sandbox(&[], &["write", agent, agent_now]);
    assert_eq!(hostname(), host);
    assert_eq!(std::fs::read_to_string(agent).ok(), agent_before);
}

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

#[tokio::test]
async fn the_clock_and_the_hostname_stay_as_they_are() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let host = hostname();
    // settimeofday(NULL, NULL): the right to set the clock, checked, nothing changed.
    blocked(&["settimeofday"], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["settimeofday"]);
    // (This one sets the clock to the time it reads; no control run: it would set the
    // host's clock.)
    blocked(&["clock-settime"], &["EPERM"]).await;
    blocked(&["sethostname", "escaped"], &["EPERM"]).await;
    escapes_without_sandbox(&["unshare", "-u"], &["sethostname", "escaped"]);
    assert_eq!(hostname(), host);
    let out = sandbox()
        .hostname("kept")
        .command("/bin/hostname")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"kept\n");
}

/// `/proc/<pid>/status` of a sandbox's program, read from the host while it runs.
async fn program_status_from_host(sandbox: &Sandbox) -> String {
    let mut child = sandbox
        .command("/bin/sleep")
        .arg("100")
        .spawn()
        .await
        .unwrap();
    let init = child.id().unwrap();
    assert!(common::eventually(
        std::time::Duration::from_secs(5),
        || !common::children_of(init).is_empty()
    ));
    let program = common::children_of(init)[0];
    let status = std::fs::read_to_string(format!("/proc/{program}/status")).unwrap();
    child.kill().await.unwrap();
    status
}

/// The `Name:\tvalue` line of a status text.
fn status_line<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Every capability set in a `/proc/<pid>/status` text is `mask` (16 hex digits).
fn assert_capability_sets(status: &str, mask: &str) {
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status_line(status, set),
            format!("{set}:\t{mask}"),
            "{status}"
        );
    }
}

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

/// Nothing listening in the host's network namespace is reachable from a `loopback`
/// sandbox: neither a TCP listener on 127.0.0.1 nor an abstract unix socket. (Run in a
/// network namespace this test makes, standing in for the host's.)
#[tokio::test]
async fn the_hosts_loopback_services_are_out_of_reach() {
    common::require_root();
    if common::in_private_network_namespace("the_hosts_loopback_services_are_out_of_reach") {
        return;
    }
    let _serial = SERIAL.lock().await;
    // This namespace's own lo is down: bring it up, as a host's is.
    let st = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let name = format!("sandbox-escape-{}", common::random_hex(8));
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let unix = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let lo = sandbox().network(sandbox_core::Network::loopback());
    blocked_in(&lo, &["tcp-connect", &port], &["ECONNREFUSED"]).await;
    escapes_without_sandbox(&[], &["tcp-connect", &port]);
    blocked_in(&lo, &["abstract-connect", &name], &["ECONNREFUSED"]).await;
    escapes_without_sandbox(&[], &["abstract-connect", &name]);
    drop((tcp, unix));
}
