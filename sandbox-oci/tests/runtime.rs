//! `sandbox-runtime` driven as runc is: `spec`, `run`, `state`, `list`, `kill`, `delete`,
//! checked from outside (exit codes, the state directory, the container's process on the
//! host).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox-runtime");

/// A bundle from `sandbox-runtime spec` with a busybox root and `args` as the process.
struct Bundle {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Bundle {
    fn new(args: &[&str]) -> Bundle {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        assert!(
            Path::new("/bin/busybox").is_file(),
            "/bin/busybox is missing: install busybox-static (scripts/test.sh does)"
        );
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in ["sh", "sleep", "hostname", "echo"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let root = dir.path().join("state");
        let b = Bundle { dir, root };
        let out = b
            .cmd(&["spec", "--bundle"])
            .arg(b.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        b.edit(|c| c["process"]["args"] = args.into());
        b
    }

    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.dir.path().join("config.json");
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&path, c.to_string()).unwrap();
    }

    /// The runtime with this bundle's `--root`, and `args`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    fn run(&self, id: &str) -> Command {
        let mut c = self.cmd(&["run", "--bundle"]);
        c.arg(self.dir.path()).arg(id);
        c
    }

    fn state(&self, id: &str) -> Option<Value> {
        let out = self.cmd(&["state", id]).output().unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// What `--root` holds.
    fn recorded(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `id` is running; its state.
    fn running(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.state(id).filter(|s| s["status"] == "running") {
                return s;
            }
            assert!(Instant::now() < deadline, "{id} never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn require_root() {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "these tests need root (scripts/test.sh runs them so)"
    );
}

#[test]
fn run_gives_the_containers_output_and_exit_code_and_forgets_it() {
    require_root();
    let b = Bundle::new(&["/bin/sh", "-c", "hostname; echo hi; exit 3"]);
    let pid_file = b.dir.path().join("pid");
    let out = b
        .run("c1")
        .arg("--pid-file")
        .arg(&pid_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sandbox\nhi\n");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(b.recorded().is_empty(), "{:?}", b.recorded());
    assert!(b.state("c1").is_none());
}

#[test]
fn a_running_container_is_listed_signalled_and_gone_after() {
    require_root();
    // (As PID 1 of its namespace, the process gets only the signals it handles.)
    let b = Bundle::new(&[
        "/bin/sh",
        "-c",
        "trap 'exit 7' TERM; while :; do sleep 0.05; done",
    ]);
    let mut run = b.run("c2").spawn().unwrap();
    let s = b.running("c2");
    assert_eq!(s["id"], "c2");
    assert_eq!(s["bundle"], b.dir.path().to_str().unwrap());
    let pid = s["pid"].as_i64().unwrap();
    // From the host: the container's first process, in a PID namespace of its own.
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(theirs, std::fs::read_link("/proc/self/ns/pid").unwrap());
    let list = b.cmd(&["list", "--format", "json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], "c2");
    assert_eq!(list[0]["pid"], pid);
    // Its processes, from the host: the shell and its sleep, all in its PID namespace.
    let ps = b.cmd(&["ps", "--format", "json", "c2"]).output().unwrap();
    let pids: Vec<i64> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    for p in &pids {
        assert_eq!(
            std::fs::read_link(format!("/proc/{p}/ns/pid")).unwrap(),
            theirs
        );
    }
    // The same id again: refused, and the running one untouched.
    let again = b.run("c2").output().unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(b.state("c2").unwrap()["pid"], pid);
    // SIGTERM reaches the process, which exits with its own code.
    let kill = b.cmd(&["kill", "c2", "TERM"]).output().unwrap();
    assert!(kill.status.success(), "{}", stderr(&kill));
    assert_eq!(run.wait().unwrap().code(), Some(7));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(b.recorded().is_empty());
    let gone = b.cmd(&["kill", "c2", "KILL"]).output().unwrap();
    assert!(
        stderr(&gone).contains("does not exist"),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn kept_containers_are_stopped_then_deleted_and_running_ones_need_force() {
    require_root();
    let b = Bundle::new(&["/bin/sh", "-c", "exit 0"]);
    let out = b.run("kept").arg("--keep").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = b.state("kept").unwrap();
    assert_eq!(
        (s["status"].as_str(), s["pid"].as_i64()),
        (Some("stopped"), Some(0))
    );
    assert!(b.cmd(&["delete", "kept"]).status().unwrap().success());
    assert!(b.recorded().is_empty());

    b.edit(|c| c["process"]["args"] = ["/bin/sleep", "60"].as_slice().into());
    let mut run = b.run("busy").spawn().unwrap();
    let pid = b.running("busy")["pid"].as_i64().unwrap();
    let plain = b.cmd(&["delete", "busy"]).output().unwrap();
    assert!(stderr(&plain).contains("is running"), "{}", stderr(&plain));
    assert!(b
        .cmd(&["delete", "--force", "busy"])
        .status()
        .unwrap()
        .success());
    assert_eq!(run.wait().unwrap().code(), Some(137));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(b.recorded().is_empty());
}

#[test]
fn what_cannot_be_done_is_an_error_and_leaves_nothing() {
    require_root();
    let b = Bundle::new(&["/bin/true"]);
    let fails = |args: &[&str], want: &str| {
        let out = b.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
        assert!(b.recorded().is_empty(), "{args:?}: {:?}", b.recorded());
    };
    let bundle = b.dir.path().to_str().unwrap();
    fails(&["run", "--bundle", bundle, "../escape"], "container id");
    fails(
        &["--systemd-cgroup", "run", "--bundle", bundle, "x"],
        "--systemd-cgroup",
    );
    fails(&["create", "--bundle", bundle, "x"], "not supported yet");
    fails(&["run", "--detach", "--bundle", bundle, "x"], "--detach");
    fails(&["kill", "nosuch", "KILL"], "does not exist");
    fails(&["spec", "--bundle", bundle], "exists");
    fails(&["kill", "nosuch", "40"], "not supported");
    fails(&["--log", "/nonexistent/dir/log", "list"], "--log");
    b.edit(|c| c["process"]["oomScoreAdj"] = 100.into());
    fails(&["run", "--bundle", bundle, "x"], "process.oomScoreAdj");
    b.edit(|c| {
        c["process"].as_object_mut().unwrap().remove("oomScoreAdj");
        c["process"]["terminal"] = true.into();
    });
    // Errors go to --log as JSON lines when asked.
    let log = b.dir.path().join("log.json");
    let out = b
        .cmd(&[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "run",
            "--bundle",
        ])
        .args([bundle, "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().unwrap().contains("process.terminal"),
        "{line}"
    );
    assert!(b.recorded().is_empty());
    // An id claimed by a runtime killed before it recorded the container: deleted.
    std::fs::create_dir_all(b.root.join("half")).unwrap();
    assert!(b.cmd(&["delete", "half"]).status().unwrap().success());
    assert!(b.recorded().is_empty());
}

#[test]
fn the_runtimes_supplementary_groups_stay_outside() {
    require_root();
    let b = Bundle::new(&["/bin/sh", "-c", "grep Groups /proc/self/status"]);
    // The runtime started with groups 6 and 42 (as a shim might be); the process has none,
    // as under runc (the spec lists no additionalGids).
    let out = Command::new("setpriv")
        .args(["--groups", "6,42", BIN, "--root"])
        .arg(&b.root)
        .args(["run", "--bundle"])
        .arg(b.dir.path())
        .arg("g")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "Groups:");
}

#[test]
fn without_a_user_namespace_cap_mknod_is_not_kept() {
    require_root();
    let b = Bundle::new(&["/bin/sh", "-c", "grep CapEff /proc/self/status"]);
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = serde_json::json!(["CAP_KILL", "CAP_MKNOD"]);
        }
    });
    let out = b.run("m").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // CAP_KILL (5) only; the warning said why.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("CapEff:\t{:016x}\n", 1u64 << 5)
    );
    assert!(
        stderr(&out).contains("CAP_MKNOD not kept"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn features_and_version_are_documents() {
    let out = Command::new(BIN).arg("features").output().unwrap();
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], sandbox_oci::OCI_VERSION);
    assert_eq!(f["linux"]["capabilities"].as_array().unwrap().len(), 41);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("spec: 1.2.0"));
}
