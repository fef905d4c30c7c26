//! The `Sandbox` to run: a `--profile` (or the defaults) with the flags typed on the
//! command line applied on top.

use crate::args::Args;
use sandbox_core::{Error, Limits, Namespace, Rootfs, Sandbox, Seccomp};

/// The sandbox to run: the `--profile` (or the defaults) with the flags `given` on the
/// command line over it; `--upper` is refused when its root has no layer to keep.
pub(crate) fn build(args: &Args, given: &[String]) -> Result<Sandbox, Error> {
    let sandbox = match &args.profile {
        Some(p) => with_flags(args, load_profile(p)?, &|id| {
            given.contains(&id.to_string())
        }),
        None => with_flags(args, Sandbox::new(), &|_| true),
    };
    if args.upper.is_some()
        && !matches!(
            sandbox.get_rootfs(),
            Rootfs::Overlay { .. } | Rootfs::Image { .. }
        )
    {
        return Err(Error::Invalid {
            what: "--upper",
            reason: "keeps the writes of --overlay or --image; this root has no layer to keep"
                .into(),
        });
    }
    Ok(sandbox)
}

/// `base` (a `--profile`, or the defaults) with the flags `given` on the
/// command line applied on top (without a profile, every flag counts, defaults included).
fn with_flags(args: &Args, base: Sandbox, given: &dyn Fn(&str) -> bool) -> Sandbox {
    let mut s = network(base, args, given);
    if given("no_init") {
        s = s.init(!args.no_init);
    }
    let limits = limits(s.get_limits().clone(), args);
    s = namespaces(s.limits(limits), args, given);
    s = root(s, args, given);
    for m in args.bind.iter().chain(&args.tmpfs).chain(&args.file) {
        s = s.mount(m.clone());
    }
    let seccomp = seccomp(s.get_seccomp().clone(), args, given);
    s = s.seccomp(seccomp);
    for cap in &args.cap {
        s = s.capability(*cap);
    }
    landlock(s, args)
}

/// `--net`, `--ip`, `--add-host`: the network, when one of them is typed.
fn network(mut s: Sandbox, args: &Args, given: &dyn Fn(&str) -> bool) -> Sandbox {
    if given("net") || given("ip") || given("add_host") {
        let mut net = args.net.network.clone();
        if let Some(ip) = args.ip {
            net = net.address(ip);
        }
        for (name, addr) in &args.add_host {
            net = net.add_host(name, *addr);
        }
        s = s.network(net);
    }
    s
}

/// The Limits flags, over the `limits` the sandbox has.
fn limits(mut limits: Limits, args: &Args) -> Limits {
    if let Some(b) = args.memory {
        limits = limits.memory(b);
    }
    if let Some(n) = args.pids {
        limits = limits.pids(n);
    }
    if let Some(c) = args.cpus {
        limits = limits.cpus(c);
    }
    if let Some(d) = args.wall_time {
        limits = limits.wall_time(d);
    }
    if let Some(d) = args.cpu_time {
        limits = limits.cpu_time(d);
    }
    if let Some(b) = args.output_limit {
        limits = limits.output(b);
    }
    if let Some(n) = args.nofile {
        limits = limits.open_files(n);
    }
    if let Some(b) = args.fsize {
        limits = limits.file_size(b);
    }
    limits
}

/// `--share` and `--hostname` (which a shared UTS namespace leaves alone).
fn namespaces(mut s: Sandbox, args: &Args, given: &dyn Fn(&str) -> bool) -> Sandbox {
    for ns in &args.share {
        s = s.share(*ns);
    }
    if given("hostname") && !args.share.contains(&Namespace::Uts) {
        s = s.hostname(&args.hostname);
    }
    s
}

/// The root filesystem, when a root flag is typed, and `--upper` over it.
fn root(mut s: Sandbox, args: &Args, given: &dyn Fn(&str) -> bool) -> Sandbox {
    let root_given = ["rootfs", "overlay", "image", "host_root"]
        .iter()
        .any(|f| given(f));
    if root_given {
        s = s.rootfs(rootfs(args));
    }
    if let Some(upper) = &args.upper {
        let r = s.get_rootfs().clone().upper_dir(upper);
        s = s.rootfs(r);
    }
    s
}

/// The root `--rootfs`, `--overlay`, `--image` or `--host-root` names.
fn rootfs(args: &Args) -> Rootfs {
    if let Some(dir) = &args.rootfs {
        let r = Rootfs::dir(dir);
        if args.rootfs_writable {
            r.writable()
        } else {
            r
        }
    } else if !args.overlay.is_empty() {
        Rootfs::overlay(args.overlay.clone())
    } else if let Some(image) = &args.image {
        let mut r = Rootfs::image(image);
        if let Some(cache) = &args.image_cache {
            r = r.cache_dir(cache);
        }
        r
    } else if args.host_root {
        Rootfs::host()
    } else {
        Rootfs::host_readonly()
    }
}

/// `--seccomp`, `--allow-syscall`, `--deny-syscall`, over the filter the sandbox has.
fn seccomp(mut seccomp: Seccomp, args: &Args, given: &dyn Fn(&str) -> bool) -> Seccomp {
    if given("seccomp") {
        seccomp = if args.seccomp == "off" {
            Seccomp::off()
        } else {
            Seccomp::default_profile()
        };
    }
    for name in &args.allow_syscall {
        seccomp = seccomp.allow(name);
    }
    for name in &args.deny_syscall {
        seccomp = seccomp.deny(name);
    }
    seccomp
}

/// `--landlock-ro` and `--landlock-rw`, added to the sandbox's ruleset (a required one
/// when it has none).
fn landlock(mut s: Sandbox, args: &Args) -> Sandbox {
    if !args.landlock_ro.is_empty() || !args.landlock_rw.is_empty() {
        let mut l = s
            .get_landlock()
            .cloned()
            .unwrap_or_else(|| sandbox_core::Landlock::new().required());
        for p in &args.landlock_ro {
            l = l.read_only(p);
        }
        for p in &args.landlock_rw {
            l = l.read_write(p);
        }
        s = s.landlock(l);
    }
    s
}

/// Reads a `--profile`: the serde form of a `Sandbox`, in TOML (`.toml`) or JSON (`.json`,
/// or anything else that parses as JSON).
fn load_profile(path: &std::path::Path) -> Result<Sandbox, Error> {
    let bad = |reason: String| Error::Invalid {
        what: "--profile",
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let is_toml = path.extension().is_some_and(|e| e == "toml");
    if is_toml {
        toml::from_str(&text).map_err(|e| bad(e.to_string()))
    } else {
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
    }
}
