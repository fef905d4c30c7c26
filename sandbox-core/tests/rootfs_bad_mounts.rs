//! A bad mount (a relative target, one climbing out with `..`, a missing bind source) is
//! refused with a typed error that names it before anything exists, whatever the kind of
//! root: no process, no open descriptor, no mount, no kept upper directory, no imported
//! image.
mod common;

use common::rootfs::SERIAL;
use common::shell_output;
use sandbox_core::{Error, Mount, Rootfs, Sandbox};
use std::path::PathBuf;

#[tokio::test]
async fn bad_mounts_are_refused_before_spawning_and_leave_nothing() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let bb = dir.path().join("bb");
    common::busybox_rootfs(&bb, &["sh"]);
    let missing = dir.path().join("no-such-source");
    // Warm up the library's threads and their fds.
    let warm = shell_output(&Sandbox::new().rootfs(Rootfs::overlay([&bb])), "true").await;
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
