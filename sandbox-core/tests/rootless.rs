//! Rootless: the whole spawn works for an unprivileged caller (the test binary re-runs itself
//! as uid 65534 through `setpriv`): its own uid is mapped to root inside, several ranges
//! through `newuidmap`/`newgidmap` and `/etc/subuid` grants, and no id it was not granted;
//! new roots (`host_readonly`, an overlay, a read-only tree) and mounts work as for root.
mod common;
use sandbox_core::{IdMap, Mount, Namespace, NamespaceIds, Rootfs, Sandbox, Stdio};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

const NOBODY: &str = "65534";

/// A copy of this test binary that uid 65534 can execute (the checkout may be private).
fn runnable_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = common::open_tempdir();
    let exe = dir.path().join("rootless-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}

/// Runs `test` of this binary as uid/gid 65534, optionally after `prelude` (a shell snippet
/// run as root inside a private mount namespace).
fn run_unprivileged(test: &str, prelude: Option<&str>) -> String {
    let (_dir, exe) = runnable_copy();
    let setpriv = format!(
        "exec setpriv --reuid {NOBODY} --regid {NOBODY} --clear-groups {} --exact {test} --nocapture",
        exe.display()
    );
    let script = match prelude {
        Some(p) => format!("{p} && {setpriv}"),
        None => setpriv,
    };
    let mut cmd = if prelude.is_some() {
        let mut c = std::process::Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", &script]);
        c
    };
    let out = cmd
        .env("SANDBOX_TEST_INNER", "1")
        .current_dir("/")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "unprivileged run failed:\n{text}");
    assert!(text.contains("1 passed"), "{text}");
    text
}

#[tokio::test]
async fn unprivileged_caller_gets_a_whole_sandbox() {
    if !common::inner() {
        common::require_root();
        run_unprivileged("unprivileged_caller_gets_a_whole_sandbox", None);
        return;
    }
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        65534,
        "the inner run is unprivileged"
    );
    let (mut child, mut lines) = common::shell(
        &Sandbox::new().hostname("rootless"),
        "hostname; echo $$; id -u; read x || true",
    )
    .await;
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "rootless");
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "2");
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "0");
    // From outside: its own uid mapped to 0, setgroups denied, every namespace new.
    let init = child.id().unwrap();
    let map = std::fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", NOBODY, "1"]
    );
    let setgroups = std::fs::read_to_string(format!("/proc/{init}/setgroups")).unwrap();
    assert_eq!(setgroups.trim(), "deny");
    let prog = common::children_of(init)[0];
    assert_eq!(common::status_field(prog, "Uid").unwrap()[0], NOBODY);
    let host = NamespaceIds::of_self().unwrap();
    let ids = child.namespace_ids().unwrap();
    for ns in Namespace::ALL {
        assert_ne!(ids.get(ns), host.get(ns), "{ns}");
    }
    // exec works for the unprivileged owner too.
    let out = child
        .exec(sandbox_core::Command::new("/bin/hostname").stdout(Stdio::piped()))
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"rootless\n");
    drop(child.stdin.take());
    assert!(child.wait().await.unwrap().success());

    // The init holds nothing of this (unprivileged) process, though it runs as the same
    // host uid as the sandboxed code. (Reading a non-dumpable process's maps takes
    // CAP_SYS_PTRACE, which a sandbox only has when it keeps it.)
    let out = Sandbox::new()
        .capability(sandbox_core::Capability::SysPtrace)
        .command("/bin/cat")
        .arg("/proc/1/maps")
        .output()
        .await
        .unwrap();
    let maps = String::from_utf8_lossy(&out.stdout);
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    assert!(maps.contains("memfd:sandbox-init"), "{maps}");
    assert!(!maps.contains(me.to_str().unwrap()), "{maps}");
}

#[tokio::test]
async fn unprivileged_caller_cannot_map_ids_it_was_not_granted() {
    if !common::inner() {
        common::require_root();
        run_unprivileged(
            "unprivileged_caller_cannot_map_ids_it_was_not_granted",
            None,
        );
        return;
    }
    let e = Sandbox::new()
        .uid_map(IdMap::new(0, 0, 1))
        .command("/bin/true")
        .status()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid uid map"), "{e}");
    assert!(common::children().is_empty());
}

#[tokio::test]
async fn unprivileged_caller_maps_several_ranges_through_newuidmap() {
    if !common::inner() {
        common::require_root();
        assert!(
            std::path::Path::new("/usr/bin/newuidmap").exists(),
            "this test needs newuidmap and newgidmap: apt-get install uidmap"
        );
        // Grant 65534 a subordinate range, in a private mount namespace only.
        let dir = common::open_tempdir();
        let grant = dir.path().join("sub");
        std::fs::write(&grant, format!("{NOBODY}:300000:65536\n")).unwrap();
        std::fs::set_permissions(&grant, std::fs::Permissions::from_mode(0o644)).unwrap();
        let g = grant.display();
        let prelude = format!("mount --bind {g} /etc/subuid && mount --bind {g} /etc/subgid");
        run_unprivileged(
            "unprivileged_caller_maps_several_ranges_through_newuidmap",
            Some(&prelude),
        );
        return;
    }
    let s = Sandbox::new()
        .uid_map(IdMap::new(0, 65534, 1))
        .uid_map(IdMap::new(1, 300000, 65535))
        .gid_map(IdMap::new(0, 65534, 1))
        .gid_map(IdMap::new(1, 300000, 65535));
    let mut child = s
        .command("/bin/sh")
        .arg("-c")
        .arg("read x || true")
        .stdin(Stdio::piped())
        .spawn()
        .await
        .unwrap();
    let init = child.id().unwrap();
    for file in ["uid_map", "gid_map"] {
        let map = std::fs::read_to_string(format!("/proc/{init}/{file}")).unwrap();
        let lines: Vec<Vec<&str>> = map
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            vec![vec!["0", NOBODY, "1"], vec!["1", "300000", "65535"]],
            "{file}"
        );
    }
    drop(child.stdin.take());
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn unprivileged_caller_gets_new_roots_and_mounts() {
    if !common::inner() {
        common::require_root();
        run_unprivileged("unprivileged_caller_gets_new_roots_and_mounts", None);
        return;
    }
    assert_eq!(nix::unistd::geteuid().as_raw(), 65534);
    // host_readonly with a sized tmpfs and a file: the host's system directories read-only,
    // writable /tmp, the mounts in place.
    let out = Sandbox::new()
        .hostname("rl")
        .rootfs(Rootfs::host_readonly())
        .mount(Mount::tmpfs("/w").size(1 << 20))
        .mount(Mount::file("/sub/in.txt", "given"))
        .command("/bin/sh")
        .arg("-c")
        .arg("cat /etc/hostname /sub/in.txt; echo; touch /tmp/x && echo tmp-ok; touch /usr/x 2>&1; df -k /w | tail -1")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.starts_with("rl\ngiven\ntmp-ok\n"), "{text}{err}");
    assert!(text.contains("Read-only file system"), "{text}{err}");
    assert!(text.contains(" 1024 "), "the tmpfs is 1 MiB: {text}");
    // An overlay over a tree this uid owns: writes land in the sandbox only.
    let lower = tempfile::tempdir().unwrap();
    common::busybox_rootfs(lower.path(), &["sh", "cat"]);
    let out = Sandbox::new()
        .rootfs(Rootfs::overlay([lower.path()]))
        .command("/bin/sh")
        .arg("-c")
        .arg("echo new > /bin/new && cat /bin/new")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"new\n", "{out:?}");
    assert!(!lower.path().join("bin/new").exists());
    // The same tree read-only, without /etc: it gets its /etc files on a layer of its
    // own, and stays read-only.
    std::fs::remove_dir(lower.path().join("etc")).unwrap();
    let out = Sandbox::new()
        .hostname("rl")
        .rootfs(Rootfs::dir(lower.path()))
        .command("/bin/sh")
        .arg("-c")
        .arg("cat /etc/hostname; echo x > /x || echo refused")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"rl\nrefused\n", "{out:?}");
    assert!(!lower.path().join("etc").exists() && !lower.path().join("x").exists());
}
