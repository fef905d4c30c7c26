//! Every kind of root filesystem keeps its promises: the host's mount table never changes
//! (nor that of a caller whose mounts are all shared, where a leak would propagate),
//! `host_readonly` has exactly the promised layout, a busybox tree runs as a root, read-only
//! binds refuse writes and a sized tmpfs fills up, overlay lower layers are never written,
//! `/dev` holds only the listed nodes and the masked `/proc` paths are masked, and bad mount
//! descriptions are refused before anything exists.
mod common;
use sandbox_core::{Error, Mount, Output, Rootfs, Sandbox};
use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Several tests compare the host's mount table, this process's children and its open fds
/// before and after: the tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The host uid (and gid) of root inside a sandbox when the caller is root.
const SANDBOX_ROOT: u32 = 524288;

async fn run(sandbox: &Sandbox, script: &str) -> Output {
    sandbox
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(String::from).collect()
}

/// A kind of root filesystem for the mount-table tests, and where its sandboxes mount an
/// extra tmpfs and `proc` (`None`: no extra mounts, so a `host` root's fresh `proc` goes
/// straight onto `/proc`).
#[derive(Clone)]
struct Kind {
    name: &'static str,
    rootfs: Rootfs,
    extra: Option<(&'static str, &'static str)>,
}

/// Every kind of root, over a busybox tree (and its tarball) made in `work`.
fn every_kind(work: &Path) -> Vec<Kind> {
    let bb = work.join("bb");
    common::busybox_rootfs(&bb, &["sh", "grep", "cat", "test"]);
    // A read-only directory root cannot take new mount points: give it them.
    for d in ["scratch", "proc2"] {
        std::fs::create_dir(bb.join(d)).unwrap();
    }
    let tarball = work.join("bb.tar");
    std::fs::write(&tarball, common::tar_of_tree(&bb)).unwrap();
    let cache = work.join("cache");
    // With the host's own tree nothing is created: the targets must exist on the host.
    for d in ["/mnt", "/srv"] {
        assert!(Path::new(d).is_dir(), "{d} is missing on the host");
    }
    let own = Some(("/scratch", "/proc2"));
    vec![
        Kind {
            name: "host",
            rootfs: Rootfs::host(),
            extra: Some(("/mnt", "/srv")),
        },
        Kind {
            name: "host_readonly",
            rootfs: Rootfs::host_readonly(),
            extra: own,
        },
        Kind {
            name: "dir",
            rootfs: Rootfs::dir(&bb),
            extra: own,
        },
        Kind {
            name: "overlay",
            rootfs: Rootfs::overlay([&bb]),
            extra: own,
        },
        Kind {
            name: "image",
            rootfs: Rootfs::image(&tarball).cache_dir(&cache),
            extra: own,
        },
    ]
}

/// Runs `n` sandboxes, four at a time, cycling through `kinds` (and, when `host_user`,
/// through the sandbox's own user namespace and the host's, kind by kind). Each checks
/// that its mounts are there and usable. Returns each one's label and its output or
/// spawn error, without judging them.
async fn run_kinds(
    kinds: &[Kind],
    n: usize,
    host_user: bool,
) -> Vec<(String, sandbox_core::Result<Output>)> {
    let mut results = Vec::new();
    let runs: Vec<usize> = (0..n).collect();
    for batch in runs.chunks(4) {
        let jobs = batch.iter().map(|&i| {
            let kind = kinds[i % kinds.len()].clone();
            let shared = host_user && (i / kinds.len()) % 2 == 1;
            async move {
                let mut sandbox = Sandbox::new().rootfs(kind.rootfs);
                let label = if shared {
                    // The host's root, its mounts as privileged as the caller's: nothing
                    // but the child's own `make / private` keeps them from propagating.
                    sandbox = sandbox.share(sandbox_core::Namespace::User);
                    format!("{}+host-user", kind.name)
                } else {
                    kind.name.to_string()
                };
                let script = match kind.extra {
                    Some((tmp, proc)) => {
                        sandbox = sandbox
                            .mount(Mount::tmpfs(tmp).size(1 << 20))
                            .mount(Mount::proc(proc));
                        format!(
                            "grep -q ' {tmp} .* - tmpfs ' /proc/self/mountinfo && \
                             grep -q ' {proc} .* - proc ' /proc/self/mountinfo && \
                             echo x > {tmp}/f && test -r {proc}/self/stat && echo ok-{label}"
                        )
                    }
                    None => format!(
                        "grep -q ' /proc .* - proc ' /proc/self/mountinfo && \
                         test -r /proc/self/stat && echo ok-{label}"
                    ),
                };
                let out = sandbox
                    .command("/bin/sh")
                    .arg("-c")
                    .arg(&script)
                    .output()
                    .await;
                (label, out)
            }
        });
        results.extend(futures::future::join_all(jobs).await);
    }
    results
}

/// Every sandbox ran and printed its line; `per_label` of each label.
fn assert_all_ran(results: Vec<(String, sandbox_core::Result<Output>)>, per_label: usize) {
    let mut counts = std::collections::BTreeMap::new();
    for (label, out) in results {
        let out = out.unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(out.status.success(), "{label}: {out:?}");
        assert_eq!(
            text(&out.stdout),
            format!("ok-{label}\n"),
            "{label}: {out:?}"
        );
        *counts.entry(label).or_insert(0) += 1;
    }
    assert!(counts.values().all(|&n| n == per_label), "{counts:?}");
}

/// The lines of mount table `after` that are not in `before` (`+`) and the other way
/// round (`-`).
fn mount_diff(before: &str, after: &str) -> String {
    let b = lines(before);
    let a = lines(after);
    let mut out = String::new();
    for l in b.difference(&a) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in a.difference(&b) {
        out.push_str(&format!("+ {l}\n"));
    }
    out
}

/// This process's `/proc/<pid>` directory, opened now: its mount table stays readable
/// through it even after something mounted over `/proc`.
fn proc_self_dir() -> std::fs::File {
    std::fs::File::open("/proc/self").unwrap()
}

/// The mount table of the process whose `/proc/<pid>` directory `dir` is.
fn mountinfo_in(dir: &std::fs::File) -> String {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: a valid directory fd and a NUL-terminated name; the fd returned (checked
    // non-negative) is owned by nobody else.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"mountinfo".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    assert!(fd >= 0, "mountinfo: {}", std::io::Error::last_os_error());
    // SAFETY: see above.
    std::io::read_to_string(unsafe { std::fs::File::from_raw_fd(fd) }).unwrap()
}

/// This mount namespace's `/proc` is still the one of this process's PID namespace: `ps`
/// works and sees this process.
fn assert_ps_sees_this_process() {
    let ps = std::process::Command::new("ps")
        .args(["-e", "-o", "pid="])
        .output()
        .unwrap();
    assert!(ps.status.success(), "ps -e failed: {ps:?}");
    let me = std::process::id().to_string();
    assert!(
        text(&ps.stdout).lines().any(|l| l.trim() == me),
        "ps -e does not list this process ({me}): {}",
        text(&ps.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_mount_table_is_unchanged_after_100_sandboxes_of_every_kind() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let work = tempfile::tempdir().unwrap();
    let kinds = every_kind(work.path());
    let before = common::mountinfo();
    let results = run_kinds(&kinds, 100, false).await;
    assert_eq!(results.len(), 100);
    assert_all_ran(results, 20);
    let after = common::mountinfo();
    assert!(
        after == before,
        "the host's mount table changed:\n{}",
        mount_diff(&before, &after)
    );
    // The host's /proc is still the host's.
    assert_ps_sees_this_process();
}

/// The same, where it would notice a leak: the host's own mounts may be private (then
/// nothing a sandbox mounts could come back whatever the child does), and a sandbox with
/// a user namespace of its own gets its copies of shared mounts as slaves. So this runs in
/// a mount namespace whose every mount is shared, with half of the sandboxes in the
/// host's user namespace, and a `host` root without extra mounts, whose fresh `proc` goes
/// straight onto `/proc`: only the child's `make / private` keeps those mounts from
/// propagating into this namespace's table (and over its `/proc`).
#[tokio::test(flavor = "multi_thread")]
async fn shared_mount_table_is_unchanged_after_sandboxes_of_every_kind_and_user() {
    common::require_root();
    if common::in_shared_mount_namespace(
        "shared_mount_table_is_unchanged_after_sandboxes_of_every_kind_and_user",
    ) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let work = tempfile::tempdir().unwrap();
    let mut kinds = every_kind(work.path());
    kinds.push(Kind {
        name: "host-bare",
        rootfs: Rootfs::host(),
        extra: None,
    });
    // Read through this process's /proc directory, not the path /proc: a sandbox's proc
    // mounted over it would make the path read that sandbox's (gone) processes.
    let me = proc_self_dir();
    let before = mountinfo_in(&me);
    // The premise: a mount made on a peer of any of these would show up here.
    for l in before.lines() {
        assert!(l.contains(" shared:"), "not a shared mount: {l}");
    }
    let results = run_kinds(&kinds, 120, true).await;
    assert_eq!(results.len(), 120);
    let after = mountinfo_in(&me);
    assert!(
        after == before,
        "mounts of sandboxes propagated into the caller's mount namespace:\n{}",
        mount_diff(&before, &after)
    );
    assert_ps_sees_this_process();
    // 6 kinds, each in its own user namespace and in the host's: 12 labels.
    assert_all_ran(results, 10);
}

#[tokio::test]
async fn host_readonly_has_the_promised_layout() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let mut want: BTreeSet<String> = [
        "usr", "etc", "dev", "home", "proc", "root", "run", "sys", "tmp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        if std::fs::symlink_metadata(Path::new("/").join(d)).is_ok() {
            want.insert(d.to_string());
        }
    }
    let host_hostname = std::fs::read("/etc/hostname").ok();
    let host_hosts = std::fs::read("/etc/hosts").ok();
    let out = run(
        &Sandbox::new()
            .hostname("layout-h")
            .rootfs(Rootfs::host_readonly()),
        r#"ls -A /; echo --
for d in /tmp /run /home /root; do
  echo "$d:$(ls -A $d | wc -l)"
  touch $d/w && echo "wrote $d"
done; echo --
touch /x 2>&1; echo "rc=$?"; echo --
cat /etc/hostname; echo --
cat /etc/hosts; echo --
(echo evil > /etc/hostname) 2>&1; echo "rc=$?"; cat /etc/hostname; echo --
"#,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let t = text(&out.stdout);
    let parts: Vec<&str> = t.split("--\n").collect();
    assert_eq!(parts.len(), 7, "{t}");
    assert_eq!(lines(parts[0]), want, "ls -A / inside");
    for d in ["/tmp", "/run", "/home", "/root"] {
        assert!(
            parts[1].lines().any(|l| l == format!("{d}:0")),
            "{d} is not empty: {}",
            parts[1]
        );
        assert!(
            parts[1].lines().any(|l| l == format!("wrote {d}")),
            "{d} is not writable: {}",
            parts[1]
        );
    }
    assert!(parts[2].contains("Read-only file system"), "{}", parts[2]);
    assert!(
        !parts[2].contains("rc=0"),
        "touch /x succeeded: {}",
        parts[2]
    );
    assert_eq!(parts[3], "layout-h\n");
    assert!(
        parts[4].lines().any(|l| l == "127.0.1.1\tlayout-h"),
        "/etc/hosts: {}",
        parts[4]
    );
    assert!(parts[5].contains("Read-only file system"), "{}", parts[5]);
    assert!(parts[5].ends_with("layout-h\n"), "{}", parts[5]);
    assert!(!parts[5].contains("rc=0"), "{}", parts[5]);
    // The host's own files are untouched.
    assert_eq!(std::fs::read("/etc/hostname").ok(), host_hostname);
    assert_eq!(std::fs::read("/etc/hosts").ok(), host_hosts);
    assert!(!Path::new("/x").exists());
}

#[tokio::test]
async fn busybox_rootfs_runs_ls_and_cat() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // A tree as `busybox --install` leaves it: /bin and nothing else, not even mount
    // points or /etc. Read-only, it gets them (and the generated /etc files) on a layer
    // of the sandbox's own, sealed read-only: nothing is written to the tree.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    common::busybox_rootfs(&bare, &["sh", "ls", "cat", "touch"]);
    for d in ["proc", "dev", "etc", "tmp"] {
        std::fs::remove_dir(bare.join(d)).unwrap();
    }
    assert!(Rootfs::dir(&bare).is_layered(true));
    let before = common::snapshot(&bare);
    let out = run(
        &Sandbox::new().hostname("bb").rootfs(Rootfs::dir(&bare)),
        "ls /; cat /etc/hostname; touch /x 2>&1; touch /etc/hostname 2>&1",
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "bin\ndev\netc\nproc\nsys\nbb\n\
         touch: /x: Read-only file system\n\
         touch: /etc/hostname: Read-only file system\n",
        "{out:?}"
    );
    assert_eq!(common::snapshot(&bare), before, "the bare tree changed");
    // A tree that has the /etc files is bound as it is (no layer): its own entries only
    // (no /sys: a read-only tree without one goes without), the generated /etc/hostname
    // over the tree's.
    let tree = dir.path().join("bb");
    common::busybox_rootfs(&tree, &["sh", "ls", "cat"]);
    for f in ["hostname", "hosts", "resolv.conf"] {
        std::fs::write(tree.join("etc").join(f), "orig\n").unwrap();
    }
    assert!(!Rootfs::dir(&tree).is_layered(true));
    let before = common::snapshot(&tree);
    let out = run(
        &Sandbox::new().hostname("bb").rootfs(Rootfs::dir(&tree)),
        "ls /; cat /etc/hostname; grep -c overlay /proc/self/mountinfo",
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "bin\ndev\netc\nproc\ntmp\nbb\n0\n",
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/hostname")).unwrap(),
        "orig\n"
    );
    assert_eq!(common::snapshot(&tree), before, "the tree changed");
}

#[tokio::test]
async fn readonly_binds_refuse_writes_and_sized_tmpfs_fills_up() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let ro = tempfile::tempdir().unwrap();
    let rw = tempfile::tempdir().unwrap();
    // Permissions would allow the writes: only the read-only mount refuses them.
    std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(ro.path().join("existing"), "keep\n").unwrap();
    std::fs::set_permissions(
        ro.path().join("existing"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    std::os::unix::fs::chown(rw.path(), Some(SANDBOX_ROOT), Some(SANDBOX_ROOT)).unwrap();
    let ro_before = common::snapshot(ro.path());
    let out = run(
        &Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .mount(Mount::bind(ro.path(), "/data").readonly())
            .mount(Mount::bind(rw.path(), "/rw"))
            .mount(Mount::tmpfs("/small").size(1 << 20))
            .mount(Mount::tmpfs("/big")),
        r#"(echo new > /data/new) 2>&1; echo "rc=$?"; echo --
(echo more >> /data/existing) 2>&1; echo "rc=$?"; echo --
cat /data/existing; echo --
echo hello > /rw/out && echo wrote-rw; echo --
dd if=/dev/zero of=/small/f bs=64k count=32 2>&1; echo "rc=$?"; echo --
wc -c < /small/f; echo --
dd if=/dev/zero of=/big/f bs=64k count=32 2>/dev/null; echo "rc=$?"; wc -c < /big/f; echo --
"#,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let t = text(&out.stdout);
    let parts: Vec<&str> = t.split("--\n").collect();
    assert_eq!(parts.len(), 8, "{t}");
    for p in &parts[0..2] {
        assert!(p.contains("Read-only file system"), "{p}");
        assert!(!p.contains("rc=0"), "a write went through: {p}");
    }
    assert_eq!(parts[2], "keep\n");
    assert_eq!(parts[3], "wrote-rw\n");
    assert!(parts[4].contains("No space left on device"), "{}", parts[4]);
    assert!(!parts[4].contains("rc=0"), "{}", parts[4]);
    let small: u64 = parts[5].trim().parse().unwrap();
    assert!(small > 0 && small <= 1 << 20, "/small/f has {small} bytes");
    // The same write fits a tmpfs without a size limit.
    assert_eq!(parts[6], format!("rc=0\n{}\n", 2 << 20));
    // From the host: the read-only directory is as it was, the writable one got the file.
    assert_eq!(common::snapshot(ro.path()), ro_before);
    let written = rw.path().join("out");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello\n");
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), SANDBOX_ROOT);
}

#[tokio::test(flavor = "multi_thread")]
async fn overlay_lower_is_byte_identical_after_writes() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    common::busybox_rootfs(&lower, &["sh", "ls", "cat", "rm"]);
    std::fs::write(lower.join("etc/data"), "orig\n").unwrap();
    let before = common::snapshot(&lower);

    // Five sandboxes at once, each writing, removing and appending; each waits (on its
    // stdin) until all have written before looking.
    let sandbox = Sandbox::new().rootfs(Rootfs::overlay([&lower]));
    let mut running = Vec::new();
    for id in 0..5 {
        let script = format!(
            "echo {id} > /bin/new-{id} && rm /bin/ls && echo y{id} >> /etc/data && echo ready
read x
echo /bin/*
cat /etc/data /bin/new-{id}
echo done"
        );
        running.push(common::shell(&sandbox, &script).await);
    }
    for (id, (_, lines)) in running.iter_mut().enumerate() {
        let l = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("sandbox hangs")
            .unwrap();
        assert_eq!(l.as_deref(), Some("ready"), "sandbox {id}");
    }
    for (id, (mut child, mut lines)) in running.into_iter().enumerate() {
        drop(child.stdin.take());
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            got.push(l);
        }
        assert!(child.wait().await.unwrap().success(), "sandbox {id}");
        assert_eq!(
            got,
            [
                format!("/bin/busybox /bin/cat /bin/new-{id} /bin/rm /bin/sh"),
                "orig".to_string(),
                format!("y{id}"),
                id.to_string(),
                "done".to_string(),
            ],
            "sandbox {id} sees other sandboxes' writes, or not its own"
        );
    }
    assert_eq!(common::snapshot(&lower), before, "the lower layer changed");

    // A kept upper directory holds the writes on the host, and a later sandbox finds them.
    let keep = dir.path().join("keep");
    let kept = Sandbox::new().rootfs(Rootfs::overlay([&lower]).upper_dir(&keep));
    let out = run(
        &kept,
        "echo kept > /bin/new && rm /bin/ls && echo y >> /etc/data && echo ok",
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "ok\n");
    assert_eq!(
        std::fs::read_to_string(keep.join("upper/bin/new")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(keep.join("upper/etc/data")).unwrap(),
        "orig\ny\n"
    );
    let whiteout = std::fs::symlink_metadata(keep.join("upper/bin/ls")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "upper/bin/ls is not a whiteout: {whiteout:?}"
    );
    let out = run(
        &kept,
        "cat /bin/new /etc/data; test -e /bin/ls && echo LS-BACK; echo end",
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "kept\norig\ny\nend\n");
    assert_eq!(common::snapshot(&lower), before, "the lower layer changed");
}

#[tokio::test]
async fn dev_has_only_the_listed_nodes_and_mknod_fails() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    // Masked files and directories that this kernel has (a missing one cannot be read).
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    let dirs: Vec<&str> = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .into_iter()
    .filter(|p| Path::new(p).is_dir())
    .collect();
    assert!(
        !files.is_empty() && !dirs.is_empty(),
        "nothing to check: {files:?} {dirs:?}"
    );
    let script = format!(
        r#"ls -A /dev; echo --
mknod /tmp/n c 1 3 2>&1; echo "rc=$?"; test -e /tmp/n && echo EXISTS; echo --
cat {files} | wc -c; echo --
for d in {dirs}; do echo "$d:$(ls -A $d | wc -l)"; done; echo --
cat /proc/sys/kernel/ns_last_pid >/dev/null && echo readable
(echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1; echo "rc=$?"; echo --
"#,
        files = files.join(" "),
        dirs = dirs.join(" ")
    );
    let out = run(&Sandbox::new().rootfs(Rootfs::host_readonly()), &script).await;
    assert!(out.status.success(), "{out:?}");
    let t = text(&out.stdout);
    let parts: Vec<&str> = t.split("--\n").collect();
    assert_eq!(parts.len(), 6, "{t}");
    let want: BTreeSet<String> = [
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(lines(parts[0]), want, "ls -A /dev");
    assert!(!parts[1].contains("rc=0"), "mknod succeeded: {}", parts[1]);
    assert!(!parts[1].contains("EXISTS"), "{}", parts[1]);
    assert_eq!(parts[2], "0\n", "masked files are not empty ({files:?})");
    for d in &dirs {
        assert!(
            parts[3].lines().any(|l| l == format!("{d}:0")),
            "{d} is not masked: {}",
            parts[3]
        );
    }
    assert!(parts[4].starts_with("readable\n"), "{}", parts[4]);
    assert!(parts[4].contains("Read-only file system"), "{}", parts[4]);
    assert!(!parts[4].contains("rc=0"), "{}", parts[4]);
}

#[tokio::test]
async fn bad_mounts_are_refused_before_spawning_and_leave_nothing() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let bb = dir.path().join("bb");
    common::busybox_rootfs(&bb, &["sh"]);
    let missing = dir.path().join("no-such-source");
    // Warm up the library's threads and their fds.
    let warm = run(&Sandbox::new().rootfs(Rootfs::overlay([&bb])), "true").await;
    assert!(warm.status.success(), "{warm:?}");
    let fds = common::open_fds();
    let kids = common::children();
    let mounts = common::mountinfo();
    // A kept upper directory and an image cache: neither may be created for a sandbox
    // whose mounts are refused.
    let upper = dir.path().join("kept");
    let cache = dir.path().join("cache");
    let tarball = dir.path().join("bb.tar");
    std::fs::write(&tarball, common::tar_of_tree(&bb)).unwrap();
    let roots = [
        Rootfs::host_readonly(),
        Rootfs::dir(&bb),
        Rootfs::overlay([&bb]),
        Rootfs::overlay([&bb]).upper_dir(&upper),
        Rootfs::image(&tarball).cache_dir(&cache),
    ];
    let cases: Vec<(Mount, PathBuf)> = vec![
        (Mount::tmpfs("relative/x"), PathBuf::from("relative/x")),
        (
            Mount::bind(dir.path(), "/a/../../etc"),
            PathBuf::from("/a/../../etc"),
        ),
        (
            Mount::file("../escape", "x".as_bytes()),
            PathBuf::from("../escape"),
        ),
        (Mount::bind(&missing, "/data"), missing.clone()),
    ];
    for root in &roots {
        for (m, path) in &cases {
            let e = Sandbox::new()
                .rootfs(root.clone())
                .mount(m.clone())
                .command("/bin/sh")
                .arg("-c")
                .arg("echo RAN")
                .spawn()
                .await
                .map(|_| ())
                .unwrap_err();
            let ok = match &e {
                Error::Fs(sandbox_fs::Error::BadTarget { target, .. }) => target == path,
                Error::Fs(sandbox_fs::Error::BindSource { path: p, .. }) => p == path,
                _ => false,
            };
            assert!(ok, "{root:?} {m:?}: {e:?}");
            assert!(
                e.to_string().contains(&path.display().to_string()),
                "{e} does not name {}",
                path.display()
            );
        }
    }
    assert_eq!(common::children(), kids, "a process was created");
    assert_eq!(common::open_fds(), fds, "an fd was left open");
    assert_eq!(
        common::mountinfo(),
        mounts,
        "the host's mount table changed"
    );
    assert!(!upper.exists(), "the upper directory was created");
    assert!(!cache.exists(), "the image was imported");
}

/// Root inside cannot undo what it was given: no remount of a read-only bind writable, no
/// umount of a mask, neither directly nor from a user and mount namespace it creates. The
/// seccomp filter (which refuses `mount` and `unshare` outright) is off here, and the
/// sandbox keeps `CAP_SETFCAP` (the kernel's condition for mapping root into a nested user
/// namespace): the mounts hold by themselves, locked by the kernel.
#[tokio::test(flavor = "multi_thread")]
async fn readonly_mounts_and_masks_cannot_be_undone_inside() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let ro = tempfile::tempdir().unwrap();
    // Owned by the sandbox's root: only the mount stands between it and a write.
    std::os::unix::fs::chown(ro.path(), Some(SANDBOX_ROOT), Some(SANDBOX_ROOT)).unwrap();
    let before = common::snapshot(ro.path());
    let script = r#"
mount -o remount,bind,rw /data 2>/dev/null; echo "remount=$?"
umount /proc/keys 2>/dev/null; echo "umount=$?"
umount -l /data 2>/dev/null; echo "umount-data=$?"
unshare -Urm sh -c 'mount -o remount,bind,rw /data 2>/dev/null; echo "nested-remount=$?"; umount /proc/keys 2>/dev/null; echo "nested-umount=$?"; echo x > /data/f 2>/dev/null; echo "nested-write=$?"'
echo x > /data/f 2>/dev/null; echo "write=$?"
wc -c < /proc/keys
"#;
    let out = run(
        &Sandbox::new()
            .seccomp(sandbox_core::Seccomp::off())
            .capability(sandbox_core::Capability::Setfcap)
            .rootfs(Rootfs::host_readonly())
            .mount(Mount::bind(ro.path(), "/data").readonly()),
        script,
    )
    .await;
    let t = text(&out.stdout);
    for failed in [
        "remount",
        "umount",
        "umount-data",
        "nested-remount",
        "nested-umount",
        "nested-write",
        "write",
    ] {
        let line = t
            .lines()
            .find(|l| l.starts_with(&format!("{failed}=")))
            .unwrap_or_else(|| panic!("no {failed} line: {t}{}", text(&out.stderr)));
        assert_ne!(line, format!("{failed}=0"), "{t}");
    }
    assert!(t.ends_with("\n0\n"), "the mask still reads empty: {t}");
    assert_eq!(common::snapshot(ro.path()), before);
}

/// A device node in a tree given as the root (or an overlay lower) is not a device inside:
/// only the private /dev's nodes work.
#[tokio::test(flavor = "multi_thread")]
async fn device_nodes_of_a_tree_do_not_work_inside() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("bb");
    common::busybox_rootfs(&tree, &["sh", "head", "wc"]);
    // A world-readable /dev/zero (char 1:5) planted in the tree.
    let node = tree.join("zero-node");
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: a valid path and a plain mknod(2) call.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    // Also without a user namespace (the host's root inside, all capabilities).
    let host_root = Sandbox::new().share(sandbox_core::Namespace::User);
    for (sandbox, root) in [
        (Sandbox::new(), Rootfs::dir(&tree)),
        (Sandbox::new(), Rootfs::overlay([&tree])),
        (host_root.clone(), Rootfs::dir(&tree)),
        (host_root, Rootfs::overlay([&tree])),
    ] {
        let out = run(
            &sandbox.rootfs(root.clone()),
            "head -c 4 /zero-node | wc -c; head -c 4 /dev/zero | wc -c",
        )
        .await;
        let t = text(&out.stdout);
        assert_eq!(t, "0\n4\n", "{root:?}: {t}{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{root:?}: {out:?}"
        );
    }
}
