//! A root shows exactly the promised layout, and is never written: `host_readonly` has the
//! host's system directories read-only, an empty writable `/tmp`, `/run`, `/home` and
//! `/root`, and generated `/etc/hostname` and `/etc/hosts` that refuse writes; a directory
//! tree shows its own entries, a bare busybox one with the mount points and `/etc` files it
//! lacks on a sealed layer of the sandbox's own, one with its own `/etc` files bound as it
//! is. Neither the host's files nor the tree change.
mod common;

use common::rootfs::{lines, SERIAL};
use common::{shell_output, text};
use sandbox_core::{Rootfs, Sandbox};
use std::collections::BTreeSet;
use std::path::Path;

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
    let out = shell_output(
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
    let out = shell_output(
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
    let out = shell_output(
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
