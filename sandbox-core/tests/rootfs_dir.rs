//! A directory tree as the root, entered with pivot_root: the sandbox sees only that tree,
//! a fresh /proc and a private /dev, cannot write the tree unless it was made writable,
//! and the host's mount table does not change; a read-only tree without its `/etc` files on
//! a file system that cannot be idmapped still starts.
mod common;
use sandbox_core::{Rootfs, Sandbox};

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

#[tokio::test]
async fn pivot_root_into_a_directory() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    common::mini_rootfs(dir.path(), &["/bin/sh", "/bin/ls", "/bin/cat"]);
    let before = mountinfo();
    let out = Sandbox::new()
        .rootfs(Rootfs::dir(dir.path()))
        .command("/bin/sh")
        .arg("-c")
        .arg(
            "ls /; echo --; ls /dev; echo --; echo $$; \
              echo x > /written && echo WROTE; echo x > /tmp/w && echo WROTE-TMP; true",
        )
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let parts: Vec<&str> = text.split("--\n").collect();
    let top: Vec<&str> = parts[0].lines().collect();
    assert_eq!(
        top,
        ["bin", "dev", "etc", "lib", "lib64", "proc", "root", "tmp", "usr"]
            .iter()
            .filter(|d| dir.path().join(d).exists())
            .copied()
            .collect::<Vec<_>>()
    );
    let dev: Vec<&str> = parts[1].lines().collect();
    for want in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd",
    ] {
        assert!(dev.contains(&want), "/dev lacks {want}: {dev:?}");
    }
    assert!(!dev
        .iter()
        .any(|d| d.starts_with("sd") || d.starts_with("vd") || *d == "mem"));
    let rest: Vec<&str> = parts[2].lines().collect();
    assert_eq!(rest[0], "2", "pid of the shell");
    assert!(
        !text.contains("WROTE"),
        "the read-only root was written: {text}"
    );
    assert!(!dir.path().join("written").exists());
    assert_eq!(mountinfo(), before, "the host's mount table changed");
}

#[tokio::test]
async fn writable_directory_root() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    common::mini_rootfs(dir.path(), &["/bin/sh"]);
    // Root inside is an unprivileged host uid: give it the tree's /tmp.
    std::os::unix::fs::chown(dir.path().join("tmp"), Some(524288), Some(524288)).unwrap();
    let writable = Sandbox::new().rootfs(Rootfs::dir(dir.path()).writable());
    let o = common::shell_status(&writable, "echo hi > /tmp/out").await;
    assert!(o.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tmp/out")).unwrap(),
        "hi\n"
    );
}

#[tokio::test]
async fn the_host_mount_table_is_unchanged_after_many_sandboxes() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    common::mini_rootfs(dir.path(), &["/bin/sh"]);
    let before = mountinfo();
    for i in 0..20 {
        let root = if i % 2 == 0 {
            Rootfs::host()
        } else {
            Rootfs::dir(dir.path())
        };
        let o = common::shell_status(&Sandbox::new().rootfs(root), "true").await;
        assert!(o.success());
    }
    assert_eq!(mountinfo(), before);
}

/// A read-only tree without its `/etc` files on a file system that cannot be idmapped
/// (overlayfs here) still starts for a root caller: it stays a plain read-only bind
/// (without the generated files) instead of failing on the idmapped layer it would get.
#[tokio::test]
async fn a_bare_tree_on_a_file_system_without_idmapping_still_starts() {
    if common::in_private_mount_namespace(
        "a_bare_tree_on_a_file_system_without_idmapping_still_starts",
    ) {
        return;
    }
    common::require_root();
    use nix::mount::{mount, MsFlags};
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(p(d)).unwrap();
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        p("lower").display(),
        p("upper").display(),
        p("work").display()
    );
    mount(
        Some("overlay"),
        &p("merged"),
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .unwrap();
    let tree = p("merged").join("bb");
    common::busybox_rootfs(&tree, &["sh", "echo", "cat"]);
    std::fs::remove_dir(tree.join("etc")).unwrap();
    assert!(Rootfs::dir(&tree).is_layered(true));
    let out = Sandbox::new()
        .hostname("bare")
        .rootfs(Rootfs::dir(&tree))
        .command("/bin/sh")
        .arg("-c")
        .arg("echo started; cat /etc/hostname 2>/dev/null || echo no-etc")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // Either way it ran; which way depends on whether this kernel idmaps overlayfs.
    assert!(
        text == "started\nbare\n" || text == "started\nno-etc\n",
        "{text}"
    );
}
