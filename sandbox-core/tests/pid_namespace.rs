//! A sandbox has a PID namespace of its own: the program is PID 2 under the init (PID 1 with
//! `init(false)`), `/proc` and `ps` inside show only the sandbox's processes, and PID 1
//! holds nothing of the caller (it is the small built-in init, not a copy of the caller's
//! memory).
mod common;
use sandbox_core::Sandbox;

fn pids_in(listing: &str) -> Vec<u32> {
    listing
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[tokio::test]
async fn program_is_pid_2_under_the_init_and_sees_only_the_sandbox() {
    common::require_root();
    // Report our pid and every pid in /proc, then stay until told to go.
    let (mut child, mut lines) = common::shell(
        &Sandbox::new(),
        "echo $$; cd /proc && echo [0-9]*; read x || true",
    )
    .await;
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

/// PID 1 holds nothing of the embedding application: it is the small built-in init,
/// executed from its own image, not a copy of the caller's memory.
#[tokio::test]
async fn the_init_holds_nothing_of_the_caller() {
    common::require_root();
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    // Reading the (non-dumpable) init's maps takes CAP_SYS_PTRACE.
    let out = Sandbox::new()
        .capability(sandbox_core::Capability::SysPtrace)
        .command("/bin/sh")
        .arg("-c")
        .arg("tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/maps")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let cmdline = lines.next().unwrap();
    assert!(cmdline.starts_with("sandbox-init "), "{cmdline}");
    assert!(
        cmdline.ends_with("/bin/sh -c tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/maps "),
        "{cmdline}"
    );
    let maps: Vec<&str> = lines.collect();
    assert!(
        !maps
            .iter()
            .any(|m| m.contains(me.to_str().unwrap()) || m.contains("libc")),
        "the init maps the caller's program or libraries: {maps:#?}"
    );
    assert!(
        maps.iter().any(|m| m.contains("memfd:sandbox-init")),
        "{maps:#?}"
    );
    // Its code, its static data (the stack it starts programs on, a reused sandbox's
    // snapshot), the vDSO's three, its stack, vsyscall.
    assert!(maps.len() <= 10, "{maps:#?}");
}
