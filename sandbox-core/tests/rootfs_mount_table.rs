//! Sandboxes of every kind of root (the host's tree, `host_readonly`, a directory, an
//! overlay, an image), each with mounts of its own, never change the caller's mount table:
//! not the host's after a hundred of them, and not that of a caller whose every mount is
//! shared, where a leak would propagate (half of those sandboxes in the host's user
//! namespace); and the caller's `/proc` stays its own.
mod common;

use common::rootfs::{lines, SERIAL};
use common::text;
use sandbox_core::{Mount, Output, Rootfs, Sandbox};
use std::path::Path;

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
