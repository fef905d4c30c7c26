//! 1. The hostname is set inside the sandbox; the host's hostname does not change.
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
