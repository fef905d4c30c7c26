//! A runtime spec → a [`Sandbox`] and the [`Command`] to run in it, field by field. Every
//! field is either applied, refused with an [`OciError`] naming it, or (when ignoring it
//! cannot weaken the sandbox, as an SELinux label on a host without SELinux) reported as
//! a [`Warning`]: nothing is dropped silently.

use crate::error::OciError;
use crate::mounts;
use oci_spec::runtime::{
    Linux, LinuxCapabilities, LinuxNamespaceType, LinuxResources, Process, Spec,
};
use sandbox_core::{Capability, Command, IdMap, Limits, Namespace, Network, Rootfs, Sandbox};
use std::path::{Path, PathBuf};

/// A field this runtime does not apply, though running without it is no less isolated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The field, as a JSON path (`process.selinuxLabel`).
    pub field: String,
    /// What was done instead.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What a bundle's spec becomes.
#[derive(Debug)]
pub struct Conversion {
    /// The sandbox: namespaces, root, mounts, limits, hardening.
    pub sandbox: Sandbox,
    /// The container's process (`process`), to run in it.
    pub command: Command,
    /// `process.terminal`: the process wants a terminal (a runtime gives it one and sends
    /// its other end to the console socket).
    pub terminal: bool,
    /// `hooks`, for the runtime to run at their points of the container's life.
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Fields not applied, and why that is safe.
    pub warnings: Vec<Warning>,
}

/// Converts `spec`, whose relative `root.path` is relative to `bundle`.
pub fn convert(spec: &Spec, bundle: &Path) -> Result<Conversion, OciError> {
    let mut warnings = Vec::new();
    if !spec.version().starts_with("1.") {
        return Err(OciError::invalid(
            "ociVersion",
            format!("{:?}: this runtime implements 1.x", spec.version()),
        ));
    }
    if spec.vm().is_some() {
        return Err(OciError::unsupported(
            "vm",
            "containers are not virtual machines here",
        ));
    }
    // The process is the container's first process (PID 1 of its namespace, when it has
    // one), as runc makes it: signals and its exit status are its own.
    let mut sandbox = Sandbox::new().init(false).rootfs(root(spec, bundle)?);
    if let Some(h) = spec.hostname() {
        sandbox = sandbox.hostname(h.clone());
    }
    if spec.domainname().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(OciError::unsupported(
            "domainname",
            "the sandbox's NIS domain name is not set",
        ));
    }
    let linux = spec.linux().clone().unwrap_or_default();
    sandbox = namespaces(sandbox, &linux)?;
    if !sandbox.creates(Namespace::Pid) {
        return Err(OciError::unsupported(
            "linux.namespaces",
            "no PID namespace of its own: its processes could not all be found and ended",
        ));
    }
    sandbox = id_mappings(sandbox, &linux)?;
    let (mut limits, cgroup) = resources(linux.resources().as_ref(), &mut warnings)?;
    if let Some(path) = linux.cgroups_path() {
        limits = cgroups_path(limits, cgroup, path, &mut warnings)?;
    }
    sandbox = mounts::apply(sandbox, spec, &linux, bundle, &mut warnings)?;
    linux_rest(&linux, &mut warnings)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| OciError::invalid("process", "missing: there is nothing to run"))?;
    let (parts, terminal, sandbox, limits) =
        self::process(process, sandbox, limits, &mut warnings)?;
    let sandbox = sandbox.limits(limits);
    let sandbox = crate::seccomp::apply(sandbox, linux.seccomp().as_ref(), &mut warnings)?;
    let mut command = sandbox.command(&parts.args[0]);
    command.args(&parts.args[1..]).env_clear();
    for (k, v) in &parts.env {
        command.env(k, v);
    }
    command.current_dir(&parts.cwd);
    Ok(Conversion {
        command,
        sandbox,
        terminal,
        hooks: spec.hooks().clone(),
        warnings,
    })
}

/// `root`: a directory, relative to the bundle or absolute; writable unless `readonly`.
fn root(spec: &Spec, bundle: &Path) -> Result<Rootfs, OciError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| OciError::invalid("root", "missing: a sandbox needs a root directory"))?;
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if !path.is_dir() {
        return Err(OciError::invalid(
            "root.path",
            format!("{} is not a directory", path.display()),
        ));
    }
    let rootfs = Rootfs::dir(path);
    Ok(if root.readonly().unwrap_or(false) {
        rootfs
    } else {
        rootfs.writable()
    })
}

/// `linux.namespaces`: a listed kind is the sandbox's own (or, with a `path`, joined); a
/// kind not listed is the runtime's, shared.
fn namespaces(mut sandbox: Sandbox, linux: &Linux) -> Result<Sandbox, OciError> {
    let listed = linux.namespaces().clone().unwrap_or_default();
    let all = [
        (LinuxNamespaceType::Pid, Namespace::Pid),
        (LinuxNamespaceType::Network, Namespace::Net),
        (LinuxNamespaceType::Mount, Namespace::Mount),
        (LinuxNamespaceType::Ipc, Namespace::Ipc),
        (LinuxNamespaceType::Uts, Namespace::Uts),
        (LinuxNamespaceType::User, Namespace::User),
        (LinuxNamespaceType::Cgroup, Namespace::Cgroup),
        (LinuxNamespaceType::Time, Namespace::Time),
    ];
    for (i, ns) in listed.iter().enumerate() {
        if listed[..i].iter().any(|n| n.typ() == ns.typ()) {
            return Err(OciError::invalid(
                format!("linux.namespaces[{i}]"),
                format!("{} is listed twice", ns.typ()),
            ));
        }
    }
    for (kind, ours) in all {
        match listed.iter().find(|n| n.typ() == kind) {
            None => sandbox = sandbox.share(ours),
            Some(n) => {
                if let Some(path) = n.path() {
                    sandbox = sandbox.join(ours, path.clone());
                } else if ours == Namespace::Net {
                    // A network namespace of its own and no path: only its loopback (a
                    // CNI plugin would be given the namespace's path instead).
                    sandbox = sandbox.network(Network::loopback());
                }
            }
        }
    }
    Ok(sandbox)
}

/// `linux.uidMappings` / `gidMappings`.
fn id_mappings(mut sandbox: Sandbox, linux: &Linux) -> Result<Sandbox, OciError> {
    let map =
        |m: &oci_spec::runtime::LinuxIdMapping| IdMap::new(m.container_id(), m.host_id(), m.size());
    for m in linux.uid_mappings().iter().flatten() {
        sandbox = sandbox.uid_map(map(m));
    }
    for m in linux.gid_mappings().iter().flatten() {
        sandbox = sandbox.gid_map(map(m));
    }
    Ok(sandbox)
}

/// `linux.resources`: memory, PIDs and CPU quota become the sandbox's cgroup limits.
/// Also says whether the limits need a cgroup (memory, PIDs or CPU).
fn resources(
    r: Option<&LinuxResources>,
    warnings: &mut Vec<Warning>,
) -> Result<(Limits, bool), OciError> {
    let mut limits = Limits::new();
    let mut cgroup = false;
    let Some(r) = r else {
        return Ok((limits, cgroup));
    };
    if let Some(m) = r.memory() {
        let limit = m.limit().filter(|l| *l > 0);
        let swap = m.swap().filter(|s| *s > 0);
        if let (Some(l), Some(s)) = (limit, swap) {
            if s < l {
                return Err(OciError::invalid(
                    "linux.resources.memory.swap",
                    format!("{s}: below the memory limit {l} (it counts memory and swap)"),
                ));
            }
        }
        // `swap` is memory and swap together: without a memory limit it is the limit.
        if let Some(bytes) = limit.or(swap) {
            limits = limits.memory(bytes as u64);
            cgroup = true;
        }
        if limit.is_some() && swap.is_some() {
            warnings.push(Warning {
                field: "linux.resources.memory.swap".into(),
                message: "not limited apart: the memory limit counts swap too".into(),
            });
        }
        for (field, set) in [
            ("reservation", m.reservation().is_some()),
            ("kernel", m.kernel().is_some()),
            ("kernelTCP", m.kernel_tcp().is_some()),
            ("swappiness", m.swappiness().is_some()),
            ("disableOOMKiller", m.disable_oom_killer() == Some(true)),
            ("useHierarchy", m.use_hierarchy().is_some()),
            ("checkBeforeUpdate", m.check_before_update().is_some()),
        ] {
            if set {
                return Err(OciError::unsupported(
                    format!("linux.resources.memory.{field}"),
                    "only `limit` (and `swap`, not limited apart) is applied",
                ));
            }
        }
    }
    if let Some(p) = r.pids() {
        if p.limit() > 0 {
            limits = limits.pids(p.limit() as u64);
            cgroup = true;
        }
    }
    if let Some(c) = r.cpu() {
        match (c.quota(), c.period()) {
            (Some(q), Some(0)) if q > 0 => {
                return Err(OciError::invalid(
                    "linux.resources.cpu.period",
                    "0 with a quota",
                ))
            }
            (Some(q), Some(p)) if q > 0 => {
                limits = limits.cpus(q as f64 / p as f64);
                cgroup = true;
            }
            (Some(q), None) if q > 0 => {
                limits = limits.cpus(q as f64 / 100_000.0);
                cgroup = true;
            }
            _ => {}
        }
        if c.shares().is_some() || c.burst().is_some() || c.idle().is_some() {
            warnings.push(Warning {
                field: "linux.resources.cpu".into(),
                message: "shares, burst and idle are not set (the quota is)".into(),
            });
        }
        for (field, set) in [
            ("cpus", c.cpus().as_ref().is_some_and(|s| !s.is_empty())),
            ("mems", c.mems().as_ref().is_some_and(|s| !s.is_empty())),
            ("realtimeRuntime", c.realtime_runtime().is_some()),
            ("realtimePeriod", c.realtime_period().is_some()),
        ] {
            if set {
                return Err(OciError::unsupported(
                    format!("linux.resources.cpu.{field}"),
                    "only `quota` and `period` are applied",
                ));
            }
        }
    }
    // Device rules: the sandbox's /dev holds only null, zero, full, random, urandom and tty
    // (and its own pts): no rule could grant more.
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        warnings.push(Warning {
            field: "linux.resources.devices".into(),
            message: "the sandbox's /dev holds only its fixed harmless devices".into(),
        });
    }
    for (field, set) in [
        ("blockIO", r.block_io().is_some()),
        (
            "hugepageLimits",
            r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("network", r.network().is_some()),
        ("rdma", r.rdma().as_ref().is_some_and(|h| !h.is_empty())),
        (
            "unified",
            r.unified().as_ref().is_some_and(|h| !h.is_empty()),
        ),
    ] {
        if set {
            return Err(OciError::unsupported(
                format!("linux.resources.{field}"),
                "only memory, pids and cpu quota are applied",
            ));
        }
    }
    Ok((limits, cgroup))
}

/// `linux.cgroupsPath`: the sandbox's cgroup is made below its parent directory (named by
/// the runtime, `sbx-…`).
fn cgroups_path(
    limits: Limits,
    cgroup: bool,
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Limits, OciError> {
    let text = path.to_string_lossy();
    if text.contains(':') {
        return Err(OciError::unsupported(
            "linux.cgroupsPath",
            "systemd's slice:prefix:name form (no --systemd-cgroup here)",
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(OciError::invalid("linux.cgroupsPath", "contains `..`"));
    }
    let parent = path
        .parent()
        .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
        .unwrap_or_default();
    let message = match (cgroup, parent.is_empty()) {
        (false, _) => "no cgroup is made: the spec limits no memory, PIDs or CPU".to_string(),
        (true, true) => format!(
            "the sandbox's cgroup is a new one below the runtime's own parent (`sandbox`), \
             not `{}`",
            path.display()
        ),
        (true, false) => format!(
            "the sandbox's cgroup is a new one below `{parent}` (which must exist), not `{}`",
            path.display()
        ),
    };
    warnings.push(Warning {
        field: "linux.cgroupsPath".into(),
        message,
    });
    Ok(if parent.is_empty() {
        limits
    } else {
        limits.cgroup_parent(parent)
    })
}

/// The rest of `linux`: refused unless empty, or harmless to leave out.
fn linux_rest(linux: &Linux, warnings: &mut Vec<Warning>) -> Result<(), OciError> {
    if linux.sysctl().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(OciError::unsupported(
            "linux.sysctl",
            "the sandbox's kernel parameters are not set",
        ));
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let known = sandbox_core::fs::DEVICES
            .iter()
            .any(|n| d.path() == Path::new("/dev").join(n).as_path());
        if !known {
            return Err(OciError::unsupported(
                format!("linux.devices[{i}]"),
                format!(
                    "{}: the sandbox's /dev holds only {}",
                    d.path().display(),
                    sandbox_core::fs::DEVICES.join(", ")
                ),
            ));
        }
    }
    if let Some(p) = linux.rootfs_propagation() {
        if !matches!(p.as_str(), "private" | "rprivate" | "slave" | "rslave") {
            return Err(OciError::unsupported(
                "linux.rootfsPropagation",
                format!("{p}: the sandbox's mounts are private (nothing propagates back)"),
            ));
        }
    }
    if linux.mount_label().is_some() {
        if Path::new("/sys/fs/selinux/enforce").exists() {
            return Err(OciError::unsupported(
                "linux.mountLabel",
                "SELinux labels are not applied",
            ));
        }
        warnings.push(Warning {
            field: "linux.mountLabel".into(),
            message: "not applied: this host does not run SELinux".into(),
        });
    }
    for (field, set) in [
        ("intelRdt", linux.intel_rdt().is_some()),
        ("personality", linux.personality().is_some()),
        (
            "timeOffsets",
            linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
        ),
        ("memoryPolicy", linux.memory_policy().is_some()),
        (
            "netDevices",
            linux.net_devices().as_ref().is_some_and(|n| !n.is_empty()),
        ),
    ] {
        if set {
            return Err(OciError::unsupported(
                format!("linux.{field}"),
                "not applied",
            ));
        }
    }
    Ok(())
}

/// The process to run: arguments (at least the program), environment, working directory.
struct Parts {
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

/// `process`: its arguments, environment, working directory, user, capabilities and
/// rlimits.
fn process(
    p: &Process,
    mut sandbox: Sandbox,
    mut limits: Limits,
    warnings: &mut Vec<Warning>,
) -> Result<(Parts, bool, Sandbox, Limits), OciError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(OciError::invalid(
            "process.args",
            "empty: there is nothing to run",
        ));
    }
    let mut env = Vec::new();
    for (i, e) in p.env().iter().flatten().enumerate() {
        let Some((k, v)) = e.split_once('=') else {
            return Err(OciError::invalid(
                format!("process.env[{i}]"),
                format!("{e:?} is not NAME=VALUE"),
            ));
        };
        env.push((k.to_string(), v.to_string()));
    }
    if !p.cwd().is_absolute() {
        return Err(OciError::invalid(
            "process.cwd",
            format!("{} is not absolute", p.cwd().display()),
        ));
    }
    let parts = Parts {
        args,
        env,
        cwd: p.cwd().clone(),
    };
    let user = p.user();
    if user.uid() != 0 || user.gid() != 0 {
        return Err(OciError::unsupported(
            "process.user",
            format!(
                "uid {} gid {}: the process runs as root of its user namespace",
                user.uid(),
                user.gid()
            ),
        ));
    }
    if user
        .additional_gids()
        .as_ref()
        .is_some_and(|g| !g.is_empty())
    {
        return Err(OciError::unsupported(
            "process.user.additionalGids",
            "no supplementary groups are set",
        ));
    }
    if user.umask().is_some() || user.username().is_some() {
        return Err(OciError::unsupported(
            "process.user",
            "umask and username are not set",
        ));
    }
    if let Some(caps) = p.capabilities() {
        for c in capabilities(caps, warnings)? {
            if c == Capability::Mknod && !sandbox.creates(Namespace::User) {
                // Without a user namespace a device node made in a writable root would be
                // a device: runc's device cgroup would refuse its use; there is none here.
                warnings.push(Warning {
                    field: "process.capabilities".into(),
                    message: "CAP_MKNOD not kept: no user namespace, and no device cgroup".into(),
                });
                continue;
            }
            sandbox = sandbox.capability(c);
        }
    }
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        limits = rlimit(limits, i, r)?;
    }
    if p.no_new_privileges() == Some(false) {
        warnings.push(Warning {
            field: "process.noNewPrivileges".into(),
            message: "false: set anyway (the sandbox always runs with no_new_privs)".into(),
        });
    }
    // An LSM label on a host whose LSM is on would confine the process: refused, since it
    // is not applied; on a host without that LSM no runtime could apply it.
    for (field, set, on) in [
        (
            "process.apparmorProfile",
            p.apparmor_profile().is_some(),
            std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|t| t.trim() == "Y"),
        ),
        (
            "process.selinuxLabel",
            p.selinux_label().is_some(),
            Path::new("/sys/fs/selinux/enforce").exists(),
        ),
    ] {
        match (set, on) {
            (false, _) => {}
            (true, true) => return Err(OciError::unsupported(field, "LSM labels are not applied")),
            (true, false) => warnings.push(Warning {
                field: field.into(),
                message: "not applied: this host does not run that LSM".into(),
            }),
        }
    }
    for (field, set) in [
        ("oomScoreAdj", p.oom_score_adj().is_some()),
        ("ioPriority", p.io_priority().is_some()),
        ("scheduler", p.scheduler().is_some()),
        ("execCPUAffinity", p.exec_cpu_affinity().is_some()),
        ("commandLine", p.command_line().is_some()),
    ] {
        if set {
            return Err(OciError::unsupported(
                format!("process.{field}"),
                "not applied",
            ));
        }
    }
    Ok((parts, p.terminal().unwrap_or(false), sandbox, limits))
}

/// The capabilities the process keeps: its effective set (this runtime keeps one set).
fn capabilities(
    caps: &LinuxCapabilities,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Capability>, OciError> {
    let parse = |set: &Option<oci_spec::runtime::Capabilities>, field: &str| {
        let mut out = Vec::new();
        for c in set.iter().flatten() {
            let name = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let ours: Capability = name.parse().map_err(|_| {
                OciError::unsupported(format!("process.capabilities.{field}"), name.clone())
            })?;
            out.push(ours);
        }
        out.sort_by_key(|c| *c as u32);
        Ok::<_, OciError>(out)
    };
    let effective = parse(caps.effective(), "effective")?;
    for (field, set) in [
        ("bounding", caps.bounding()),
        ("permitted", caps.permitted()),
    ] {
        if set.is_some() {
            let given = parse(set, field)?;
            if let Some(c) = effective.iter().find(|c| !given.contains(c)) {
                return Err(OciError::invalid(
                    "process.capabilities.effective",
                    format!("{c} is not in the {field} set"),
                ));
            }
        }
    }
    for (field, set) in [
        ("bounding", caps.bounding()),
        ("permitted", caps.permitted()),
        ("inheritable", caps.inheritable()),
        ("ambient", caps.ambient()),
    ] {
        // (A set not given is empty.)
        if parse(set, field)? != effective {
            warnings.push(Warning {
                field: format!("process.capabilities.{field}"),
                message: "differs from `effective`: every set holds the effective one".into(),
            });
        }
    }
    Ok(effective)
}

/// One of `process.rlimits`: those the sandbox's limits carry (soft = hard).
fn rlimit(
    limits: Limits,
    i: usize,
    r: &oci_spec::runtime::PosixRlimit,
) -> Result<Limits, OciError> {
    use oci_spec::runtime::PosixRlimitType as T;
    let field = format!("process.rlimits[{i}]");
    if r.soft() != r.hard() {
        return Err(OciError::unsupported(
            field,
            format!(
                "{:?}: soft {} and hard {} differ",
                r.typ(),
                r.soft(),
                r.hard()
            ),
        ));
    }
    let n = r.hard();
    Ok(match r.typ() {
        T::RlimitNofile => limits.open_files(n),
        T::RlimitFsize => limits.file_size(n),
        T::RlimitStack => limits.stack(n),
        other => {
            return Err(OciError::unsupported(
                field,
                format!("{other:?}: only RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_STACK are set"),
            ))
        }
    })
}
