//! A sandbox has a hostname of its own: the one it was given (`sandbox` by default, in
//! `$HOSTNAME` too), as it reads it and as the host sees it in its UTS namespace, while the
//! host keeps its own; a sandbox that shares the UTS namespace sees the host's.
mod common;
use sandbox_core::{Namespace, Sandbox};

#[tokio::test]
async fn hostname_is_set_inside_and_host_keeps_its_own() {
    common::require_root();
    let before = nix::unistd::gethostname().unwrap();
    let out = Sandbox::new()
        .hostname("box-one")
        .command("/bin/cat")
        .arg("/proc/sys/kernel/hostname")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "box-one\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

/// Read from the host: enter the running sandbox's UTS namespace with nsenter.
#[tokio::test]
async fn the_hosts_view_of_the_sandboxs_uts_namespace() {
    common::require_root();
    let mut child = Sandbox::new()
        .hostname("seen-from-host")
        .command("/bin/sleep")
        .arg("100")
        .spawn()
        .await
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let out = std::process::Command::new("nsenter")
        .args(["--target", &pid, "--uts", "hostname"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "seen-from-host\n");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn default_hostname_is_sandbox_and_env_says_so() {
    common::require_root();
    let out = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg("cat /proc/sys/kernel/hostname; echo $HOSTNAME")
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sandbox\nsandbox\n");
}

#[tokio::test]
async fn shared_uts_sees_the_host_name() {
    common::require_root();
    let host = nix::unistd::gethostname().unwrap();
    let out = Sandbox::new()
        .share(Namespace::Uts)
        .command("/bin/cat")
        .arg("/proc/sys/kernel/hostname")
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        host.to_string_lossy()
    );
}
