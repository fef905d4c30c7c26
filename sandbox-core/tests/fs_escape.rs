//! A sandbox with a root of its own cannot reach a file of the host outside that root: not
//! by its path, not by climbing with `..`, not through `/proc/<pid>/root` or `cwd`, not
//! through a symlink it plants, and a symlink planted in the tree on the host cannot make a
//! mount land outside the root.
mod common;
use sandbox_core::{Error, Mount, Output, Rootfs, Sandbox, Stage};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The tests compare the host's mount table before and after: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The host uid (and gid) of root inside a sandbox when the caller is root.
const SANDBOX_ROOT: u32 = 524288;

/// What a test of this file watches on the host: a directory outside every root holding
/// `canary` with random contents, and the host's mount table. The other tests wait while
/// one holds it.
struct Canary {
    _serial: tokio::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    secret: String,
    mounts: String,
}

impl Canary {
    async fn new() -> Canary {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let secret = format!("canary-{}", common::random_hex(16));
        std::fs::write(dir.path().join("canary"), &secret).unwrap();
        Canary {
            _serial: serial,
            dir,
            secret,
            mounts: common::mountinfo(),
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    /// The canary directory holds only the canary, as written, and the host's mount table
    /// is as it was (`after`: what ran, for the message).
    fn assert_untouched(&self, after: &str) {
        let names: BTreeSet<String> = std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["canary".to_string()]),
            "the host's canary directory changed"
        );
        assert_eq!(std::fs::read_to_string(self.file()).unwrap(), self.secret);
        assert_eq!(
            common::mountinfo(),
            self.mounts,
            "{after}: the host's mount table changed"
        );
    }

    /// Neither output holds the canary's contents.
    fn assert_not_in(&self, out: &Output) {
        for (name, b) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !String::from_utf8_lossy(b).contains(&self.secret),
                "the canary was read ({name}): {out:?}"
            );
        }
    }
}

/// A shell function `try PATH` that reads PATH and counts the attempts that failed.
const TRY: &str = r#"n=0; blocked=0
try() { n=$((n+1)); if cat "$1" 2>/dev/null; then echo "READ $1"; else blocked=$((blocked+1)); fi; }
"#;

/// Runs `script` (built on [`TRY`]) in `sandbox` (`name`: which, for the messages) and
/// checks what every such run must show: the canary in neither output, a clean exit, no
/// `READ` line. Returns its output.
async fn run_tries(canary: &Canary, sandbox: &Sandbox, script: &str, name: &str) -> Output {
    let out = common::shell_output(sandbox, script).await;
    canary.assert_not_in(&out);
    assert!(out.status.success(), "{name}: {out:?}");
    let stdout = common::text(&out.stdout);
    assert!(!stdout.contains("READ"), "{name}: {stdout}");
    out
}

/// The `tries=N blocked=B` line of a [`TRY`] script's output: (N, B).
fn tally(stdout: &str) -> (usize, usize) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tries="))
        .unwrap_or_else(|| panic!("the script did not finish: {stdout}"));
    let (n, b) = line.split_once(" blocked=").unwrap();
    (n.parse().unwrap(), b.parse().unwrap())
}

#[tokio::test]
async fn host_files_outside_the_root_cannot_be_read() {
    common::require_root();
    let canary = Canary::new().await;
    let p = canary.file().display().to_string();
    let work = tempfile::tempdir().unwrap();
    let bb = work.path().join("bb");
    common::busybox_rootfs(&bb, &["sh", "cat"]);
    let script = format!(
        r#"{TRY}
try '{p}'
try '/../../../..{p}'
cd / && try '../../../../..{p}'
try '/proc/1/root{p}'
try '/proc/1/root/../../..{p}'
try '/proc/self/root{p}'
try '/proc/self/root/../../..{p}'
try '/proc/self/cwd{p}'
try '/proc/self/cwd/../../..{p}'
try '/proc/1/cwd{p}'
try '/proc/1/cwd/../../..{p}'
try '/oldroot{p}'
try '/proc/1/root/oldroot{p}'
for pid in /proc/[0-9]*; do try "$pid/root{p}"; try "$pid/cwd{p}"; done
echo "tries=$n blocked=$blocked"
"#
    );
    for (name, root) in [
        ("host_readonly", Rootfs::host_readonly()),
        ("dir", Rootfs::dir(&bb)),
    ] {
        let out = run_tries(&canary, &Sandbox::new().rootfs(root), &script, name).await;
        let stdout = common::text(&out.stdout);
        let (n, blocked) = tally(&stdout);
        assert!(n >= 17, "{name}: only {n} attempts ran: {stdout}");
        assert_eq!(blocked, n, "{name}: {stdout}");
    }
    canary.assert_untouched("the scripts");
}

#[tokio::test]
async fn symlinks_planted_inside_resolve_inside() {
    common::require_root();
    let canary = Canary::new().await;
    let d = canary.dir().display().to_string();
    let work = tempfile::tempdir().unwrap();
    let bb = work.path().join("bb");
    common::busybox_rootfs(&bb, &["sh", "cat", "ln", "mkdir"]);
    // Links made by the sandbox itself (absolute, climbing), and one asked of the library.
    let script = format!(
        r#"{TRY}
ln -s '{d}' /evil && echo linked
ln -s '../../../../../../../..{d}' /evil2 && echo linked
try /evil/canary
try /evil2/canary
try /evil3/canary
mkdir -p '{d}' && echo pwned > /evil/pwned && echo pwned > /evil2/pwned2 && echo pwned > /evil3/pwned3 && echo wrote
cat /evil/pwned /evil2/pwned2 '{d}/pwned3'
echo "tries=$n blocked=$blocked"
"#
    );
    let sandbox = Sandbox::new()
        .rootfs(Rootfs::overlay([&bb]))
        .mount(Mount::symlink("/evil3", canary.dir()));
    let out = run_tries(&canary, &sandbox, &script, "overlay").await;
    let stdout = common::text(&out.stdout);
    assert_eq!(tally(&stdout), (3, 3), "{stdout}");
    assert!(
        stdout.starts_with("linked\nlinked\nwrote\npwned\npwned\npwned\n"),
        "{out:?}"
    );
    canary.assert_untouched("the script");
}

#[tokio::test]
async fn mounts_through_a_planted_symlink_stay_inside_the_root() {
    common::require_root();
    let canary = Canary::new().await;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    common::busybox_rootfs(&tree, &["sh", "cat", "ls"]);
    // The tree points at the host's canary directory: absolutely, and by climbing.
    std::os::unix::fs::symlink(canary.dir(), tree.join("evil")).unwrap();
    let climb = Path::new("../../../../../../../..").join(canary.dir().strip_prefix("/").unwrap());
    std::os::unix::fs::symlink(&climb, tree.join("evil_rel")).unwrap();
    // A writable tree the sandbox's root may create directories in.
    let writable = work.path().join("writable");
    common::busybox_rootfs(&writable, &["sh", "cat", "ls"]);
    std::os::unix::fs::symlink(canary.dir(), writable.join("evil")).unwrap();
    std::os::unix::fs::symlink(&climb, writable.join("evil_rel")).unwrap();
    std::os::unix::fs::chown(&writable, Some(SANDBOX_ROOT), Some(SANDBOX_ROOT)).unwrap();
    std::os::unix::fs::chown(writable.join("tmp"), Some(SANDBOX_ROOT), Some(SANDBOX_ROOT)).unwrap();
    // A tree that has the canary directory's path inside it too, with the mount points
    // ready: there the mounts must succeed, and land in the tree.
    let mirrored = work.path().join("mirrored");
    common::busybox_rootfs(&mirrored, &["sh", "cat", "ls"]);
    std::os::unix::fs::symlink(canary.dir(), mirrored.join("evil")).unwrap();
    std::os::unix::fs::symlink(&climb, mirrored.join("evil_rel")).unwrap();
    let inside = mirrored.join(canary.dir().strip_prefix("/").unwrap());
    for d in ["sub", "t"] {
        std::fs::create_dir_all(inside.join(d)).unwrap();
    }
    std::fs::write(inside.join("pwned"), "").unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("marker"), "m\n").unwrap();

    // (name, root, whether the mounts must succeed)
    let roots = [
        ("overlay", Rootfs::overlay([&tree]), false),
        ("dir", Rootfs::dir(&tree), false),
        ("dir-writable", Rootfs::dir(&writable).writable(), false),
        ("overlay-mirrored", Rootfs::overlay([&mirrored]), true),
        ("dir-mirrored", Rootfs::dir(&mirrored), true),
    ];
    let mirrored_before = common::snapshot(&mirrored);
    let mut outcomes = Vec::new();
    for (name, root, must_place) in &roots {
        for link in ["/evil", "/evil_rel"] {
            let cases = [
                (
                    Mount::file(format!("{link}/pwned"), "x\n"),
                    format!("cat {link}/pwned"),
                    "x\n",
                ),
                (
                    Mount::bind(&src, format!("{link}/sub")),
                    format!("cat {link}/sub/marker"),
                    "m\n",
                ),
                (
                    Mount::tmpfs(format!("{link}/t")),
                    format!("echo t > {link}/t/f && cat {link}/t/f"),
                    "t\n",
                ),
            ];
            for (m, check, want) in cases {
                let script = format!("{check}; cat {link}/canary 2>/dev/null || echo blocked");
                let r = Sandbox::new()
                    .rootfs(root.clone())
                    .mount(m.clone())
                    .command("/bin/sh")
                    .arg("-c")
                    .arg(&script)
                    .output()
                    .await;
                match r {
                    Ok(out) => {
                        canary.assert_not_in(&out);
                        assert!(out.status.success(), "{name} {m:?}: {out:?}");
                        assert_eq!(
                            String::from_utf8_lossy(&out.stdout),
                            format!("{want}blocked\n"),
                            "{name} {m:?}: the mount is not inside the root: {out:?}"
                        );
                        outcomes.push(format!("{name} {link} {:?}: placed inside", m.target()));
                    }
                    Err(
                        e @ Error::Setup {
                            stage: Stage::Mount,
                            ..
                        },
                    ) if !must_place => {
                        outcomes.push(format!("{name} {link} {:?}: {e}", m.target()));
                    }
                    Err(e) => panic!("{name} {m:?}: unexpected error {e:?}"),
                }
                canary.assert_untouched(&format!("{name} {m:?}"));
            }
        }
    }
    eprintln!("{}", outcomes.join("\n"));
    // The mirrored tree is read-only to its sandboxes (dir) or copied up (overlay).
    assert_eq!(common::snapshot(&mirrored), mirrored_before);
}

/// The masks and read-only paths of `/proc` hold when the sandbox shares the host's PID
/// namespace (so its `/proc` is the host's, bound in), with root's user namespace too.
/// Checked from the host, without writing anything: through `/proc/<pid>/root` the masked
/// files are `/dev/null` (character device 1,3) and the masked directories empty, and the
/// sandbox's mount table (`/proc/<pid>/mountinfo`) has the read-only paths read-only.
#[tokio::test]
async fn proc_is_masked_when_the_pid_namespace_is_shared() {
    common::require_root();
    use sandbox_core::Namespace;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // What this kernel has (this machine's has no /proc/kcore or /proc/sysrq-trigger).
    let present = |paths: &[&'static str]| -> Vec<&'static str> {
        paths
            .iter()
            .copied()
            .filter(|f| Path::new(f).exists())
            .collect()
    };
    let masked = present(&["/proc/kcore", "/proc/keys", "/proc/timer_list"]);
    let masked_dirs = present(&["/proc/acpi", "/proc/scsi"]);
    let readonly = present(&["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"]);
    assert!(!masked.is_empty() && !readonly.is_empty());
    for share_user in [false, true] {
        let mut sandbox = Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .share(Namespace::Pid);
        if share_user {
            sandbox = sandbox.share(Namespace::User);
        }
        let (mut child, mut lines) = common::shell(&sandbox, "echo ready; read x || true").await;
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "ready");
        let pid = child.id().unwrap();
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        for f in &masked {
            let m = std::fs::metadata(root.join(&f[1..])).unwrap();
            assert!(
                m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3),
                "{f} is not /dev/null (user shared: {share_user})"
            );
        }
        for d in &masked_dirs {
            let n = std::fs::read_dir(root.join(&d[1..])).unwrap().count();
            assert_eq!(n, 0, "{d} is not empty (user shared: {share_user})");
        }
        let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        for p in &readonly {
            // The last mount on the path is what the sandbox sees.
            let opts = mountinfo
                .lines()
                .rfind(|l| l.split(' ').nth(4) == Some(*p))
                .and_then(|l| l.split(' ').nth(5))
                .unwrap_or_else(|| panic!("{p} is not a mount point: {mountinfo}"));
            assert!(
                opts.split(',').any(|o| o == "ro"),
                "{p}: {opts} (user shared: {share_user})"
            );
        }
        // It is the host's /proc: the host's PID 1 is there.
        assert!(root.join("proc/1/status").exists());
        drop(child.stdin.take());
        assert!(child.wait().await.unwrap().success());
    }
}
