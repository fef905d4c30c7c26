//! The README's main job, `examples/run/`, run as a user runs it: its output, its exit
//! status, its `--json` line, its errors.
mod common;
use std::path::PathBuf;
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(common::example("run"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `/bin/sh -c script` under the example with `flags`.
fn run_sh(flags: &[&str], script: &str) -> (Option<i32>, String, String) {
    run(&[flags, &["--", "/bin/sh", "-c", script]].concat())
}

/// Runs the example with `args`, which it must refuse: exit status `code` (2: a flag clap
/// refused; 125: the sandbox could not be made) and `says` in its standard error, which
/// is returned.
fn refused(args: &[&str], code: i32, says: &str) -> String {
    let (got, _, err) = run(args);
    assert_eq!(got, Some(code), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    err
}

#[test]
fn without_a_program_it_shows_the_isolation() {
    common::require_root();
    let (code, out, err) = run(&["--hostname", "demo"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("hostname: demo"), "{out}");
    assert!(out.contains("uid=0(root)"), "{out}");
    // ps inside: the init and the shell, nothing of the host.
    assert!(out.contains("sandbox-init"), "{out}");
    assert!(out.contains("mount table"), "{out}");
    assert!(out.contains(" /proc "), "{out}");
}

#[test]
fn it_passes_stdio_through_and_exits_with_the_programs_status() {
    common::require_root();
    let (code, out, err) = run_sh(&["--json"], "echo out; echo err >&2; exit 3");
    assert_eq!(code, Some(3));
    assert_eq!(out, "out\n");
    let mut lines = err.lines();
    assert_eq!(lines.next(), Some("err"));
    let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(json["ending"]["exited"], 3);
    assert!(json["wall_time_ms"].as_f64().unwrap() > 0.0);
    let (code, _, err) = run_sh(&["--json"], "kill -9 $$");
    assert_eq!(code, Some(128 + 9));
    assert!(err.contains(r#""signaled":9"#), "{err}");
}

#[test]
fn its_errors_are_actionable() {
    common::require_root();
    let (code, _, err) = run(&["--", "/no/such"]);
    assert_eq!(code, Some(127));
    let mut lines = err.lines();
    assert_eq!(
        lines.next(),
        Some("run: exec /no/such: No such file or directory (ENOENT)")
    );
    // What to do about it.
    assert!(
        lines
            .next()
            .is_some_and(|l| l.contains("inside the sandbox's root")),
        "{err}"
    );
    refused(
        &["--net", "bridge:sbxnosuchbr0", "--", "/bin/true"],
        125,
        "--net bridge:NAME:10.88.0.0/24",
    );
    let cache = tempfile::tempdir().unwrap();
    let err = refused(
        &[
            "--image",
            "/etc/passwd",
            "--image-cache",
            cache.path().to_str().unwrap(),
            "--",
            "/bin/true",
        ],
        125,
        "not a tar archive",
    );
    // (Nor does it show the file it could not read.)
    assert!(!err.contains("root:x:0"), "{err}");
    refused(
        &["--rootfs", "/no/such/root", "--", "/bin/true"],
        125,
        "rootfs /no/such/root",
    );
    refused(&["--net", "wifi"], 2, "unknown network \"wifi\"");
}

#[test]
fn it_takes_a_directory_root_and_the_hosts_network() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    common::mini_rootfs(dir.path(), &["/bin/sh", "/bin/ls"]);
    let (code, out, err) = run_sh(
        &["--rootfs", dir.path().to_str().unwrap(), "--net", "host"],
        "ls /",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.lines().any(|l| l == "bin") && !out.lines().any(|l| l == "work"),
        "{out}"
    );
}

/// The filesystem flags: a read-only bind, a sized tmpfs, a file, an overlay; the default
/// root is the host's system directories, read-only.
#[test]
fn it_takes_mounts_and_overlays() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "given\n").unwrap();
    let src = dir.path().join("main.c");
    std::fs::write(&src, "int main;\n").unwrap();
    let (code, out, err) = run_sh(
        &[
            "--bind",
            &format!("{}:/data:ro", data.display()),
            "--tmpfs",
            "/scratch:1M",
            "--file",
            &format!("/sub/main.c={}", src.display()),
        ],
        "cat /data/in.txt /sub/main.c; touch /data/x 2>&1; df -k /scratch | tail -1; touch /x 2>&1",
    );
    assert_eq!(code, Some(1), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..2], ["given", "int main;"], "{out}");
    assert!(lines[2].contains("Read-only file system"), "{out}");
    assert!(lines[3].contains(" 1024 "), "{out}");
    assert!(lines[4].contains("Read-only file system"), "{out}");
    let (code, out, err) = run_sh(&["--overlay", "/"], "echo w > /usr/new && cat /usr/new");
    assert_eq!((code, out.as_str()), (Some(0), "w\n"), "{err}");
    assert!(!std::path::Path::new("/usr/new").exists());
    refused(
        &["--bind", "/no/such:/x", "--", "/bin/true"],
        125,
        "bind source /no/such",
    );
}

/// `--image` runs a tarball's tree (imported into `--image-cache`), `--upper` keeps its
/// writes, `--rootfs-writable` lets the sandbox write its tree, and `--upper` without a
/// layer to keep is refused.
#[test]
fn it_takes_images_kept_writes_and_writable_roots() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    common::busybox_rootfs(&tree, &["sh", "cat"]);
    let tar = dir.path().join("tree.tar");
    std::fs::write(&tar, common::tar_of_tree(&tree)).unwrap();
    let (cache, upper) = (dir.path().join("cache"), dir.path().join("keep"));
    let (code, out, err) = run_sh(
        &[
            "--image",
            tar.to_str().unwrap(),
            "--image-cache",
            cache.to_str().unwrap(),
            "--upper",
            upper.to_str().unwrap(),
            "--hostname",
            "img",
        ],
        "echo kept > /new; cat /etc/hostname /new",
    );
    assert_eq!((code, out.as_str()), (Some(0), "img\nkept\n"), "{err}");
    assert_eq!(
        std::fs::read_to_string(upper.join("upper/new")).unwrap(),
        "kept\n"
    );
    assert!(!tree.join("new").exists());
    // Writable: the sandbox's root (host uid 524288 under the default maps) owns the tree.
    std::os::unix::fs::chown(&tree, Some(524288), Some(524288)).unwrap();
    let (code, _, err) = run_sh(
        &["--rootfs", tree.to_str().unwrap(), "--rootfs-writable"],
        "echo w > /written",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        std::fs::read_to_string(tree.join("written")).unwrap(),
        "w\n"
    );
    refused(
        &[
            "--rootfs",
            tree.to_str().unwrap(),
            "--upper",
            upper.to_str().unwrap(),
            "--",
            "/bin/true",
        ],
        125,
        "--upper",
    );
}

/// `--net bridge:NAME:CIDR` creates the bridge and puts the sandbox on it (run inside a
/// network namespace of the test's own, never the machine's).
#[test]
fn it_puts_a_sandbox_on_a_bridge() {
    common::require_root();
    let text = common::stdout_of(
        Command::new("unshare")
            .arg("-n")
            .arg(common::example("run"))
            .args([
                "--net",
                "bridge:sbtr0:10.91.0.0/24",
                "--ip",
                "10.91.0.7",
                "--add-host",
                "db:10.91.0.9",
                "--hostname",
                "web",
                "--",
                "/bin/sh",
                "-c",
                "ip -4 -o addr show eth0 | awk '{print $4}'; ip route | grep default; grep -E 'web|db' /etc/hosts",
            ]),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "10.91.0.7/24", "{text}");
    assert!(
        lines[1].starts_with("default via 10.91.0.1 dev eth0"),
        "{text}"
    );
    assert_eq!(lines[2..], ["10.91.0.7\tweb", "10.91.0.9\tdb"], "{text}");
    refused(
        &["--net", "bridge:averyveryverylongname", "--", "/bin/true"],
        2,
        "longer than 15 bytes",
    );
    // Bridge-only options without a bridge are mistakes, not ignored.
    for args in [
        &["--net", "loopback", "--ip", "10.91.0.7"][..],
        &["--add-host", "db:10.91.0.9"][..],
        &["--nat"][..],
    ] {
        let mut a = args.to_vec();
        a.extend(["--", "/bin/true"]);
        refused(&a, 125, "needs --net bridge:NAME");
    }
}

/// `--nat` masquerades the bridge's subnet (the sandbox gets the host's name servers that
/// it can reach), and a subnet given for an existing bridge must be the bridge's own.
#[test]
fn it_turns_nat_on_and_checks_an_existing_bridges_subnet() {
    common::require_root();
    let run = common::example("run");
    let run = run.to_str().unwrap();
    let script = format!(
        "ip link set lo up && \
         {{ {run} --net bridge:sbtr2:10.94.0.0/24 --nat --upper /nonexistent -- /bin/true; \
            echo refused=$? fwd=$(cat /proc/sys/net/ipv4/ip_forward) \
            made=$(ip -o link show | grep -c sbtr2); }} && \
         {run} --net bridge:sbtr1:10.92.0.0/24 --nat -- /bin/cat /etc/resolv.conf && \
         echo second: && {run} --net bridge:sbtr1 -- /bin/cat /etc/resolv.conf && \
         echo bridge left: $(ip -o link show sbtr1 | grep -c sbtr1) && \
         {{ {run} --net bridge:sbtr1:10.93.0.0/24 -- /bin/true; echo rc=$?; }}"
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}{err}");
    // Both runs (the second finds the NAT the first turned on) get the host's reachable
    // name servers.
    let (first, second) = text.split_once("second:\n").expect("two runs");
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    for line in host.lines().filter(|l| l.starts_with("nameserver")) {
        let addr: std::net::IpAddr = line["nameserver".len()..].trim().parse().unwrap();
        let reachable = addr.is_ipv4() && !addr.is_loopback();
        for run in [first, second] {
            assert_eq!(run.lines().any(|l| l == line), reachable, "{line}: {text}");
        }
    }
    assert!(text.contains("bridge left: 1"), "{text}");
    // A refused command changed nothing: no bridge made, forwarding not turned on.
    assert!(text.starts_with("refused=125 fwd=0 made=0\n"), "{text}");
    assert!(text.ends_with("rc=125\n"), "{text}");
    assert!(
        err.contains("bridge sbtr1 exists with subnet 10.92.0.0/24, not 10.93.0.0/24"),
        "{err}"
    );
}

/// The limit flags: the output is relayed and cut at the limit, the wall time ends the
/// run, `--json` carries the ending and the usage.
#[test]
fn it_enforces_limits_and_reports_them() {
    common::require_root();
    let (code, out, err) = run_sh(&["--output-limit", "20", "--json"], "yes hello");
    assert_eq!(code, Some(137), "{err}");
    assert_eq!(out, "hello\n".repeat(3) + "he");
    assert!(err.contains(r#""ending":"output_limit_exceeded""#), "{err}");
    assert!(err.contains(r#""output_truncated":true"#), "{err}");
    let (code, _, err) = run_sh(
        &[
            "--time", "200ms", "--memory", "64M", "--pids", "16", "--json",
        ],
        "while :; do :; done",
    );
    assert_eq!(code, Some(137), "{err}");
    assert!(err.contains(r#""ending":"wall_time_exceeded""#), "{err}");
    assert!(
        err.contains(r#""peak_memory":"#) && err.contains(r#""cpu_user_ms":"#),
        "{err}"
    );
    refused(&["--time", "0s", "--", "/bin/true"], 125, "wall time limit");
}

/// The hardening flags: every protection on with no flag, each flag opening exactly what
/// it names.
#[test]
fn it_hardens_by_default_and_takes_security_flags() {
    common::require_root();
    let status = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status";
    let (code, out, err) = run_sh(&[], status);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    let (code, out, err) = run_sh(&["--cap", "net_raw", "--seccomp", "off"], status);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("CapEff:\t0000000000002000"), "{out}");
    assert!(out.contains("Seccomp:\t0"), "{out}");
    // A call allowed or denied by name.
    let (code, _, err) = run_sh(&[], "unshare -U true");
    assert_ne!(code, Some(0), "{err}");
    let (code, _, err) = run(&["--deny-syscall", "uname", "--", "/bin/uname"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    // Landlock: only what is named opens.
    let (code, out, err) = run_sh(
        &[
            "--landlock-ro",
            "/usr",
            "--landlock-ro",
            "/bin",
            "--landlock-ro",
            "/lib",
            "--landlock-ro",
            "/lib64",
        ],
        "cat /etc/hostname || echo refused",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("refused"), "{out}");
    // Bad names are errors that say what is wrong, before anything runs.
    refused(&["--cap", "net_rwa", "--", "/bin/true"], 2, "net_rwa");
    let (code, _, err) = run(&["--allow-syscall", "ptraec", "--", "/bin/true"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("no system call named \"ptraec\""), "{err}");
}

#[test]
fn it_gives_a_terminal_with_pty() {
    common::require_root();
    let (code, out, err) = run_sh(&["--pty"], "tty -s && echo on-a-terminal; exit 4");
    assert_eq!(code, Some(4), "{err}");
    assert!(out.contains("on-a-terminal"), "{out}");
    // Without it the program has none (its stdio here is not a terminal anyway, and it is
    // in a session of its own).
    let (code, out, err) = run_sh(&[], "tty -s || echo no-terminal");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("no-terminal"), "{out}");
}

fn profile(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/profiles")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `--profile FILE` loads a whole sandbox description (TOML or JSON); flags typed on the
/// command line apply on top; a bad profile is an error naming the file, line and field.
#[test]
fn it_loads_profiles_and_flags_apply_on_top() {
    common::require_root();
    let look = "hostname; ip -o link 2>/dev/null | wc -l; ls -d /work 2>&1; \
                grep -c . /proc/self/cgroup >/dev/null; echo done";
    // The judge profile: its hostname, no network (lo only), no /work.
    let (code, out, err) = run_sh(&["--profile", &profile("judge.toml")], look);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "judge", "{out}");
    assert!(lines[2].contains("No such file"), "{out}");
    // Its limits: the wall time (5 s) ends a sleeper, and --json says so.
    let (code, _, err) = run(&[
        "--profile",
        &profile("judge.toml"),
        "--time",
        "300ms",
        "--json",
        "--",
        "/bin/sleep",
        "30",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("wall_time_exceeded"), "{err}");
    // JSON, with a flag on top.
    let (code, out, err) = run_sh(
        &["--profile", &profile("build.json"), "--hostname", "mine"],
        look,
    );
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "mine", "{out}");
    assert_eq!(lines[2], "/work", "{out}");
    // Landlock and an extra seccomp rule from a profile.
    let (code, out, err) = run_sh(
        &["--profile", &profile("locked-down.toml")],
        "cat /etc/hostname 2>/dev/null || echo refused; echo x > /tmp/f && echo wrote",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "refused\nwrote\n");
    // A typo is an error that points at it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "hostname = \"x\"\nhostnme = \"typo\"\n").unwrap();
    let args = ["--profile", bad.to_str().unwrap(), "--", "/bin/true"];
    let err = refused(&args, 125, "unknown field `hostnme`");
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
    refused(
        &["--profile", "/no/such.json", "--", "/bin/true"],
        125,
        "/no/such.json",
    );
}

/// `--help` reads like a manual: what it does, options by topic, exit statuses, examples.
#[test]
fn its_help_reads_like_a_manual() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for part in [
        "bubblewrap-like",
        "Root filesystem:",
        "Mounts:",
        "Network:",
        "Limits:",
        "Security:",
        "125 when the sandbox could not be made",
        "Examples:",
        "--profile examples/profiles/judge.toml",
    ] {
        assert!(out.contains(part), "{part:?} missing from --help:\n{out}");
    }
    let (code, short, _) = run(&["-h"]);
    assert_eq!(code, Some(0));
    assert!(
        short.len() < out.len() && !short.contains("Examples:"),
        "-h is the short form"
    );
}
