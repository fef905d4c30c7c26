//! Every sandbox on a bridge gets an address of its own: fifty at once get fifty distinct
//! ones; each is held as long as its sandbox runs (one dropped without kill-on-drop too)
//! and is free again after; addresses are unique across processes (another process's `run`
//! never gets one this process holds, and a holder killed with SIGKILL frees its own at
//! once); and no unprivileged process can block one. No veth and no claim file is left.
//!
//! Every test runs in a network namespace of its own (the test binary re-runs itself under
//! `unshare -n`): no bridge, veth or packet ever touches the machine's own network.
mod common;

use sandbox_core::net::{Bridge, Error as NetError};
use sandbox_core::{Error, Network, Sandbox};
use std::net::Ipv4Addr;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sandboxes_get_distinct_addresses_and_leave_nothing() {
    if !common::net::in_own_network("fifty_sandboxes_get_distinct_addresses_and_leave_nothing") {
        return;
    }
    let before = common::links();
    let br = Bridge::create("sbt1", "10.78.0.0/24").await.unwrap();
    let sandbox = Sandbox::new().network(Network::bridge(&br));
    let mut children = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        // Each prints the address it sees on eth0, then waits for its stdin to close.
        let (child, mut lines) = common::shell(
            &sandbox,
            "ip -4 -o addr show eth0 | awk '{print $4}'; read x || true",
        )
        .await;
        let inside = lines.next_line().await.unwrap().unwrap();
        let addr = child.address().unwrap();
        assert_eq!(inside, format!("{addr}/24"));
        assert!(seen.insert(addr), "{addr} given twice");
        children.push(child);
    }
    assert_eq!(br.leased().len(), 50);
    assert_eq!(
        common::links().len(),
        before.len() + 1 + 50,
        "{:?}",
        common::links()
    );
    for mut c in children {
        drop(c.stdin.take());
        assert!(c.wait().await.unwrap().success());
    }
    let want: Vec<String> = {
        let mut v = before.clone();
        v.push("sbt1".into());
        v.sort();
        v
    };
    assert!(
        common::eventually(Duration::from_secs(20), || common::links() == want),
        "veths left: {:?}",
        common::links()
    );
    assert!(br.leased().is_empty(), "{:?}", br.leased());
    // Every address is free again: a fixed one that was handed out before can be taken.
    let first = *seen.iter().next().unwrap();
    let lease = br.lease(Some(first), None).unwrap();
    assert_eq!(lease.address(), first);
    drop(lease);
    br.remove().await.unwrap();
    assert_eq!(common::links(), before);
}

/// The directory of this network namespace's address claims (see `LEASE_DIR`).
fn claims_of_this_namespace() -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
    std::path::Path::new(sandbox_core::net::LEASE_DIR).join(format!("{}-{}", ns.dev(), ns.ino()))
}

/// A sandbox left running (dropped without kill-on-drop) keeps its address until it ends;
/// attach is refused for a sandbox without a network namespace of its own; a bridged
/// sandbox's network namespace cannot be kept past its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_held_as_long_as_the_sandbox_runs() {
    if !common::net::in_own_network("addresses_are_held_as_long_as_the_sandbox_runs") {
        return;
    }
    let br = Bridge::create("sbth", "10.85.0.0/24").await.unwrap();
    let mut cmd = Sandbox::new()
        .network(Network::bridge(&br))
        .command("/bin/sleep");
    cmd.arg("1").kill_on_drop(false);
    let child = cmd.spawn().await.unwrap();
    let addr = child.address().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = child
        .keep_namespace(sandbox_core::Namespace::Net, dir.path().join("net"))
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    drop(child);
    // Still running: still its address.
    assert_eq!(br.leased(), vec![addr]);
    let e = br.lease(Some(addr), None).unwrap_err();
    assert!(matches!(e, NetError::AddressTaken { .. }), "{e}");
    assert!(
        common::eventually(Duration::from_secs(10), || br.leased().is_empty()),
        "the address was not given back after the sandbox ended"
    );
    let (mut host_net, _lines) =
        common::shell(&Sandbox::new().network(Network::host()), "read x || true").await;
    let e = host_net.attach(&Network::bridge(&br)).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    // No pair was made for it (the first sandbox's goes with its namespace, in time).
    assert!(common::eventually(Duration::from_secs(10), || {
        !common::links().iter().any(|l| l.starts_with("sbx-sandbo"))
    }));
    drop(host_net.stdin.take());
    host_net.wait().await.unwrap();
    br.remove().await.unwrap();
}

/// Addresses are unique between processes, not only within one: a `run` command on the
/// same bridge does not get an address this process holds, two at once get different
/// ones, and the address of one killed with SIGKILL is free again at once (its claim is
/// the kernel's, released with the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_unique_across_processes_and_freed_when_a_holder_dies() {
    if !common::net::in_own_network(
        "addresses_are_unique_across_processes_and_freed_when_a_holder_dies",
    ) {
        return;
    }
    let br = Bridge::create("sbtx", "10.86.0.0/24").await.unwrap();
    let held = br.lease(Some(Ipv4Addr::new(10, 86, 0, 2)), None).unwrap();
    let run = |args: &[&str]| {
        let mut c = tokio::process::Command::new(common::example("run"));
        c.args(["--net", "bridge:sbtx"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    // The address this process holds is refused to another.
    let out = run(&["--ip", "10.86.0.2", "--", "/bin/true"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10.86.0.2 is taken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two at once: each prints its address, then waits.
    let show = "ip -4 -o addr show eth0 | awk '{print $4}'; exec sleep 60";
    let mut procs = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let mut p = run(&["--", "/bin/sh", "-c", show]).spawn().unwrap();
        let mut lines = {
            use tokio::io::AsyncBufReadExt;
            tokio::io::BufReader::new(p.stdout.take().unwrap()).lines()
        };
        let line = lines.next_line().await.unwrap().unwrap();
        seen.push(line.trim_end_matches("/24").parse::<Ipv4Addr>().unwrap());
        procs.push(p);
    }
    assert_ne!(seen[0], seen[1], "{seen:?}");
    assert!(!seen.contains(&held.address()), "{seen:?}");
    // This process cannot take them either, while they run.
    for a in &seen {
        let e = br.lease(Some(*a), None).unwrap_err();
        assert!(matches!(e, NetError::AddressTaken { .. }), "{a}: {e}");
    }
    // SIGKILL the first: its address is free once it is gone.
    let mut first = procs.remove(0);
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let again = br.lease(Some(seen[0]), None).unwrap();
    assert_eq!(again.address(), seen[0]);
    for mut p in procs {
        p.start_kill().unwrap();
        p.wait().await.unwrap();
    }
    // A killed holder's claim file is taken over, and removed when that lease ends.
    let other = br.lease(Some(seen[1]), None).unwrap();
    drop((again, held, other));
    let mine = claims_of_this_namespace();
    assert!(!mine.exists(), "{} is left", mine.display());
    br.remove().await.unwrap();
}

/// An unprivileged process cannot block a bridge's addresses: it can neither write the
/// claim files (root's directory) nor does binding the names of the abstract sockets a
/// non-root claimant would use matter to a root caller. All five addresses of a /29 are
/// still handed out while such a squatter runs, and the claim files go with the leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_process_cannot_block_addresses() {
    if !common::net::in_own_network("an_unprivileged_process_cannot_block_addresses") {
        return;
    }
    let br = Bridge::create("sbtq", "10.90.0.0/29").await.unwrap();
    // The index as this namespace's netlink sees it (sysfs may be the host's).
    let index = {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg("ip -o link show sbtq | cut -d: -f1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert!(!index.is_empty());
    let squat = format!(
        r#"
import os, socket, sys
held = []
for i in range(2, 7):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0sandbox-net/lease/sbtq/{index}/10.90.0.%d" % i)
    held.append(s)
    try:
        os.makedirs("{dir}/x", exist_ok=True)
        print("wrote the lease directory", flush=True)
    except OSError:
        pass
print("squatting", flush=True)
sys.stdin.read()
"#,
        dir = sandbox_core::net::LEASE_DIR
    );
    let mut squatter = tokio::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            &squat,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(squatter.stdout.take().unwrap()).lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "squatting");
    }
    // A claim file a dead caller left (in a namespace long gone) is swept by the first
    // claim of this process.
    let stale = std::path::Path::new(sandbox_core::net::LEASE_DIR)
        .join(format!("0-{}", std::process::id()));
    std::fs::create_dir_all(stale.join("gone-1")).unwrap();
    std::fs::write(stale.join("gone-1/10.0.0.2"), "").unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        let (child, _lines) = common::shell(
            &Sandbox::new().network(Network::bridge(&br)),
            "read x || true",
        )
        .await;
        held.push(child);
    }
    assert!(!stale.exists(), "the stale claim was not swept");
    let mut addrs: Vec<Ipv4Addr> = held.iter().map(|c| c.address().unwrap()).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        (2..7)
            .map(|i| Ipv4Addr::new(10, 90, 0, i))
            .collect::<Vec<_>>()
    );
    for mut c in held {
        drop(c.stdin.take());
        c.wait().await.unwrap();
    }
    drop(squatter.stdin.take());
    squatter.wait().await.unwrap();
    // The claim files and their directories went with the leases.
    let mine = claims_of_this_namespace();
    assert!(!mine.exists(), "{} is left", mine.display());
    br.remove().await.unwrap();
}
