//! `/dev` holds only the listed nodes and no new one can be made; a device node in the tree
//! given as the root (or as an overlay's lower layer) is no device inside, even for the
//! host's root; the masked `/proc` files read empty and the masked directories are empty;
//! `/proc/sys` can be read but not written.
mod common;

use common::rootfs::{lines, SERIAL};
use common::{shell_output, text};
use sandbox_core::{Rootfs, Sandbox};
use std::collections::BTreeSet;
use std::path::Path;

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
    let out = shell_output(&Sandbox::new().rootfs(Rootfs::host_readonly()), &script).await;
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

/// `/dev` is `nodev`: a node made there (with CAP_MKNOD and no user namespace, which could
/// otherwise reach a host disk) is no device, while the bound nodes and the terminals work.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_made_in_dev_is_no_device() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let sandbox = Sandbox::new()
        .rootfs(Rootfs::host_readonly())
        .share(sandbox_core::Namespace::User)
        .capability(sandbox_core::Capability::Mknod);
    // (c 1 3 is /dev/null's number: harmless even where it would work.)
    let script = "mknod /dev/made c 1 3 && echo made; (echo x > /dev/made) 2>&1; \
        echo x > /dev/null && echo null; \
        python3 -c 'import os; os.openpty(); print(\"pty\")'";
    let out = shell_output(&sandbox, script).await;
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "made", "{t}");
    assert!(lines[1].contains("Permission denied"), "{t}");
    assert_eq!(&lines[2..], ["null", "pty"], "{t}");
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
        let out = shell_output(
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
