//! Root inside is never the host's root unless a map says so: a root caller's sandbox root
//! is an unprivileged host uid (read from the host's /proc), from a range that can be
//! configured or given as several maps, and it cannot write what only the host's root may;
//! the host's root is mapped only when asked for explicitly.
mod common;
use sandbox_core::{IdMap, Remap, Sandbox};
use std::os::unix::fs::PermissionsExt;

/// Spawns `sleep`-like program, returns (child, host pid of the program).
async fn program_ids(sandbox: Sandbox) -> (Vec<String>, Vec<String>, String) {
    let (mut child, mut lines) =
        common::shell(&sandbox, "cat /proc/self/uid_map; read x || true").await;
    let map = lines.next_line().await.unwrap().unwrap();
    let init = child.id().unwrap();
    let prog = common::children_of(init)[0];
    let uid = common::status_field(prog, "Uid").unwrap();
    let gid = common::status_field(prog, "Gid").unwrap();
    drop(child.stdin.take());
    child.wait().await.unwrap();
    (uid, gid, map)
}

#[tokio::test]
async fn root_caller_is_remapped_to_an_unprivileged_host_uid() {
    common::require_root();
    let (uid, gid, map) = program_ids(Sandbox::new()).await;
    assert_eq!(uid, vec!["524288"; 4], "host view of the program's uids");
    assert_eq!(gid, vec!["524288"; 4]);
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "524288", "65536"]
    );
}

#[tokio::test]
async fn the_remap_range_is_configurable() {
    common::require_root();
    let s = Sandbox::new().remap(Remap {
        start: 700000,
        count: 1000,
    });
    let (uid, _, _) = program_ids(s).await;
    assert_eq!(uid[0], "700000");
}

#[tokio::test]
async fn host_root_is_mapped_only_when_asked_explicitly() {
    common::require_root();
    let s = Sandbox::new()
        .uid_map(IdMap::new(0, 0, 1))
        .gid_map(IdMap::new(0, 0, 1));
    let (uid, gid, _) = program_ids(s).await;
    assert_eq!(uid[0], "0");
    assert_eq!(gid[0], "0");
}

#[tokio::test]
async fn several_ranges_for_a_root_caller() {
    common::require_root();
    let out = Sandbox::new()
        .uid_map(IdMap::new(0, 600000, 1000))
        .uid_map(IdMap::new(1000, 610000, 10))
        .command("/bin/cat")
        .arg("/proc/self/uid_map")
        .output()
        .await
        .unwrap();
    let lines: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(
        lines,
        vec![vec!["0", "600000", "1000"], vec!["1000", "610000", "10"]]
    );
}

#[tokio::test]
async fn root_inside_cannot_write_what_only_host_root_may() {
    common::require_root();
    // A root-owned file the sandbox can see (the host tree is its root).
    let dir = common::open_tempdir();
    let file = dir.path().join("owned-by-root");
    std::fs::write(&file, "host\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before_core = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let script = format!(
        "echo x > {f} && echo WROTE-FILE; \
         echo '|/tmp/evil' > /proc/sys/kernel/core_pattern && echo WROTE-CORE; \
         id -u; true",
        f = file.display()
    );
    let out = common::shell_output(&Sandbox::new(), &script).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout, "0\n",
        "root inside, but no write succeeded; stderr: {stderr}"
    );
    assert!(
        stderr.contains("ermission denied") || stderr.contains("Read-only"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "host\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before_core
    );
}
