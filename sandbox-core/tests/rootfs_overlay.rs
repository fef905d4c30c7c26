//! An overlay's lower layers are never written: five sandboxes at once each see their own
//! writes, removals and appends and no one else's, and the lower tree stays byte for byte
//! as it was; a kept upper directory holds the writes (and whiteouts) on the host, where a
//! later sandbox finds them.
mod common;

use common::rootfs::SERIAL;
use common::{shell_output, text};
use sandbox_core::{Rootfs, Sandbox};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

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
    let out = shell_output(
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
    let out = shell_output(
        &kept,
        "cat /bin/new /etc/data; test -e /bin/ls && echo LS-BACK; echo end",
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "kept\norig\ny\nend\n");
    assert_eq!(common::snapshot(&lower), before, "the lower layer changed");
}
