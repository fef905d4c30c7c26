//! The details of a sandbox's filesystem that nothing else would notice breaking, read from
//! inside (its `/proc/self/mountinfo`, `stat`, reads and writes): binds, tmpfs and files are
//! `nosuid,nodev`; sysfs, the generated `/etc` files and runc's read-only `/proc` paths
//! refuse writes; a tmpfs has the mode it was given; `dir` and `symlink` mounts make what
//! they say; the upper-most overlay lower layer wins; `/dev` holds the right device nodes
//! and links, a devpts of its own with a working `ptmx`, and a writable `/dev/shm`.
mod common;
use common::text;
use sandbox_core::{Mount, Network, Output, Rootfs, Sandbox};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// [`common::shell_output`] of a script that must succeed.
async fn run(sandbox: &Sandbox, script: &str) -> Output {
    let out = common::shell_output(sandbox, script).await;
    assert!(out.status.success(), "{out:?}");
    out
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug)]
struct Entry {
    /// `maj:min` of the filesystem.
    dev: String,
    point: String,
    /// Per-mount options (`ro`, `nosuid`, ...).
    opts: BTreeSet<String>,
    fstype: String,
    source: String,
    /// Per-superblock options (`mode=...`).
    super_opts: BTreeSet<String>,
}

fn parse_mountinfo(t: &str) -> Vec<Entry> {
    let set = |s: &str| s.split(',').map(String::from).collect();
    t.lines()
        .map(|l| {
            let (head, tail) = l.split_once(" - ").unwrap_or_else(|| panic!("{l}"));
            let h: Vec<&str> = head.split(' ').collect();
            let t: Vec<&str> = tail.split(' ').collect();
            Entry {
                dev: h[2].to_string(),
                point: h[4].to_string(),
                opts: set(h[5]),
                fstype: t[0].to_string(),
                source: t[1].to_string(),
                super_opts: set(t[2]),
            }
        })
        .collect()
}

/// The mount on top at `point` (the last one listed there).
fn at<'a>(table: &'a [Entry], point: &str) -> &'a Entry {
    table
        .iter()
        .rev()
        .find(|e| e.point == point)
        .unwrap_or_else(|| panic!("nothing mounted at {point}: {table:#?}"))
}

/// Splits a script's output at lines `--`.
fn parts(out: &Output, n: usize) -> Vec<String> {
    let t = text(&out.stdout);
    let p: Vec<String> = t.split("--\n").map(String::from).collect();
    assert_eq!(p.len(), n, "{t}{}", text(&out.stderr));
    p
}

/// A busybox tree with `applets`, for roots that are not the host's.
fn busybox(dir: &Path, applets: &[&str]) -> std::path::PathBuf {
    let tree = dir.join("bb");
    common::busybox_rootfs(&tree, applets);
    tree
}

#[tokio::test]
async fn binds_tmpfs_and_files_are_nosuid_and_nodev() {
    common::require_root();
    // Searchable by the sandbox's root (nobody to the host's files), holding a
    // world-usable /dev/null node (char 1:3): only nodev makes it dead.
    let d = common::open_tempdir();
    let node = d.path().join("null-node");
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: a valid path and a plain mknod(2) call.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
    // In a user namespace of its own, and as the host's root (to whom the node is a
    // device but for nodev).
    let host_user = Sandbox::new().share(sandbox_core::Namespace::User);
    for (who, sandbox) in [
        ("host's user ns", host_user),
        ("own user ns", Sandbox::new()),
    ] {
        let out = run(
            &sandbox
                .rootfs(Rootfs::host_readonly())
                .mount(Mount::bind(d.path(), "/data"))
                .mount(Mount::bind(d.path(), "/rodata").readonly())
                .mount(Mount::bind(&node, "/work/node"))
                .mount(Mount::tmpfs("/scratch"))
                .mount(Mount::tmpfs("/sized").size(1 << 20))
                .mount(Mount::file("/work/input", "x"))
                .mount(Mount::file("/work/config", "y").readonly()),
            "cat /proc/self/mountinfo; echo --
(: > /data/null-node) 2>&1; echo \"rc=$?\"; echo --",
        )
        .await;
        let p = parts(&out, 3);
        assert!(p[1].contains("Permission denied"), "{who}: {}", p[1]);
        assert!(
            !p[1].contains("rc=0"),
            "{who}: a device node opened on a bind: {}",
            p[1]
        );
        let table = parse_mountinfo(&p[0]);
        for (point, ro) in [
            ("/data", false),
            ("/rodata", true),
            ("/work/node", false),
            ("/scratch", false),
            ("/sized", false),
            ("/work/input", false),
            ("/work/config", true),
        ] {
            let e = at(&table, point);
            for flag in ["nosuid", "nodev", if ro { "ro" } else { "rw" }] {
                assert!(e.opts.contains(flag), "{who}: {point} is not {flag}: {e:?}");
            }
        }
    }
}

#[tokio::test]
async fn sysfs_is_read_only_whether_fresh_or_the_hosts() {
    common::require_root();
    // Opening with O_TRUNC asks the mount for write access before any permission check:
    // a read-only mount answers EROFS, a writable one lets the open go on to EACCES.
    let script = "cat /proc/self/mountinfo; echo --
(: > /sys/kernel/uevent_seqnum) 2>&1; echo \"rc=$?\"; echo --
(: > /sys2/kernel/uevent_seqnum) 2>&1; echo \"rc=$?\"; echo --";
    // A fresh sysfs for a sandbox with its own network namespace; the host's, bound, with
    // the host's network.
    for net in [Network::loopback(), Network::host()] {
        let out = run(
            &Sandbox::new()
                .network(net.clone())
                .rootfs(Rootfs::host_readonly())
                .mount(Mount::sysfs("/sys2")),
            script,
        )
        .await;
        let p = parts(&out, 4);
        let table = parse_mountinfo(&p[0]);
        for point in ["/sys", "/sys2"] {
            let e = at(&table, point);
            assert_eq!(e.fstype, "sysfs", "{net:?} {point}: {e:?}");
            for flag in ["ro", "nosuid", "nodev", "noexec"] {
                assert!(
                    e.opts.contains(flag),
                    "{net:?} {point} is not {flag}: {e:?}"
                );
            }
        }
        for w in &p[1..3] {
            assert!(w.contains("Read-only file system"), "{net:?}: {w}");
            assert!(!w.contains("rc=0"), "{net:?}: {w}");
        }
    }
}

#[tokio::test]
async fn generated_etc_files_are_read_only_and_resolv_conf_fits_the_network() {
    common::require_root();
    let d = tempfile::tempdir().unwrap();
    let tree = busybox(d.path(), &["sh", "cat"]);
    std::fs::write(tree.join("etc/resolv.conf"), "nameserver 192.0.2.1\n").unwrap();
    let before = common::snapshot(&tree);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let own = "# this sandbox has no network of the host's (no name server)\n";
    // On a root whose own /etc is read-only and on one where it is writable (an overlay):
    // only the generated files' own mounts refuse the writes.
    for root in [Rootfs::host_readonly(), Rootfs::overlay([&tree])] {
        for (net, resolv) in [
            (Network::loopback(), own),
            (Network::host(), host_resolv.as_str()),
        ] {
            let out = run(
                &Sandbox::new()
                    .hostname("etc-h")
                    .network(net.clone())
                    .rootfs(root.clone()),
                "cat /proc/self/mountinfo; echo --
for f in /etc/hostname /etc/hosts /etc/resolv.conf; do
  (echo evil > $f) 2>&1; echo \"rc=$?\"
done; echo --
cat /etc/resolv.conf; echo --
cat /etc/hostname; echo --",
            )
            .await;
            let p = parts(&out, 5);
            let table = parse_mountinfo(&p[0]);
            for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
                let e = at(&table, f);
                for flag in ["ro", "nosuid", "nodev"] {
                    assert!(e.opts.contains(flag), "{root:?} {f} is not {flag}: {e:?}");
                }
            }
            assert_eq!(
                p[1].matches("Read-only file system").count(),
                3,
                "{root:?} {net:?}: {}",
                p[1]
            );
            assert!(!p[1].contains("rc=0"), "{root:?} {net:?}: {}", p[1]);
            assert_eq!(p[2], resolv, "{root:?} {net:?}: /etc/resolv.conf");
            assert_eq!(p[3], "etc-h\n", "{root:?} {net:?}");
        }
    }
    assert_eq!(common::snapshot(&tree), before, "the tree changed");
}

#[tokio::test]
async fn proc_bus_irq_and_sysrq_trigger_are_read_only() {
    common::require_root();
    // runc's read-only paths that this kernel has, each with a file under it to try to
    // open for writing (the path itself when it is a file). `: >` writes no byte: had the
    // open succeeded, nothing would have been sent to the kernel.
    fn first_file(dir: &Path) -> Option<std::path::PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in &entries {
            let ft = e.file_type().ok()?;
            if ft.is_file() {
                return Some(e.path());
            }
        }
        entries
            .iter()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .find_map(|e| first_file(&e.path()))
    }
    let mut checked = Vec::new();
    for p in ["/proc/bus", "/proc/irq", "/proc/sysrq-trigger"] {
        let path = Path::new(p);
        let file = if path.is_file() {
            Some(path.to_path_buf())
        } else if path.is_dir() {
            first_file(path)
        } else {
            None
        };
        if let Some(f) = file {
            checked.push((p, f));
        }
    }
    assert!(
        checked.iter().any(|(p, _)| *p == "/proc/bus")
            && checked.iter().any(|(p, _)| *p == "/proc/irq"),
        "nothing to check: {checked:?}"
    );
    let mut script = String::from("cat /proc/self/mountinfo; echo --\n");
    for (_, f) in &checked {
        script.push_str(&format!(
            "(: > {}) 2>&1; echo \"rc=$?\"; echo --\n",
            f.display()
        ));
    }
    // In a user namespace of its own (the default): the sandbox's root is nobody to the
    // host's /proc files, so even a writable mount would refuse (EACCES); the read-only
    // mount refuses first, with EROFS.
    let out = run(&Sandbox::new().rootfs(Rootfs::host_readonly()), &script).await;
    let p = parts(&out, checked.len() + 2);
    let table = parse_mountinfo(&p[0]);
    for (i, (point, file)) in checked.iter().enumerate() {
        let e = at(&table, point);
        assert_eq!(e.fstype, "proc", "{point}: {e:?}");
        for flag in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(e.opts.contains(flag), "{point} is not {flag}: {e:?}");
        }
        let w = &p[i + 1];
        assert!(
            w.contains("Read-only file system"),
            "{} ({point}): {w}",
            file.display()
        );
        assert!(!w.contains("rc=0"), "{}: {w}", file.display());
    }
}

#[tokio::test]
async fn tmpfs_has_the_mode_it_was_given() {
    common::require_root();
    let out = run(
        &Sandbox::new()
            .rootfs(Rootfs::host_readonly())
            .mount(Mount::tmpfs("/default"))
            .mount(Mount::tmpfs("/private").mode(0o750))
            .mount(Mount::tmpfs("/shared").mode(0o1777).size(1 << 20)),
        "stat -c '%n %a %U' /default /private /shared",
    )
    .await;
    assert_eq!(
        text(&out.stdout),
        "/default 755 root\n/private 750 root\n/shared 1777 root\n"
    );
}

#[tokio::test]
async fn dir_and_symlink_mounts_make_what_they_say() {
    common::require_root();
    let d = tempfile::tempdir().unwrap();
    let tree = busybox(d.path(), &["sh", "cat", "stat", "readlink"]);
    let before = common::snapshot(&tree);
    let script = "stat -c '%n %F %a' /a /a/b /a/b/c /plain; echo --
readlink /link; readlink /rel; echo --
cat /link; echo --";
    for root in [Rootfs::host_readonly(), Rootfs::overlay([&tree])] {
        let out = run(
            &Sandbox::new()
                .hostname("linked")
                .rootfs(root.clone())
                .mount(Mount::dir("/a/b/c").mode(0o700))
                .mount(Mount::dir("/plain"))
                .mount(Mount::symlink("/link", "/etc/hostname"))
                .mount(Mount::symlink("/rel", "a/b/../b")),
            script,
        )
        .await;
        let p = parts(&out, 4);
        assert_eq!(
            p[0],
            "/a directory 755\n/a/b directory 755\n/a/b/c directory 700\n/plain directory 755\n",
            "{root:?}"
        );
        assert_eq!(p[1], "/etc/hostname\na/b/../b\n", "{root:?}");
        assert_eq!(p[2], "linked\n", "{root:?}");
    }
    assert_eq!(common::snapshot(&tree), before, "the tree changed");
}

#[tokio::test]
async fn overlay_upper_most_lower_layer_wins() {
    common::require_root();
    let d = tempfile::tempdir().unwrap();
    // Bottom first, as Rootfs::overlay takes them.
    let bottom = busybox(d.path(), &["sh", "cat", "ls"]);
    let middle = d.path().join("middle");
    let top = d.path().join("top");
    for (layer, name) in [(&bottom, "bottom"), (&middle, "middle"), (&top, "top")] {
        std::fs::create_dir_all(layer.join("data/dir")).unwrap();
        std::fs::write(layer.join("data/all"), name).unwrap();
        std::fs::write(layer.join(format!("data/dir/{name}")), name).unwrap();
    }
    for (layer, name) in [(&bottom, "bottom"), (&middle, "middle")] {
        std::fs::write(layer.join("data/lower-two"), name).unwrap();
    }
    std::fs::write(middle.join("data/middle-only"), "middle").unwrap();
    std::fs::write(bottom.join("data/bottom-only"), "bottom").unwrap();
    let out = run(
        &Sandbox::new().rootfs(Rootfs::overlay([&bottom, &middle, &top])),
        "cd /data
for f in all lower-two middle-only bottom-only; do echo \"$f=$(cat $f)\"; done; echo --
ls dir; echo --",
    )
    .await;
    let p = parts(&out, 3);
    assert_eq!(
        p[0],
        "all=top\nlower-two=middle\nmiddle-only=middle\nbottom-only=bottom\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(p[1], "bottom\nmiddle\ntop\n", "directories merge");
}

#[tokio::test]
async fn dev_pts_is_a_devpts_of_its_own_and_ptmx_works() {
    common::require_root();
    // Every devpts the host has mounted (there may be several, stacked).
    let host_devpts: BTreeSet<String> = parse_mountinfo(&common::mountinfo())
        .into_iter()
        .filter(|e| e.fstype == "devpts")
        .map(|e| e.dev)
        .collect();
    let host_dev = std::fs::metadata("/dev/pts").unwrap().dev();
    let out = run(
        &Sandbox::new().rootfs(Rootfs::host_readonly()),
        "cat /proc/self/mountinfo; echo --
stat -c '%d' /dev/pts; echo --
readlink /dev/ptmx; stat -c '%F %t,%T' /dev/pts/ptmx; echo --
python3 -c 'import os; m, s = os.openpty(); print(os.ttyname(s)); print(sorted(os.listdir(\"/dev/pts\")))'; echo --",
    )
    .await;
    let p = parts(&out, 5);
    let table = parse_mountinfo(&p[0]);
    let e = at(&table, "/dev/pts");
    assert_eq!(
        (e.fstype.as_str(), e.source.as_str()),
        ("devpts", "devpts"),
        "{e:?}"
    );
    assert!(
        !host_devpts.contains(&e.dev),
        "/dev/pts is the host's devpts {}: {e:?}",
        e.dev
    );
    assert!(e.super_opts.contains("ptmxmode=666"), "{e:?}");
    for flag in ["nosuid", "noexec"] {
        assert!(e.opts.contains(flag), "/dev/pts is not {flag}: {e:?}");
    }
    let inside: u64 = p[1].trim().parse().unwrap();
    assert_ne!(inside, host_dev, "/dev/pts has the host's st_dev");
    // /dev/ptmx leads to the instance's own ptmx (char 5:2).
    assert_eq!(p[2], "pts/ptmx\ncharacter special file 5,2\n");
    // A new instance numbers from 0 and holds only what this sandbox opened.
    assert_eq!(p[3], "/dev/pts/0\n['0', 'ptmx']\n", "{}", text(&out.stderr));
}

#[tokio::test]
async fn dev_nodes_links_and_shm_are_as_listed() {
    common::require_root();
    let out = run(
        &Sandbox::new().rootfs(Rootfs::host_readonly()),
        "cd /dev
stat -c '%n %F %t,%T' null zero full random urandom tty; echo --
for l in fd stdin stdout stderr; do echo \"$l -> $(readlink $l)\"; done; echo --
stat -c '%F %a' shm; echo hello > shm/f && cat shm/f; echo --",
    )
    .await;
    let p = parts(&out, 4);
    assert_eq!(
        p[0],
        "null character special file 1,3
zero character special file 1,5
full character special file 1,7
random character special file 1,8
urandom character special file 1,9
tty character special file 5,0
"
    );
    assert_eq!(
        p[1],
        "fd -> /proc/self/fd
stdin -> /proc/self/fd/0
stdout -> /proc/self/fd/1
stderr -> /proc/self/fd/2
"
    );
    assert_eq!(p[2], "directory 1777\nhello\n", "{}", text(&out.stderr));
}
