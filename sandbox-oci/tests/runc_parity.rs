//! The same bundle under runc and under `sandbox-runtime`: what the process sees of itself
//! is the same (hostname, ids, capabilities, `no_new_privs`, `/dev`, being PID 1, rlimits,
//! a read-only root), but for the seccomp filter this runtime adds by default.

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = "hostname; id; \
    grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status; \
    ls /dev | tr '\\n' ' '; echo; cat /proc/1/cmdline | tr '\\0' ' '; echo; ulimit -n; \
    touch /x 2>&1 | grep -c 'Read-only'; ls /proc/self/ns | tr '\\n' ' '";

fn run(runtime: &str, root: &Path, bundle: &Path, id: &str) -> String {
    let out = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .output()
        .unwrap_or_else(|e| panic!("{runtime}: {e} (scripts/test.sh installs runc)"));
    assert!(
        out.status.success(),
        "{runtime}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_bundle_looks_the_same_from_inside_under_runc_and_here() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test needs root (scripts/test.sh runs it so)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for a in [
        "sh", "hostname", "id", "grep", "ls", "tr", "cat", "touch", "echo",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let mut spec = sandbox_oci::default_spec();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", SCRIPT]);
    std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
    let state = dir.path().join("state");
    let theirs = run("runc", &state, dir.path(), "parity-runc");
    let ours = run(
        env!("CARGO_BIN_EXE_sandbox-runtime"),
        &state,
        dir.path(),
        "parity-ours",
    );
    // What differs, and is said: this runtime keeps one capability set, the effective one,
    // in every set (runc leaves the inheritable and ambient sets empty when the spec does:
    // the conversion warns), its /dev/shm is not `noexec` (warned too), and its seccomp
    // filter (not read here).
    let one_set = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with("CapInh:") && !l.starts_with("CapAmb:"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(
        one_set(&ours),
        one_set(&theirs),
        "runc:\n{theirs}\nours:\n{ours}"
    );
    assert!(theirs.lines().count() > 10, "{theirs}");
    assert!(ours.contains("CapInh:\t0000000020000420"), "{ours}");
    let c = sandbox_oci::convert(&serde_json::from_value(spec).unwrap(), dir.path()).unwrap();
    let warned: Vec<&str> = c.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        warned,
        [
            "mounts[3].options",
            "process.capabilities.inheritable",
            "process.capabilities.ambient"
        ]
    );
}
