//! A process `exec`ed into a running sandbox joins namespaces where the sandbox's own
//! processes run, as root of them. Until it executes its program it holds the caller's
//! memory (a copy), so it must be unreachable from inside: no `/proc/<pid>/mem`, no
//! ptrace. This runs an attacker (`tests/exec_isolation/attacker.c`) in the sandbox that
//! watches for new pids and tries to open their memory for writing while the caller keeps
//! `exec`ing into the sandbox (the same class of bug as runc's CVE-2016-9962).
mod common;
use sandbox_core::{Command, Namespace, Sandbox, Stdio};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const MARK: &str = "CALLER-SECRET-MARKER-5c1e";

/// The attacker (`tests/exec_isolation/attacker.c`), built once: for a few seconds it
/// opens every new pid's /proc/<pid>/mem read-write, and reports how many it got that map
/// the caller's executable and whether it found (and overwrote) the marker in one.
fn attacker() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BUILT
        .get_or_init(|| common::compile_c("exec_isolation/attacker.c"))
        .1
}

async fn attack(sandbox: Sandbox) {
    let secret: Box<[u8]> = MARK.as_bytes().to_vec().into_boxed_slice();
    let exe = std::env::current_exe().unwrap();
    let mut attacker = sandbox
        .command(attacker())
        .arg(&exe)
        .arg(MARK)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..150 {
        let Ok(mut c) = attacker.exec(&Command::new("/bin/true")).await else {
            break;
        };
        c.wait().await.unwrap();
        if attacker.try_wait().unwrap().is_some() {
            break;
        }
    }
    let mut out = String::new();
    let mut stdout = attacker.stdout.take().unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), stdout.read_to_string(&mut out)).await;
    let _ = attacker.kill().await;
    assert_eq!(
        &*secret,
        MARK.as_bytes(),
        "the sandbox wrote into the caller's memory"
    );
    let report = out
        .lines()
        .find_map(|l| l.find("ATTACKER ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no report: {out:?}"));
    assert_eq!(report, "ATTACKER opened=0 found=false", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_cannot_be_reached_from_inside() {
    common::require_root();
    attack(Sandbox::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_cannot_be_reached_from_inside_without_a_time_namespace() {
    common::require_root();
    attack(Sandbox::new().share(Namespace::Time)).await;
}
