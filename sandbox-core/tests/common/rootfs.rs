//! Helpers of the root filesystem tests (`rootfs_*.rs`): one test at a time, and the lines of
//! a script's output as a set.
use std::collections::BTreeSet;

/// Several tests compare the host's mount table, this process's children and its open fds
/// before and after: the tests of this file run one at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(String::from).collect()
}
