//! A runtime spec becomes a sandbox that runs as the spec says (checked by running it), and
//! every field the runtime cannot apply is a typed error naming that field.

use sandbox_oci::{Bundle, OciError};
use serde_json::{json, Value};
use std::path::Path;

/// runc's `runc spec` (1.1), with `sh -c SCRIPT` as the process and a hostname.
fn runc_default(script: &str) -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "oci-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    })
}

/// A bundle directory: `config.json` and a busybox root (Debian's `busybox-static`).
fn bundle(dir: &Path, spec: &Value) {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install busybox-static (scripts/test.sh does)"
    );
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "hostname", "cat", "grep", "id", "readlink", "ls"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
}

#[tokio::test]
async fn runcs_default_spec_runs_as_it_says() {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test needs root (scripts/test.sh runs it so)"
    );
    let dir = tempfile::tempdir().unwrap();
    bundle(
        dir.path(),
        &runc_default(
            "hostname; id -u; grep CapEff /proc/self/status; echo $TERM; \
             readlink /proc/self/ns/user; readlink /proc/self/ns/pid; ls /dev/mqueue 2>&1 | grep -c 'No such'",
        ),
    );
    let c = Bundle::load(dir.path()).unwrap().convert().unwrap();
    assert!(!c.terminal);
    // What it leaves out, said: /dev/mqueue and the cgroup mount, the device rules, and
    // the inheritable set runc's spec leaves empty (every set holds the effective one).
    let fields: Vec<&str> = c.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "linux.resources.devices",
            "mounts[3].options",
            "mounts[4]",
            "mounts[6]",
            "process.capabilities.inheritable"
        ],
        "{:?}",
        c.warnings
    );
    let mut command = c.command;
    command.stdout(sandbox_core::Stdio::piped());
    let out = command.output().await.unwrap();
    assert!(out.status.success(), "{:?}", out);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "oci-test");
    assert_eq!(lines[1], "0");
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29), nothing else.
    let caps = (1u64 << 5) | (1 << 10) | (1 << 29);
    assert_eq!(lines[2], format!("CapEff:\t{caps:016x}"));
    assert_eq!(lines[3], "xterm");
    // No user namespace in the spec: the host's; a PID namespace of its own.
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap();
    let host_pid = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_eq!(lines[4], host_user.to_str().unwrap());
    assert_ne!(lines[5], host_pid.to_str().unwrap());
    assert_eq!(lines[6], "1");
}

#[test]
fn what_cannot_be_applied_is_an_error_naming_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = runc_default("true");
    bundle(dir.path(), &base);
    // (a change to the spec, the field the error must name)
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str)> = vec![
        (|s| s["process"]["cwd"] = json!("relative"), "process.cwd"),
        (
            |s| s["process"]["env"] = json!(["NOEQUALS"]),
            "process.env[0]",
        ),
        (|s| s["process"]["args"] = json!([]), "process.args"),
        (
            |s| s["process"]["user"]["uid"] = json!(1000),
            "process.user",
        ),
        (
            |s| s["process"]["user"]["additionalGids"] = json!([5]),
            "process.user.additionalGids",
        ),
        (
            |s| s["process"]["oomScoreAdj"] = json!(100),
            "process.oomScoreAdj",
        ),
        (
            |s| s["process"]["rlimits"] = json!([{"type": "RLIMIT_NPROC", "hard": 10, "soft": 10}]),
            "process.rlimits[0]",
        ),
        (
            |s| s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 5}]),
            "process.rlimits[0]",
        ),
        (|s| s["root"]["path"] = json!("missing"), "root.path"),
        (|s| s["domainname"] = json!("example"), "domainname"),
        (
            |s| s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}),
            "linux.sysctl",
        ),
        (
            |s| s["mounts"] = json!([{"destination": "/mnt", "type": "nfs", "source": "x"}]),
            "mounts[0].type",
        ),
        (
            |s| s["mounts"] = json!([{"destination": "/mnt/../etc", "type": "tmpfs"}]),
            "mounts[0].destination",
        ),
        (
            |s| s["mounts"] = json!([{"destination": "relative", "type": "tmpfs"}]),
            "mounts[0].destination",
        ),
        (
            |s| {
                s["mounts"] = json!([{"destination": "/data", "type": "bind", "source": "/tmp",
                "options": ["rbind", "noexec"]}])
            },
            "mounts[0].options",
        ),
        (
            |s| s["mounts"] = json!([{"destination": "/data", "type": "bind"}]),
            "mounts[0].source",
        ),
        (
            |s| {
                s["mounts"] =
                    json!([{"destination": "/t", "type": "tmpfs", "options": ["size=lots"]}])
            },
            "mounts[0].options",
        ),
        (
            |s| s["linux"]["maskedPaths"] = json!(["/etc/shadow"]),
            "linux.maskedPaths[0]",
        ),
        (
            |s| s["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "pid"}]),
            "linux.namespaces[1]",
        ),
        (
            |s| s["linux"]["cgroupsPath"] = json!("system.slice:ctr:x"),
            "linux.cgroupsPath",
        ),
        (
            |s| s["linux"]["cgroupsPath"] = json!("/a/../../b"),
            "linux.cgroupsPath",
        ),
        (
            |s| s["linux"]["resources"]["cpu"] = json!({"cpus": "0-1"}),
            "linux.resources.cpu.cpus",
        ),
        (
            |s| s["linux"]["resources"]["blockIO"] = json!({"weight": 10}),
            "linux.resources.blockIO",
        ),
        (
            |s| s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}),
            "linux.seccomp.defaultAction",
        ),
        (
            |s| {
                s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]})
            },
            "linux.seccomp.syscalls[0].args",
        ),
        (
            |s| {
                s["linux"]["devices"] =
                    json!([{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}])
            },
            "linux.devices[0]",
        ),
        (
            |s| s["linux"]["rootfsPropagation"] = json!("shared"),
            "linux.rootfsPropagation",
        ),
        (
            |s| s["linux"]["personality"] = json!({"domain": "LINUX32"}),
            "linux.personality",
        ),
        (|s| s["ociVersion"] = json!("2.0.0"), "ociVersion"),
        (
            |s| s["mounts"] = json!([{"destination": "/mnt", "type": "proc", "source": "proc"}]),
            "mounts[0].destination",
        ),
        (
            |s| s["mounts"] = json!([{"destination": "/t", "type": "tmpfs", "options": ["ro"]}]),
            "mounts[0].options",
        ),
        (
            // A plain bind of a tree with mounts below it (the host's /: /proc, ...).
            |s| {
                s["mounts"] = json!([{"destination": "/host", "type": "bind", "source": "/",
                "options": ["bind"]}])
            },
            "mounts[0].options",
        ),
        (
            |s| {
                s["mounts"] = json!([{"destination": "/d", "type": "bind", "source": "/tmp",
                "options": ["rbind"], "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}])
            },
            "mounts[0].uidMappings",
        ),
        (
            |s| s["linux"]["namespaces"] = json!([{"type": "mount"}]),
            "linux.namespaces",
        ),
        (
            |s| s["linux"]["resources"]["cpu"] = json!({"quota": 1000, "period": 0}),
            "linux.resources.cpu.period",
        ),
        (
            |s| {
                s["process"]["capabilities"] =
                    json!({"bounding": [], "effective": ["CAP_SYS_ADMIN"]})
            },
            "process.capabilities.effective",
        ),
        (
            |s| {
                s["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0}]})
            },
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            |s| s["linux"]["resources"]["memory"] = json!({"limit": 1 << 30, "swap": 1 << 20}),
            "linux.resources.memory.swap",
        ),
    ];
    for (edit, field) in cases {
        let mut spec = base.clone();
        edit(&mut spec);
        std::fs::write(dir.path().join("config.json"), spec.to_string()).unwrap();
        let e = Bundle::load(dir.path())
            .and_then(|b| b.convert())
            .expect_err(field);
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(e.to_string().starts_with(field), "{e}");
    }
}

#[test]
fn limits_namespaces_and_filters_are_carried_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = runc_default("true");
    // `swap` alone (memory and swap together) is the memory limit.
    spec["linux"]["resources"]["memory"] = json!({"swap": 64 << 20});
    spec["linux"]["resources"]["pids"] = json!({"limit": 32});
    spec["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
    spec["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "user"},
        {"type": "network", "path": "/proc/1/ns/net"}
    ]);
    spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality", "uname"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["acct"], "action": "SCMP_ACT_KILL"}]});
    spec["mounts"] = json!([
        {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "rprivate"]},
        {"destination": "/scratch", "type": "tmpfs", "options": ["size=1m", "mode=700", "nosuid"]},
        {"destination": "/in-bundle", "type": "bind", "source": "data", "options": ["rbind"]}
    ]);
    spec["process"]["capabilities"] = json!({
        "effective": ["CAP_KILL", "CAP_MKNOD"], "bounding": ["CAP_KILL", "CAP_MKNOD"]});
    bundle(dir.path(), &spec);
    let c = Bundle::load(dir.path()).unwrap().convert().unwrap();
    let s = &c.sandbox;
    // With a user namespace CAP_MKNOD is kept (a node made there is no device).
    assert_eq!(
        s.get_capabilities(),
        [
            sandbox_core::Capability::Kill,
            sandbox_core::Capability::Mknod
        ]
    );
    let warned: Vec<&str> = c.warnings.iter().map(|w| w.field.as_str()).collect();
    assert!(
        warned.contains(&"linux.seccomp.syscalls[2].action"),
        "{warned:?}"
    );
    use sandbox_core::Namespace::*;
    for ns in [Pid, Mount, User] {
        assert!(s.creates(ns), "{ns}");
    }
    for ns in [Ipc, Uts, Cgroup, Time, Net] {
        assert!(!s.creates(ns), "{ns} is not listed, or joined: not made");
    }
    // The rest, as the sandbox's own serde form says it.
    let v = serde_json::to_value(s).unwrap();
    assert_eq!(v["limits"]["memory"], json!(64 << 20), "{v:#}");
    assert_eq!(v["limits"]["pids"], json!(32), "{v:#}");
    assert_eq!(v["limits"]["cpus"], json!(0.5), "{v:#}");
    assert_eq!(
        v["joined"],
        json!([{"namespace": "net", "path": "/proc/1/ns/net"}]),
        "{v:#}"
    );
    assert_eq!(
        v["uid_map"],
        json!([{"inside": 0, "outside": 100000, "count": 65536}])
    );
    let rules: Vec<(&str, i32)> = s
        .get_seccomp()
        .deny
        .iter()
        .map(|r| (r.name.as_str(), r.errno))
        .collect();
    assert_eq!(
        rules,
        [
            ("personality", libc::EPERM),
            ("uname", libc::EPERM),
            ("clone3", libc::ENOSYS),
            ("acct", libc::EPERM)
        ]
    );
    assert!(
        !s.get_seccomp().defaults,
        "the spec's filter replaces the default one"
    );
    assert_eq!(
        v["mounts"],
        json!([
            {"kind": "bind", "source": "/tmp", "target": "/data", "readonly": true},
            {"kind": "tmpfs", "target": "/scratch", "size": 1 << 20, "mode": 0o700},
            {"kind": "bind", "source": dir.path().join("data"), "target": "/in-bundle",
             "readonly": false}
        ]),
        "{v:#}"
    );
}

#[test]
fn unreadable_oversized_or_malformed_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = Bundle::load(dir.path()).unwrap_err();
    assert!(matches!(e, OciError::Config { .. }), "{e}");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let e = Bundle::load(dir.path()).unwrap_err();
    assert!(matches!(e, OciError::Config { .. }), "{e}");
    let big = vec![b' '; (sandbox_oci::MAX_CONFIG + 1) as usize];
    std::fs::write(dir.path().join("config.json"), big).unwrap();
    let e = Bundle::load(dir.path()).unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
}
