//! The host's kernel settings stay as they are: a sandboxed program cannot write
//! `/proc/sys` (the hostname, `core_pattern`) or `/sys` (transparent hugepages, a cgroup
//! `release_agent`), nor set the clock or the hostname. Each attack also runs as a control
//! on the host (in a UTS namespace of its own where it would change something), where it
//! works (see `common/escape.rs`).
mod common;

use common::escape::{blocked, escapes_without_sandbox, sandbox, SERIAL};

fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[tokio::test]
async fn proc_sys_and_sys_cannot_be_written() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let host = hostname();
    let agent = "/sys/fs/cgroup/memory/release_agent";
    let agent_before = std::fs::read_to_string(agent).ok();
    // Owned by the host's root (EACCES) and read-only besides (EROFS). The control writes
    // in a UTS namespace of its own.
    blocked(
        &["write", "/proc/sys/kernel/hostname", "escaped"],
        &["EACCES", "EROFS"],
    )
    .await;
    escapes_without_sandbox(
        &["unshare", "-u"],
        &["write", "/proc/sys/kernel/hostname", "escaped"],
    );
    // core_pattern runs a program as the host's root on a crash (a classic escape). The
    // attacks write back what is there, so the control run changes nothing.
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let pattern_line = pattern.trim_end().to_string();
    blocked(
        &["write", "/proc/sys/kernel/core_pattern", &pattern_line],
        &["EACCES", "EROFS"],
    )
    .await;
    escapes_without_sandbox(
        &[],
        &["write", "/proc/sys/kernel/core_pattern", &pattern_line],
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        pattern
    );
    let thp = "/sys/kernel/mm/transparent_hugepage/enabled";
    let thp_before = std::fs::read_to_string(thp).unwrap();
    let thp_now = thp_before
        .split(['[', ']'])
        .nth(1)
        .expect("the current setting in brackets")
        .to_string();
    blocked(&["write", thp, &thp_now], &["EACCES", "EROFS"]).await;
    escapes_without_sandbox(&[], &["write", thp, &thp_now]);
    assert_eq!(std::fs::read_to_string(thp).unwrap(), thp_before);
    // The cgroup release_agent (CVE-2022-0492): no cgroup tree is mounted in the
    // sandbox's /sys, and none can be (cgroup-mount above).
    let agent_now = agent_before.clone().unwrap_or_default();
    let agent_now = agent_now.trim_end();
    blocked(&["write", agent, agent_now], &["ENOENT", "EROFS"]).await;
    escapes_without_sandbox(&[], &["write", agent, agent_now]);
    assert_eq!(hostname(), host);
    assert_eq!(std::fs::read_to_string(agent).ok(), agent_before);
}

#[tokio::test]
async fn the_clock_and_the_hostname_stay_as_they_are() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let host = hostname();
    // settimeofday(NULL, NULL): the right to set the clock, checked, nothing changed.
    blocked(&["settimeofday"], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["settimeofday"]);
    // (This one sets the clock to the time it reads; no control run: it would set the
    // host's clock.)
    blocked(&["clock-settime"], &["EPERM"]).await;
    blocked(&["sethostname", "escaped"], &["EPERM"]).await;
    escapes_without_sandbox(&["unshare", "-u"], &["sethostname", "escaped"]);
    assert_eq!(hostname(), host);
    let out = sandbox()
        .hostname("kept")
        .command("/bin/hostname")
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"kept\n");
}
