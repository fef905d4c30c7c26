//! 2. The program is PID 2 under the init (PID 1 with `init(false)`), and `/proc` and `ps`
//!    inside show only the sandbox's processes.
mod common;
use sandbox_core::{Sandbox, Stdio};
use tokio::io::{AsyncBufReadExt, BufReader};

fn pids_in(listing: &str) -> Vec<u32> {
    listing
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[tokio::test]
async fn program_is_pid_2_under_the_init_and_sees_only_the_sandbox() {
    common::require_root();
    let mut child = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        // Report our pid and every pid in /proc, then stay until told to go.
        .arg("echo $$; cd /proc && echo [0-9]*; read x || true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .await
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let me = lines.next_line().await.unwrap().unwrap();
    let seen = pids_in(&lines.next_line().await.unwrap().unwrap());
    assert_eq!(me, "2");
    // init (1), the shell (2), and nothing of the host's.
    assert_eq!(seen, vec![1, 2], "processes visible inside");

    // From the host: the init is our child, the shell the init's child, with NSpid 1 and 2.
    let init = child.id().unwrap();
    let ns = common::status_field(init, "NSpid").unwrap();
    assert_eq!(ns, vec![init.to_string(), "1".to_string()]);
    let kids = common::children_of(init);
    assert_eq!(kids.len(), 1, "init has exactly the program as child");
    let prog_ns = common::status_field(kids[0], "NSpid").unwrap();
    assert_eq!(prog_ns, vec![kids[0].to_string(), "2".to_string()]);
    // Host pids are many; none of them leaked in.
    let host_pids = std::fs::read_dir("/proc")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .parse::<u32>()
                .is_ok()
        })
        .count();
    assert!(host_pids > 2);
    drop(child.stdin.take());
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn without_init_the_program_is_pid_1() {
    common::require_root();
    let out = Sandbox::new()
        .init(false)
        .command("/bin/sh")
        .arg("-c")
        .arg("echo $$; ps -e -o pid= | wc -l")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut l = text.lines();
    assert_eq!(l.next(), Some("1"));
    // sh, ps and wc (ps lists sh, ps, and the pipe's subshell/wc at most).
    let n: u32 = l.next().unwrap().trim().parse().unwrap();
    assert!((2..=4).contains(&n), "ps inside saw {n} processes: {text}");
}

#[tokio::test]
async fn ps_inside_lists_only_the_sandbox() {
    common::require_root();
    let out = Sandbox::new()
        .command("/bin/ps")
        .args(["-e", "-o", "pid=,comm="])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<u32> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(pids, vec![1, 2], "{text}");
    assert!(text.contains("sandbox-init"), "{text}");
}

/// The init is a copy of the embedding application's memory: sandboxed code, root inside,
/// must not be able to read it.
#[tokio::test]
async fn the_inits_memory_is_not_readable_inside() {
    common::require_root();
    let secret = "parent-secret-4711";
    std::hint::black_box(secret.to_string());
    let out = Sandbox::new()
        .command("/bin/sh")
        .arg("-c")
        .arg("cat /proc/1/environ && echo READ-ENV; head -c 64 /proc/1/mem && echo READ-MEM; grep -c heap /proc/1/maps && echo READ-MAPS; true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("READ-"), "{stdout}");
    assert!(!stdout.contains(secret));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("Permission denied").count(), 3, "{stderr}");
}
