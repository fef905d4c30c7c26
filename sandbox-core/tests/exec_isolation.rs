//! A process `exec`ed into a running sandbox joins namespaces where the sandbox's own
//! processes run, as root of them. Until it executes its program it holds the caller's
//! memory (a copy), so it must be unreachable from inside: no `/proc/<pid>/mem`, no
//! ptrace. This runs an attacker in the sandbox that watches for new pids and tries to open
//! their memory for writing while the caller keeps `exec`ing into the sandbox (the same
//! class of bug as runc's CVE-2016-9962).
mod common;
use sandbox_core::{Command, Namespace, Sandbox, Stdio};
use std::io::Read;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

const MARK: &str = "CALLER-SECRET-MARKER-5c1e";

/// The attacker (this test binary, re-run inside the sandbox): for a few seconds, open
/// every new pid's /proc/<pid>/mem read-write; report how many it got that map the
/// caller's executable, and whether it found (and overwrote) the marker.
#[test]
fn attacker() {
    let Ok(exe_hint) = std::env::var("SANDBOX_TEST_ATTACKER") else {
        return;
    };
    let (mut opened, mut found) = (0u32, false);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) && !found {
        let Ok(last) = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid") else {
            continue;
        };
        let last: i32 = last.trim().parse().unwrap_or(0);
        for pid in last..=last + 2 {
            let Ok(mem) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/mem"))
            else {
                continue;
            };
            let mut maps = String::new();
            if std::fs::File::open(format!("/proc/{pid}/maps"))
                .and_then(|mut f| f.read_to_string(&mut maps))
                .is_err()
                || !maps.contains(&exe_hint)
            {
                continue;
            }
            // Not ourselves (this binary is the caller's too), nor a thread of ours.
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let tgid = status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .unwrap_or("")
                .trim();
            if tgid == std::process::id().to_string() {
                continue;
            }
            opened += 1;
            use std::os::unix::fs::FileExt;
            for line in maps.lines().filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|p| p.starts_with("rw"))
            }) {
                let range = line.split_whitespace().next().unwrap_or("");
                let (a, b) = range.split_once('-').unwrap_or(("0", "0"));
                let (a, b) = (
                    u64::from_str_radix(a, 16).unwrap_or(0),
                    u64::from_str_radix(b, 16).unwrap_or(0),
                );
                let mut buf = vec![0u8; (b - a).min(64 << 20) as usize];
                let Ok(n) = mem.read_at(&mut buf, a) else {
                    continue;
                };
                if let Some(i) = buf[..n]
                    .windows(MARK.len())
                    .position(|w| w == MARK.as_bytes())
                {
                    let _ = mem.write_at(b"PWNED!", a + i as u64);
                    found = true;
                    break;
                }
            }
        }
    }
    println!("ATTACKER opened={opened} found={found}");
}

async fn attack(sandbox: Sandbox) {
    let secret: Box<[u8]> = MARK.as_bytes().to_vec().into_boxed_slice();
    let exe = std::env::current_exe().unwrap();
    let mut attacker = sandbox
        .command(&exe)
        .args(["--exact", "attacker", "--nocapture", "--test-threads", "1"])
        .env("SANDBOX_TEST_ATTACKER", exe.to_string_lossy().as_ref())
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
    if common::inner() {
        return;
    }
    attack(Sandbox::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_cannot_be_reached_from_inside_without_a_time_namespace() {
    common::require_root();
    if common::inner() {
        return;
    }
    attack(Sandbox::new().share(Namespace::Time)).await;
}
