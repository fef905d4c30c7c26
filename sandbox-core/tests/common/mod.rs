//! Helpers shared by the integration tests. Each test file uses a subset.
#![allow(dead_code)]

pub mod cgroups;
pub mod escape;
pub mod net;
pub mod rootfs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

/// The tests need root (CI runs as root). Fail loudly, never skip.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: run the test suite as root (see README.md)"
    );
}

/// An example binary, which `cargo test` builds next to the test binaries
/// (`target/<profile>/examples/NAME`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} missing: build the examples (cargo test does)",
        p.display()
    );
    p
}

/// Runs a host command to its end, asserts that it succeeded (its output in the message
/// otherwise), and returns its standard output.
pub fn stdout_of(cmd: &mut StdCommand) -> String {
    let out = cmd.output().unwrap();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A new temporary directory that anyone may enter (0755; a tempdir is 0700), so that a
/// sandbox whose root is nobody to the host's files can reach what it holds.
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Builds the C program `tests/<src>` with the host's gcc, statically (so that it runs in
/// any root), into a new temporary directory that anyone may enter (so that a sandbox whose
/// root is the host's tree can run it by its path). Returns the directory, which takes the
/// program with it when dropped, and the program's path.
pub fn compile_c(src: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = open_tempdir();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(src);
    let out = dir.path().join(src.file_stem().unwrap());
    let st = StdCommand::new("gcc")
        .args(["-O1", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc is missing: scripts/test.sh installs it");
    assert!(st.success(), "building {}", src.display());
    (dir, out)
}

/// Open file descriptors of this process.
pub fn open_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Pids of this process's children (of every thread), zombies included.
pub fn children() -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Children of process `pid` (its main thread and others).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// A field of `/proc/<pid>/status` (e.g. `Uid`, `NSpid`), whitespace-split.
pub fn status_field(pid: u32, field: &str) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .map(|l| l.split_whitespace().skip(1).map(String::from).collect())
}

/// The state letter of a process (`R`, `S`, `Z`, ...), or None if it is gone.
pub fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Whether the process behind a pidfd has ended (readable pidfd), waiting up to `limit`.
pub fn pidfd_ended(fd: &std::os::fd::OwnedFd, limit: Duration) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = limit.as_millis().min(u16::MAX as u128) as u16;
    matches!(nix::poll::poll(&mut fds, ms), Ok(n) if n > 0)
}

/// A pidfd for any process we can see.
pub fn pidfd_open(pid: u32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: plain integers; the returned fd (checked non-negative) is owned by nobody else.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    assert!(
        fd >= 0,
        "pidfd_open {pid}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: see above.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// Copies `programs` and the shared libraries they need (per `ldd`) into a new tree at
/// `root`, with empty `proc`, `dev`, `tmp`, `etc`: a minimal root filesystem built from the
/// host's own files, so the tests need nothing downloaded.
pub fn mini_rootfs(root: &Path, programs: &[&str]) {
    for d in ["proc", "dev", "tmp", "etc", "bin", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    for p in programs {
        let p = std::fs::canonicalize(p).unwrap();
        files.insert(p.clone());
        let out = StdCommand::new("ldd").arg(&p).output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            for word in line.split_whitespace() {
                if word.starts_with('/') {
                    files.insert(PathBuf::from(word));
                }
            }
        }
    }
    for f in &files {
        let dst = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(f, &dst).unwrap();
    }
    // Programs are reachable under /bin by their own name as well.
    for p in programs {
        let name = Path::new(p).file_name().unwrap();
        let real = std::fs::canonicalize(p).unwrap();
        let dst = root.join("bin").join(name);
        if !dst.exists() {
            std::fs::copy(&real, &dst).unwrap();
        }
    }
    // Loader path as the programs expect it (e.g. /lib64/ld-linux-x86-64.so.2).
    for f in files.clone() {
        if let Some(name) = f.file_name().and_then(|n| n.to_str()) {
            if name.starts_with("ld-linux") {
                for dir in ["lib64", "lib"] {
                    let d = root.join(dir);
                    std::fs::create_dir_all(&d).unwrap();
                    let _ = std::fs::copy(&f, d.join(name));
                }
            }
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    // The files every root gets generated: with them, a read-only tree is bound as it is
    // (without, it gets a layer of the sandbox's own to take them).
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(root.join("etc").join(f), "").unwrap();
    }
}

/// Re-runs the current test binary for one test in a fresh process (for tests that kill
/// their own process, need another uid, or need a private mount namespace). `wrap` is put
/// in front of the binary (e.g. `["setpriv", "--reuid", "65534", ...]`). The child sees
/// `SANDBOX_TEST_INNER=1`.
pub fn rerun(test: &str, wrap: &[&str]) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut argv: Vec<String> = wrap.iter().map(|s| s.to_string()).collect();
    argv.push(exe.to_string_lossy().into_owned());
    argv.extend(
        ["--exact", test, "--nocapture", "--test-threads", "1"]
            .iter()
            .map(|s| s.to_string()),
    );
    StdCommand::new(&argv[0])
        .args(&argv[1..])
        .env("SANDBOX_TEST_INNER", "1")
        .current_dir("/")
        .output()
        .unwrap()
}

/// Whether this is the re-run copy (see [`rerun`]).
pub fn inner() -> bool {
    std::env::var_os("SANDBOX_TEST_INNER").is_some()
}

/// Runs this test's body inside a private mount namespace (a re-run of the test binary
/// under `unshare -m --propagation private`), so bind mounts it makes never reach the host.
/// Returns true in the outer copy (which only checked the inner's result).
pub fn in_private_mount_namespace(test: &str) -> bool {
    rerun_wrapped(test, &["unshare", "-m", "--propagation", "private"])
}

/// Runs this test's body in a mount namespace whose every mount is *shared* (a re-run of
/// the test binary under `unshare -m --propagation shared`), so a mount made on a peer of
/// one of them (by a sandbox whose copy of the table was not made private) shows up in
/// the re-run's own table. The table is first cut off from the host's peer groups (an
/// `unshare -m --propagation private` around it): nothing reaches the host's mounts even
/// where they are shared. Returns true in the outer copy (which only checked the inner's
/// result).
pub fn in_shared_mount_namespace(test: &str) -> bool {
    rerun_wrapped(
        test,
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "unshare",
            "-m",
            "--propagation",
            "shared",
        ],
    )
}

/// Lines of a sandboxed program's standard output.
pub type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Spawns `/bin/sh -c script` in `sandbox` with stdin and stdout piped (stdin stays open, so
/// a script can end with `read x` to wait until the test drops it), and returns the child
/// and the lines of its output.
pub async fn shell(sandbox: &sandbox_core::Sandbox, script: &str) -> (sandbox_core::Child, Lines) {
    use tokio::io::AsyncBufReadExt;
    let mut child = sandbox
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(sandbox_core::Stdio::piped())
        .stdout(sandbox_core::Stdio::piped())
        .spawn()
        .await
        .unwrap();
    let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Runs `/bin/sh -c script` in `sandbox` to its end and returns its output, whatever its
/// status.
pub async fn shell_output(sandbox: &sandbox_core::Sandbox, script: &str) -> sandbox_core::Output {
    sandbox
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .await
        .unwrap()
}

/// Runs `/bin/sh -c script` in `sandbox` to its end, on the test's own standard streams, and
/// returns how it ended.
pub async fn shell_status(sandbox: &sandbox_core::Sandbox, script: &str) -> sandbox_core::Outcome {
    sandbox
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .status()
        .await
        .unwrap()
}

/// Runs `sleep 10` in `sandbox`, gives the running child to `look`, kills it, and returns
/// what `look` found.
pub async fn while_running<T>(
    sandbox: &sandbox_core::Sandbox,
    look: impl FnOnce(&sandbox_core::Child) -> T,
) -> T {
    let mut child = sandbox
        .command("/bin/sleep")
        .arg("10")
        .spawn()
        .await
        .unwrap();
    let found = look(&child);
    child.kill().await.unwrap();
    found
}

/// Output bytes as text (invalid UTF-8 replaced).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The host's mount table, as this process sees it.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// Builds a root filesystem from Debian's static busybox (package `busybox-static`, see
/// `scripts/test.sh`): `bin/busybox`, `bin/<applet>` symlinks to it (relative), and empty
/// `proc`, `dev`, `etc`, `tmp`. The tree's root is made 0755 (a tempdir is 0700).
pub fn busybox_rootfs(root: &Path, applets: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install busybox-static (scripts/test.sh does)"
    );
    std::fs::create_dir_all(root).unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["bin", "proc", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for a in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
}

/// Everything about a tree that a write could change, by path: type, mode, owner, size,
/// modification time, and the contents of files and the targets of links.
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, String>) {
        let m = std::fs::symlink_metadata(dir).unwrap();
        let rel = dir.strip_prefix(root).unwrap().to_path_buf();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link {:?}", std::fs::read_link(dir).unwrap())
        } else if ft.is_file() {
            let bytes = std::fs::read(dir).unwrap();
            let h = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
            let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
            format!("file {hex}")
        } else if ft.is_dir() {
            "dir".to_string()
        } else {
            format!("other rdev={}", m.rdev())
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} uid={} gid={} size={} mtime={}.{} ino={}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino()
            ),
        );
        if ft.is_dir() {
            for e in std::fs::read_dir(dir).unwrap() {
                walk(root, &e.unwrap().path(), out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A tar archive (as `docker export` writes one) of the tree at `root`: entries named
/// `bin/`, `bin/sh`, ..., with symlinks kept as symlinks.
pub fn tar_of_tree(root: &Path) -> Vec<u8> {
    fn walk(b: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap();
            b.append_path_with_name(&p, rel).unwrap();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(b, root, &p);
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    walk(&mut b, root, root);
    b.into_inner().unwrap()
}

/// `n` bytes from the kernel's random source, as hex.
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs this test's body inside a network namespace of its own (a re-run of the test
/// binary under `unshare -n`, with `lo` up), so the bridges and veths it makes never touch
/// the machine's network. Returns true in the outer copy (which only checked the inner's
/// result).
pub fn in_private_network_namespace(test: &str) -> bool {
    rerun_wrapped(test, &["unshare", "-n", "sh", "-c", UP_LO, "sh"])
}

/// Brings the new network namespace's `lo` up, then runs the test binary.
const UP_LO: &str = "ip link set lo up && exec \"$@\"";

/// [`in_private_network_namespace`], in a private mount namespace too (for tests that
/// bind namespace files).
pub fn in_private_network_and_mount_namespaces(test: &str) -> bool {
    rerun_wrapped(
        test,
        &[
            "unshare",
            "-n",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            UP_LO,
            "sh",
        ],
    )
}

fn rerun_wrapped(test: &str, wrap: &[&str]) -> bool {
    if inner() {
        return false;
    }
    let out = rerun(test, wrap);
    assert!(
        out.status.success(),
        "inner run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "inner run did not run the test: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    true
}

/// The names of this network namespace's links (from `/proc/self/net/dev`, which follows
/// the reader's network namespace; `/sys/class/net` follows sysfs's mounter).
pub fn links() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    let mut v: Vec<String> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    v.sort();
    v
}
