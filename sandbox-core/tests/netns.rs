//! A named network namespace (`Netns`) outlives the sandboxes that join it until its owner
//! removes it (file and mount gone); a sandbox that joins it runs there, with `lo` up; a
//! creation abandoned at any point leaves no file and no mount. The test runs in network
//! and mount namespaces of its own (the test binary re-runs itself under `unshare`).
mod common;

use sandbox_core::{Network, Sandbox};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_netns_outlives_its_sandbox_until_its_owner_removes_it() {
    if !common::net::in_own_network_and_mounts(
        "a_named_netns_outlives_its_sandbox_until_its_owner_removes_it",
    ) {
        return;
    }
    use sandbox_core::net::Netns;
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::create_in(dir.path(), "sbt-ns").await.unwrap();
    let ino = std::fs::metadata(ns.path()).unwrap().ino();
    assert_ne!(ino, std::fs::metadata("/proc/self/ns/net").unwrap().ino());
    // A sandbox joins it: it is in that namespace (its inode), and lo is up there.
    let out = Sandbox::new()
        .network(Network::join(&ns))
        .command("/bin/sh")
        .arg("-c")
        .arg("stat -L -c %i /proc/self/ns/net; ip -o link show lo | grep -c UP")
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{ino}\n1\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The sandbox is gone; the namespace is not.
    assert_eq!(std::fs::metadata(ns.path()).unwrap().ino(), ino);
    let again = Netns::open(ns.path()).unwrap();
    assert_eq!(again.path(), ns.path());
    assert!(Netns::open("/etc/hostname").is_err());
    let path = ns.path().to_path_buf();
    ns.remove().unwrap();
    assert!(!path.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("sbt-ns"), "{mounts}");
    // Creations abandoned at any point (the future dropped by a timeout) leave no file and
    // no mount; those that finished are removed by their owner.
    let abandon = tempfile::tempdir().unwrap();
    let mut finished = 0;
    for i in 0..60u64 {
        let made = tokio::time::timeout(
            Duration::from_micros(i * 25),
            Netns::create_in(abandon.path(), &format!("ns{i}")),
        )
        .await;
        if let Ok(ns) = made {
            ns.unwrap().remove().unwrap();
            finished += 1;
        }
    }
    let gone = || {
        std::fs::read_dir(abandon.path()).unwrap().count() == 0
            && !std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(abandon.path().to_str().unwrap())
    };
    assert!(
        common::eventually(Duration::from_secs(5), gone),
        "left: {:?}",
        std::fs::read_dir(abandon.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(
        finished < 60,
        "no creation was abandoned: the test proved nothing"
    );
}
