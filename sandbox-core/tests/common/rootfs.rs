//! Helpers of the root filesystem tests (`rootfs_*.rs`): one test at a time, and a shell
//! script's output from inside a sandbox.
use sandbox_core::{Output, Sandbox};
use std::collections::BTreeSet;

/// Several tests compare the host's mount table, this process's children and its open fds
/// before and after: the tests of this file run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn run(sandbox: &Sandbox, script: &str) -> Output {
    sandbox
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .await
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(String::from).collect()
}
