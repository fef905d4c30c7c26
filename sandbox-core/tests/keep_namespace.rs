//! A namespace kept with `keep_namespace` outlives its sandbox: a later sandbox joins it
//! (the same inode, and the hostname set in it) while its other namespaces are new; and
//! `remove` takes away the file it was kept at.
mod common;
use sandbox_core::{Namespace, NamespaceIds, Sandbox, Stdio};

#[tokio::test]
async fn kept_namespace_is_joined_by_a_later_sandbox() {
    common::require_root();
    // The bind mounts live in a private mount namespace of this test's own.
    if common::in_private_mount_namespace("kept_namespace_is_joined_by_a_later_sandbox") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut first = Sandbox::new()
        .hostname("kept-uts")
        .command("/bin/sleep")
        .arg("1000")
        .spawn()
        .await
        .unwrap();
    let ids = first.namespace_ids().unwrap();
    let uts = first
        .keep_namespace(Namespace::Uts, dir.path().join("uts"))
        .unwrap();
    let net = first
        .keep_namespace(Namespace::Net, dir.path().join("net"))
        .unwrap();
    assert_eq!(uts.id().unwrap(), ids.uts);
    assert_eq!(net.id().unwrap(), ids.net);
    first.kill().await.unwrap();

    let mut later = Sandbox::new()
        .join(Namespace::Uts, uts.path())
        .join(Namespace::Net, net.path())
        .command("/bin/sh")
        .arg("-c")
        .arg("hostname; read x || true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .await
        .unwrap();
    let later_ids = later.namespace_ids().unwrap();
    assert_eq!(later_ids.uts, ids.uts);
    assert_eq!(later_ids.net, ids.net);
    assert_ne!(later_ids.pid, ids.pid);
    assert_ne!(later_ids.user, ids.user);
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(later.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "kept-uts");
    drop(later.stdin.take());
    assert!(later.wait().await.unwrap().success());

    uts.remove().unwrap();
    net.remove().unwrap();
    assert!(!dir.path().join("uts").exists());
    assert_ne!(NamespaceIds::of_self().unwrap().uts, ids.uts);
}
