//! Mounts hold as they were given: a read-only bind refuses writes (which its permissions
//! would allow), a writable one writes through to the host as the sandbox's root, a sized
//! tmpfs fills up at its size; and root inside cannot undo a read-only bind or a mask (no
//! remount, no umount, not even from a user and mount namespace of its own with the
//! seccomp filter off): the kernel locks them.
mod common;

use common::rootfs::SERIAL;
use common::{shell_output, text};
use sandbox_core::{Mount, Rootfs, Sandbox};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// The host uid (and gid) of root inside a sandbox when the caller is root.
const SANDBOX_ROOT: u32 = 524288;

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
    let out = shell_output(
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
    let out = shell_output(
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
