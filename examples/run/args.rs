//! The command line: clap's `Args` with its help texts, and the value parsers of the
//! flags that take more than a word (`--net`, `--add-host`, `--bind`, `--tmpfs`, `--file`).

use crate::units::{parse_duration, parse_size};
use clap::Parser;
use sandbox_core::{Mount, Namespace, Network};
use std::path::PathBuf;

/// Run a program in a new Linux sandbox.
#[derive(Parser, Debug)]
#[command(
    name = "run",
    version,
    about = "Run a program in a new Linux sandbox: its own user, mount, PID, UTS, IPC, \
             network, cgroup and time namespaces, under a built-in init.",
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP
)]
pub(crate) struct Args {
    /// Hostname inside the sandbox.
    #[arg(help_heading = "Namespaces and process", long, value_name = "H", default_value = sandbox_core::DEFAULT_HOSTNAME)]
    pub(crate) hostname: String,

    /// Use DIR as the root filesystem (entered with pivot_root, read-only unless
    /// --rootfs-writable). Without --rootfs, --overlay, --image or --host-root the sandbox
    /// gets the host's /usr, /bin, /sbin, /lib* and /etc read-only in an empty root, with
    /// fresh /tmp, /run, /home, /root, /dev, /proc and /sys.
    #[arg(help_heading = "Root filesystem", long, value_name = "DIR", conflicts_with_all = ["overlay", "image", "host_root"])]
    pub(crate) rootfs: Option<PathBuf>,

    /// Make the --rootfs directory writable.
    #[arg(help_heading = "Root filesystem", long, requires = "rootfs")]
    pub(crate) rootfs_writable: bool,

    /// Copy-on-write over DIR: the sandbox may write anywhere, DIR is never changed, the
    /// writes vanish with the sandbox (see --upper). Repeat to stack trees, bottom first.
    #[arg(help_heading = "Root filesystem", long, value_name = "DIR", conflicts_with_all = ["image", "host_root"])]
    pub(crate) overlay: Vec<PathBuf>,

    /// Use a container image as the root, imported once into the cache, then copy-on-write:
    /// an OCI image layout directory, or a tarball (plain or gzip) of one (`skopeo copy …
    /// oci-archive:…`, `podman save`, `docker save`, old format or new) or of a root
    /// filesystem (`docker export`).
    #[arg(
        help_heading = "Root filesystem",
        long,
        value_name = "TAR|OCI-DIR",
        conflicts_with = "host_root"
    )]
    pub(crate) image: Option<PathBuf>,

    /// The image cache directory (default: /var/cache/sandbox/images for root,
    /// ~/.cache/sandbox/images otherwise).
    #[arg(
        help_heading = "Root filesystem",
        long,
        value_name = "DIR",
        requires = "image"
    )]
    pub(crate) image_cache: Option<PathBuf>,

    /// Keep the writes of --overlay or --image in DIR/upper instead of a throw-away tmpfs.
    #[arg(help_heading = "Root filesystem", long, value_name = "DIR")]
    pub(crate) upper: Option<PathBuf>,

    /// See the host's whole tree (through a private mount table) instead of a new root.
    #[arg(help_heading = "Root filesystem", long)]
    pub(crate) host_root: bool,

    /// Bind the host's SRC at DST inside (read-only with :ro); may be repeated.
    #[arg(help_heading = "Mounts", long, value_name = "SRC:DST[:ro]", value_parser = parse_bind)]
    pub(crate) bind: Vec<Mount>,

    /// Mount a fresh tmpfs at DST, of at most SIZE bytes (suffixes K, M, G); may be
    /// repeated.
    #[arg(help_heading = "Mounts", long, value_name = "DST[:SIZE]", value_parser = parse_tmpfs)]
    pub(crate) tmpfs: Vec<Mount>,

    /// Place a copy of the host's HOSTFILE at DST inside; may be repeated.
    #[arg(help_heading = "Mounts", long, value_name = "DST=HOSTFILE", value_parser = parse_file)]
    pub(crate) file: Vec<Mount>,

    /// Network: none (only lo, down), loopback (lo up), host (the caller's), or
    /// bridge:NAME[:CIDR] (eth0 on bridge NAME with an address of its subnet and a default
    /// route through it; the bridge is created with CIDR, e.g. 10.88.0.0/24, when missing).
    #[arg(help_heading = "Network", long, value_name = "KIND", default_value = "loopback", value_parser = parse_net)]
    pub(crate) net: NetArg,

    /// With --net bridge: this address instead of the next free one.
    #[arg(help_heading = "Network", long, value_name = "ADDR")]
    pub(crate) ip: Option<std::net::Ipv4Addr>,

    /// With --net bridge: masquerade the bridge's subnet on its way out (an nftables table
    /// made over netlink; IPv4 forwarding is turned on), as Docker does.
    #[arg(help_heading = "Network", long)]
    pub(crate) nat: bool,

    /// With --net bridge: an /etc/hosts entry NAME:ADDR; may be repeated.
    #[arg(help_heading = "Network", long = "add-host", value_name = "NAME:ADDR", value_parser = parse_host)]
    pub(crate) add_host: Vec<(String, std::net::Ipv4Addr)>,

    /// Keep the caller's namespace of this kind (user, mnt, pid, uts, ipc, net, cgroup,
    /// time); may be repeated.
    #[arg(help_heading = "Namespaces and process", long, value_name = "NS")]
    pub(crate) share: Vec<Namespace>,

    /// Run the program as PID 1 instead of under the built-in init.
    #[arg(help_heading = "Namespaces and process", long)]
    pub(crate) no_init: bool,

    /// Working directory inside the sandbox.
    #[arg(
        help_heading = "Namespaces and process",
        long,
        value_name = "DIR",
        default_value = "/"
    )]
    pub(crate) chdir: PathBuf,

    /// Set an environment variable (NAME=VALUE); may be repeated.
    #[arg(
        help_heading = "Namespaces and process",
        long = "setenv",
        value_name = "NAME=VALUE"
    )]
    pub(crate) setenv: Vec<String>,

    /// Memory limit of the whole sandbox, swap included (K, M, G suffixes).
    #[arg(help_heading = "Limits", long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory: Option<u64>,

    /// Processes and threads of the whole sandbox.
    #[arg(help_heading = "Limits", long, value_name = "N")]
    pub(crate) pids: Option<u64>,

    /// CPU bandwidth in cores (e.g. 0.5).
    #[arg(help_heading = "Limits", long, value_name = "F")]
    pub(crate) cpus: Option<f64>,

    /// Wall-time limit (e.g. 500ms, 2s, 1m): the whole sandbox is killed at the deadline.
    #[arg(help_heading = "Limits", long = "time", value_name = "DUR", value_parser = parse_duration)]
    pub(crate) wall_time: Option<std::time::Duration>,

    /// CPU-time limit of the whole sandbox (every process and thread counted).
    #[arg(help_heading = "Limits", long, value_name = "DUR", value_parser = parse_duration)]
    pub(crate) cpu_time: Option<std::time::Duration>,

    /// Relay at most SIZE bytes of stdout and of stderr (K, M, G suffixes), as they come;
    /// past it the sandbox is killed and the run ends as output_limit_exceeded.
    #[arg(help_heading = "Limits", long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) output_limit: Option<u64>,

    /// Open files per process.
    #[arg(help_heading = "Limits", long, value_name = "N")]
    pub(crate) nofile: Option<u64>,

    /// Largest file a process may write (K, M, G suffixes).
    #[arg(help_heading = "Limits", long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) fsize: Option<u64>,

    /// The seccomp filter: `default` (refuses what a sandboxed program has no business
    /// doing: the keyring, bpf, mounts, namespaces, ptrace, io_uring, TIOCSTI, ...) or
    /// `off`.
    #[arg(help_heading = "Security", long, value_name = "default|off", default_value = "default",
          value_parser = ["default", "off"])]
    pub(crate) seccomp: String,

    /// Take a system call out of the default seccomp profile (repeatable), e.g. ptrace.
    #[arg(help_heading = "Security", long = "allow-syscall", value_name = "NAME")]
    pub(crate) allow_syscall: Vec<String>,

    /// Refuse one more system call with EPERM (repeatable).
    #[arg(help_heading = "Security", long = "deny-syscall", value_name = "NAME")]
    pub(crate) deny_syscall: Vec<String>,

    /// Keep a capability (repeatable; by default none is kept): CAP_NET_RAW or net_raw.
    #[arg(help_heading = "Security", long = "cap", value_name = "NAME")]
    pub(crate) cap: Vec<sandbox_core::Capability>,

    /// Give the program a pseudo-terminal (for a shell or an editor): this terminal is put
    /// in raw mode and relayed, its size follows ours.
    #[arg(
        help_heading = "Namespaces and process",
        long,
        conflicts_with = "output_limit"
    )]
    pub(crate) pty: bool,

    /// With landlock, allow reading PATH (and what is beneath) inside the sandbox
    /// (repeatable). Any --landlock-* flag denies every path not named.
    #[arg(help_heading = "Security", long = "landlock-ro", value_name = "PATH")]
    pub(crate) landlock_ro: Vec<PathBuf>,

    /// With landlock, allow reading and writing PATH (and what is beneath) (repeatable).
    #[arg(help_heading = "Security", long = "landlock-rw", value_name = "PATH")]
    pub(crate) landlock_rw: Vec<PathBuf>,

    /// Load the whole sandbox description from FILE: the serde form of `Sandbox` in TOML
    /// (`.toml`) or JSON (see examples/profiles/). Flags given on the command line apply
    /// on top of it.
    #[arg(help_heading = "Namespaces and process", long, value_name = "FILE")]
    pub(crate) profile: Option<PathBuf>,

    /// Print the outcome as one JSON line on stderr at the end.
    #[arg(help_heading = "Output", long)]
    pub(crate) json: bool,

    /// The program (an absolute path inside the sandbox) and its arguments.
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    pub(crate) command: Vec<String>,
}

const LONG_ABOUT: &str = "\
run: a bubblewrap-like command line over the sandbox library.

Runs PROGRAM (an absolute path inside the sandbox) in new user, mount, PID, UTS, IPC,
network, cgroup and time namespaces, with a built-in init as PID 1. By default the root
is the host's /usr, /bin, /sbin, /lib* and /etc read-only in an otherwise empty tree,
the network is a loopback of its own, and the program keeps no capability, runs with
no_new_privs in a session of its own under the default seccomp filter, with no
descriptor but its stdio and a minimal environment (PATH, HOME, HOSTNAME, TERM).
Without PROGRAM it runs a shell that shows the sandbox from inside.

stdin, stdout and stderr are passed through (with --pty, a terminal of its own; with
--output-limit, relayed and cut). The exit status is the program's, 128 + N when it was
killed by signal N, 125 when the sandbox could not be made, 126 when PROGRAM cannot be
executed, 127 when it does not exist.";

const AFTER_HELP: &str = "\
Examples:
  run                                       show the isolation from inside
  run --hostname box -- /bin/sh -c 'hostname; id; ps -e'
  run --rootfs /srv/busybox --net none -- /bin/sh
  run --overlay /srv/debian --upper /var/tmp/keep -- /usr/bin/apt-get update
  run --image alpine.tar --bind /src:/src:ro --tmpfs /tmp:64M -- /bin/sh
  run --net bridge:sbx0:10.88.0.0/24 --nat -- /usr/bin/curl http://example.org
  run --memory 256M --pids 64 --time 2s --json -- /usr/bin/python3 prog.py
  run --pty -- /bin/bash
  run --profile examples/profiles/judge.toml --time 1s -- /usr/bin/python3 -c 'print(42)'

Sizes take K, M and G suffixes; durations ms, s and m. Repeatable options may be given
more than once. The library behind every option: see sandbox-core's documentation.";

/// `--net`: a network, and for a bridge the subnet to create it with when missing.
#[derive(Clone, Debug)]
pub(crate) struct NetArg {
    pub(crate) network: Network,
    pub(crate) create: Option<(String, String)>,
}

fn parse_net(v: &str) -> Result<NetArg, String> {
    if let Some(rest) = v.strip_prefix("bridge:") {
        let (name, cidr) = match rest.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (rest, None),
        };
        sandbox_core::net::check_ifname(name).map_err(|e| e.to_string())?;
        if let Some(c) = cidr {
            c.parse::<sandbox_core::net::Ipv4Cidr>()
                .map_err(|e| e.to_string())?;
        }
        return Ok(NetArg {
            network: Network::bridge_named(name),
            create: cidr.map(|c| (name.to_string(), c.to_string())),
        });
    }
    let network = v.parse::<Network>().map_err(|e| e.to_string())?;
    Ok(NetArg {
        network,
        create: None,
    })
}

/// `NAME:ADDR`
fn parse_host(v: &str) -> Result<(String, std::net::Ipv4Addr), String> {
    let (n, a) = v.split_once(':').ok_or("expected NAME:ADDR")?;
    let a = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
    Ok((n.to_string(), a))
}

/// `SRC:DST[:ro]`
fn parse_bind(v: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = v.split(':').collect();
    match parts[..] {
        [src, dst] => Ok(Mount::bind(src, dst)),
        [src, dst, "ro"] => Ok(Mount::bind(src, dst).readonly()),
        [_, _, other] => Err(format!("unknown bind option {other:?} (only `ro`)")),
        _ => Err("expected SRC:DST or SRC:DST:ro".into()),
    }
}

/// `DST[:SIZE]`
fn parse_tmpfs(v: &str) -> Result<Mount, String> {
    match v.split_once(':') {
        Some((dst, size)) => Ok(Mount::tmpfs(dst).size(parse_size(size)?)),
        None => Ok(Mount::tmpfs(v)),
    }
}

/// `DST=HOSTFILE`: the host file is read now.
fn parse_file(v: &str) -> Result<Mount, String> {
    let (dst, src) = v
        .split_once('=')
        .ok_or_else(|| "expected DST=HOSTFILE".to_string())?;
    let contents = std::fs::read(src).map_err(|e| format!("{src}: {e}"))?;
    Ok(Mount::file(dst, contents))
}
