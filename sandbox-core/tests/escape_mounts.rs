//! A sandboxed program cannot change its mounts or its namespaces: no mount, remount,
//! umount of a mask, `pivot_root`, `chroot` or cgroup mount; no new user or mount namespace
//! (by `unshare`, by `clone`, or by the `clone3` whose flags the filter cannot see), no
//! `setns`; and the host's mount table stays as it was. Each attack also runs as a control
//! on the host, where it works (see `common/escape.rs`).
mod common;

use common::escape::{blocked, escapes_without_sandbox, SERIAL};

/// A private mount namespace for control runs that mount or unmount.
const PRIVATE_MOUNTS: &[&str] = &["unshare", "-m", "--propagation", "private"];

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
