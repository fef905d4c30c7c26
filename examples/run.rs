//! `run`: a bubblewrap-like command line over the sandbox SDK.
//!
//! ```text
//! cargo run --release --example run -- [OPTIONS] [-- PROGRAM ARGS...]
//! ```
//!
//! With no program it runs a shell that shows the isolation: the hostname, `id`, `ps`
//! seeing only the sandbox's processes, and the sandbox's own mount table. The root is the
//! host's system directories, read-only, in an empty tree (`--rootfs`, `--overlay`,
//! `--image` or `--host-root` choose another), and `--bind`, `--tmpfs`, `--file` add
//! mounts. With a program
//! it runs it with stdin, stdout and stderr passed through and exits with its status
//! (128 + the signal when it was killed). `--json` adds one JSON line with the outcome on
//! stderr at the end.
//!
//! It is a thin layer over the public API: every option maps to one builder call.

use clap::Parser;
use sandbox_core::{Error, Mount, Namespace, Network, Rootfs, Sandbox, Stage, Stdio};
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "common/units.rs"]
mod units;
use units::{parse_duration, parse_size};

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
struct Args {
    /// Hostname inside the sandbox.
    #[arg(help_heading = "Namespaces and process", long, value_name = "H", default_value = sandbox_core::DEFAULT_HOSTNAME)]
    hostname: String,

    /// Use DIR as the root filesystem (entered with pivot_root, read-only unless
    /// --rootfs-writable). Without --rootfs, --overlay, --image or --host-root the sandbox
    /// gets the host's /usr, /bin, /sbin, /lib* and /etc read-only in an empty root, with
    /// fresh /tmp, /run, /home, /root, /dev, /proc and /sys.
    #[arg(help_heading = "Root filesystem", long, value_name = "DIR", conflicts_with_all = ["overlay", "image", "host_root"])]
    rootfs: Option<PathBuf>,

    /// Make the --rootfs directory writable.
    #[arg(help_heading = "Root filesystem", long, requires = "rootfs")]
    rootfs_writable: bool,

    /// Copy-on-write over DIR: the sandbox may write anywhere, DIR is never changed, the
    /// writes vanish with the sandbox (see --upper). Repeat to stack trees, bottom first.
    #[arg(help_heading = "Root filesystem", long, value_name = "DIR", conflicts_with_all = ["image", "host_root"])]
    overlay: Vec<PathBuf>,

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
    image: Option<PathBuf>,

    /// The image cache directory (default: /var/cache/sandbox/images for root,
    /// ~/.cache/sandbox/images otherwise).
    #[arg(
        help_heading = "Root filesystem",
        long,
        value_name = "DIR",
        requires = "image"
    )]
    image_cache: Option<PathBuf>,

    /// Keep the writes of --overlay or --image in DIR/upper instead of a throw-away tmpfs.
    #[arg(help_heading = "Root filesystem", long, value_name = "DIR")]
    upper: Option<PathBuf>,

    /// See the host's whole tree (through a private mount table) instead of a new root.
    #[arg(help_heading = "Root filesystem", long)]
    host_root: bool,

    /// Bind the host's SRC at DST inside (read-only with :ro); may be repeated.
    #[arg(help_heading = "Mounts", long, value_name = "SRC:DST[:ro]", value_parser = parse_bind)]
    bind: Vec<Mount>,

    /// Mount a fresh tmpfs at DST, of at most SIZE bytes (suffixes K, M, G); may be
    /// repeated.
    #[arg(help_heading = "Mounts", long, value_name = "DST[:SIZE]", value_parser = parse_tmpfs)]
    tmpfs: Vec<Mount>,

    /// Place a copy of the host's HOSTFILE at DST inside; may be repeated.
    #[arg(help_heading = "Mounts", long, value_name = "DST=HOSTFILE", value_parser = parse_file)]
    file: Vec<Mount>,

    /// Network: none (only lo, down), loopback (lo up), host (the caller's), or
    /// bridge:NAME[:CIDR] (eth0 on bridge NAME with an address of its subnet and a default
    /// route through it; the bridge is created with CIDR, e.g. 10.88.0.0/24, when missing).
    #[arg(help_heading = "Network", long, value_name = "KIND", default_value = "loopback", value_parser = parse_net)]
    net: NetArg,

    /// With --net bridge: this address instead of the next free one.
    #[arg(help_heading = "Network", long, value_name = "ADDR")]
    ip: Option<std::net::Ipv4Addr>,

    /// With --net bridge: masquerade the bridge's subnet on its way out (an nftables table
    /// made over netlink; IPv4 forwarding is turned on), as Docker does.
    #[arg(help_heading = "Network", long)]
    nat: bool,

    /// With --net bridge: an /etc/hosts entry NAME:ADDR; may be repeated.
    #[arg(help_heading = "Network", long = "add-host", value_name = "NAME:ADDR", value_parser = parse_host)]
    add_host: Vec<(String, std::net::Ipv4Addr)>,

    /// Keep the caller's namespace of this kind (user, mnt, pid, uts, ipc, net, cgroup,
    /// time); may be repeated.
    #[arg(help_heading = "Namespaces and process", long, value_name = "NS")]
    share: Vec<Namespace>,

    /// Run the program as PID 1 instead of under the built-in init.
    #[arg(help_heading = "Namespaces and process", long)]
    no_init: bool,

    /// Working directory inside the sandbox.
    #[arg(
        help_heading = "Namespaces and process",
        long,
        value_name = "DIR",
        default_value = "/"
    )]
    chdir: PathBuf,

    /// Set an environment variable (NAME=VALUE); may be repeated.
    #[arg(
        help_heading = "Namespaces and process",
        long = "setenv",
        value_name = "NAME=VALUE"
    )]
    setenv: Vec<String>,

    /// Memory limit of the whole sandbox, swap included (K, M, G suffixes).
    #[arg(help_heading = "Limits", long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,

    /// Processes and threads of the whole sandbox.
    #[arg(help_heading = "Limits", long, value_name = "N")]
    pids: Option<u64>,

    /// CPU bandwidth in cores (e.g. 0.5).
    #[arg(help_heading = "Limits", long, value_name = "F")]
    cpus: Option<f64>,

    /// Wall-time limit (e.g. 500ms, 2s, 1m): the whole sandbox is killed at the deadline.
    #[arg(help_heading = "Limits", long = "time", value_name = "DUR", value_parser = parse_duration)]
    wall_time: Option<std::time::Duration>,

    /// CPU-time limit of the whole sandbox (every process and thread counted).
    #[arg(help_heading = "Limits", long, value_name = "DUR", value_parser = parse_duration)]
    cpu_time: Option<std::time::Duration>,

    /// Relay at most SIZE bytes of stdout and of stderr (K, M, G suffixes), as they come;
    /// past it the sandbox is killed and the run ends as output_limit_exceeded.
    #[arg(help_heading = "Limits", long, value_name = "SIZE", value_parser = parse_size)]
    output_limit: Option<u64>,

    /// Open files per process.
    #[arg(help_heading = "Limits", long, value_name = "N")]
    nofile: Option<u64>,

    /// Largest file a process may write (K, M, G suffixes).
    #[arg(help_heading = "Limits", long, value_name = "SIZE", value_parser = parse_size)]
    fsize: Option<u64>,

    /// The seccomp filter: `default` (refuses what a sandboxed program has no business
    /// doing: the keyring, bpf, mounts, namespaces, ptrace, io_uring, TIOCSTI, ...) or
    /// `off`.
    #[arg(help_heading = "Security", long, value_name = "default|off", default_value = "default",
          value_parser = ["default", "off"])]
    seccomp: String,

    /// Take a system call out of the default seccomp profile (repeatable), e.g. ptrace.
    #[arg(help_heading = "Security", long = "allow-syscall", value_name = "NAME")]
    allow_syscall: Vec<String>,

    /// Refuse one more system call with EPERM (repeatable).
    #[arg(help_heading = "Security", long = "deny-syscall", value_name = "NAME")]
    deny_syscall: Vec<String>,

    /// Keep a capability (repeatable; by default none is kept): CAP_NET_RAW or net_raw.
    #[arg(help_heading = "Security", long = "cap", value_name = "NAME")]
    cap: Vec<sandbox_core::Capability>,

    /// Give the program a pseudo-terminal (for a shell or an editor): this terminal is put
    /// in raw mode and relayed, its size follows ours.
    #[arg(
        help_heading = "Namespaces and process",
        long,
        conflicts_with = "output_limit"
    )]
    pty: bool,

    /// With landlock, allow reading PATH (and what is beneath) inside the sandbox
    /// (repeatable). Any --landlock-* flag denies every path not named.
    #[arg(help_heading = "Security", long = "landlock-ro", value_name = "PATH")]
    landlock_ro: Vec<PathBuf>,

    /// With landlock, allow reading and writing PATH (and what is beneath) (repeatable).
    #[arg(help_heading = "Security", long = "landlock-rw", value_name = "PATH")]
    landlock_rw: Vec<PathBuf>,

    /// Load the whole sandbox description from FILE: the serde form of `Sandbox` in TOML
    /// (`.toml`) or JSON (see examples/profiles/). Flags given on the command line apply
    /// on top of it.
    #[arg(help_heading = "Namespaces and process", long, value_name = "FILE")]
    profile: Option<PathBuf>,

    /// Print the outcome as one JSON line on stderr at the end.
    #[arg(help_heading = "Output", long)]
    json: bool,

    /// The program (an absolute path inside the sandbox) and its arguments.
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    command: Vec<String>,
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

/// What runs when no program is given: a look at the sandbox from inside.
const SHOW: &str = r#"echo "hostname: $(uname -n)"
echo "id:       $(id)"
echo "processes (ps -e):"
ps -e -o pid,ppid,user,comm 2>/dev/null || ls /proc | grep '^[0-9]'
echo "mount table (/proc/self/mountinfo):"
cat /proc/self/mountinfo"#;

/// The sandbox: `base` (a `--profile`, or the defaults) with the flags `given` on the
/// command line applied on top (without a profile, every flag counts, defaults included).
fn sandbox(args: &Args, base: Sandbox, given: &dyn Fn(&str) -> bool) -> Sandbox {
    let mut s = base;
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
    if given("no_init") {
        s = s.init(!args.no_init);
    }
    let mut limits = s.get_limits().clone();
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
    s = s.limits(limits);
    for ns in &args.share {
        s = s.share(*ns);
    }
    if given("hostname") && !args.share.contains(&Namespace::Uts) {
        s = s.hostname(&args.hostname);
    }
    let root_given = ["rootfs", "overlay", "image", "host_root"]
        .iter()
        .any(|f| given(f));
    if root_given {
        let rootfs = if let Some(dir) = &args.rootfs {
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
        };
        s = s.rootfs(rootfs);
    }
    if let Some(upper) = &args.upper {
        let r = s.get_rootfs().clone().upper_dir(upper);
        s = s.rootfs(r);
    }
    for m in args.bind.iter().chain(&args.tmpfs).chain(&args.file) {
        s = s.mount(m.clone());
    }
    let mut seccomp = s.get_seccomp().clone();
    if given("seccomp") {
        seccomp = if args.seccomp == "off" {
            sandbox_core::Seccomp::off()
        } else {
            sandbox_core::Seccomp::default_profile()
        };
    }
    for name in &args.allow_syscall {
        seccomp = seccomp.allow(name);
    }
    for name in &args.deny_syscall {
        seccomp = seccomp.deny(name);
    }
    s = s.seccomp(seccomp);
    for cap in &args.cap {
        s = s.capability(*cap);
    }
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

/// The terminal on our stdin, put in raw mode until dropped (so keys reach the sandbox's
/// terminal as typed), or nothing when stdin is not a terminal.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Sets the size of the terminal `fd`.
fn set_window_size(fd: &std::os::fd::OwnedFd, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Our terminal's size, if stdout is one.
fn window_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to the pointer.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// `--net`: a network, and for a bridge the subnet to create it with when missing.
#[derive(Clone, Debug)]
struct NetArg {
    network: Network,
    create: Option<(String, String)>,
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

/// Exit codes for failures of the runner itself, as `env` and container runtimes use them.
fn exit_code_for(e: &Error) -> u8 {
    match e {
        Error::Setup {
            stage: Stage::Exec,
            errno,
            ..
        } if errno.0 == libc::ENOENT => 127,
        Error::Setup {
            stage: Stage::Exec, ..
        } => 126,
        _ => 125,
    }
}

async fn run(args: Args, given: Vec<String>) -> Result<ExitCode, Error> {
    // Everything that can be refused is refused before the host is touched (a bridge
    // made, NAT turned on).
    let sandbox = match &args.profile {
        Some(p) => sandbox(&args, load_profile(p)?, &|id| {
            given.contains(&id.to_string())
        }),
        None => sandbox(&args, Sandbox::new(), &|_| true),
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
    if args.nat && !matches!(args.net.network, Network::Bridge(_)) {
        return Err(Error::Invalid {
            what: "--nat",
            reason: "needs --net bridge:NAME".into(),
        });
    }
    if (args.ip.is_some() || !args.add_host.is_empty())
        && !matches!(sandbox.get_network(), Network::Bridge(_))
    {
        return Err(Error::Invalid {
            what: if args.ip.is_some() {
                "--ip"
            } else {
                "--add-host"
            },
            reason: "needs --net bridge:NAME".into(),
        });
    }
    // A bridge named with a subnet is created when missing (and left in place, as
    // `docker network create` leaves it); otherwise the spawn opens it.
    use sandbox_core::net::{Bridge, Error as NetError};
    let bridge = match (&args.net.create, &args.net.network) {
        (Some((name, cidr)), _) => Some(match Bridge::open(name).await {
            Ok(b) => {
                // An existing bridge keeps its subnet: a different one asked for is a
                // mistake, not something to ignore.
                let want: sandbox_core::net::Ipv4Cidr = cidr.parse()?;
                if b.cidr() != want {
                    return Err(Error::Invalid {
                        what: "--net",
                        reason: format!(
                            "bridge {name} exists with subnet {}, not {want} (leave the subnet \
                             out to use it as it is)",
                            b.cidr()
                        ),
                    });
                }
                b
            }
            Err(NetError::NoSuchBridge { .. }) => Bridge::create(name, cidr).await?,
            Err(e) => return Err(e.into()),
        }),
        (None, Network::Bridge(b)) if args.nat => Some(Bridge::open(&b.bridge).await?),
        _ => None,
    };
    if args.nat {
        match &bridge {
            Some(b) => b.enable_nat().await?,
            None => {
                return Err(Error::Invalid {
                    what: "--nat",
                    reason: "needs --net bridge:NAME".into(),
                })
            }
        }
    }
    let mut cmd = match args.command.split_first() {
        Some((program, rest)) => {
            let mut c = sandbox.command(program);
            c.args(rest);
            c
        }
        None => {
            let mut c = sandbox.command("/bin/sh");
            c.arg("-c").arg(SHOW);
            c
        }
    };
    for kv in &args.setenv {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    cmd.current_dir(&args.chdir)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if args.output_limit.is_some() {
        // Relayed through pipes as it comes, cut at the limit (the sandbox is killed).
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    if args.pty {
        cmd.stdin(Stdio::pty())
            .stdout(Stdio::pty())
            .stderr(Stdio::pty());
    }
    let mut child = cmd.spawn().await?;
    // With --pty: our terminal in raw mode, keys to the sandbox's terminal, its output to
    // ours, its size following ours.
    let _raw = args.pty.then(RawMode::enter);
    let mut pty_out = None;
    let mut winch = None;
    let mut pty_fd = None;
    if let Some(pty) = child.pty.take() {
        if let Some((rows, cols)) = window_size() {
            let _ = pty.resize(rows, cols);
        }
        // Its descriptor, for resizing once the relays own the pty.
        use std::os::fd::AsFd;
        pty_fd = pty.as_fd().try_clone_to_owned().ok();
        let (mut from, mut to) = tokio::io::split(pty);
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut to).await;
        });
        pty_out = Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut tokio::io::stdout()).await;
        }));
        winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    }

    // Pass the signals a terminal or a supervisor sends us on to the sandbox.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Invalid {
        what: "signal handler",
        reason: e.to_string(),
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Invalid {
        what: "signal handler",
        reason: e.to_string(),
    })?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::Invalid {
        what: "signal handler",
        reason: e.to_string(),
    })?;
    // With --output-limit: copy each stream to ours, at most the limit; past it, say so.
    let (cut_tx, mut cut_rx) = tokio::sync::mpsc::channel::<()>(2);
    let mut relays = Vec::new();
    if let Some(limit) = args.output_limit {
        async fn relay<R: tokio::io::AsyncRead + Unpin, W: std::io::Write>(
            mut r: R,
            mut w: W,
            limit: u64,
            cut: tokio::sync::mpsc::Sender<()>,
        ) {
            use tokio::io::AsyncReadExt;
            let mut left = limit;
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let keep = (n as u64).min(left) as usize;
                let _ = w.write_all(&buf[..keep]);
                let _ = w.flush();
                left -= keep as u64;
                if keep < n {
                    let _ = cut.send(()).await;
                    return;
                }
            }
        }
        if let Some(out) = child.stdout.take() {
            relays.push(tokio::spawn(relay(
                out,
                std::io::stdout(),
                limit,
                cut_tx.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            relays.push(tokio::spawn(relay(
                err,
                std::io::stderr(),
                limit,
                cut_tx.clone(),
            )));
        }
    }
    drop(cut_tx);
    let mut truncated = false;
    let outcome = loop {
        tokio::select! {
            o = child.wait() => break o?,
            Some(()) = cut_rx.recv(), if !truncated => {
                truncated = true;
                let _ = child.start_kill();
            }
            _ = term.recv() => { let _ = child.signal(libc::SIGTERM); }
            _ = int.recv() => { let _ = child.signal(libc::SIGINT); }
            _ = hup.recv() => { let _ = child.signal(libc::SIGHUP); }
            Some(()) = async { winch.as_mut()?.recv().await } => {
                // The sandbox's terminal takes our new size (its program gets SIGWINCH).
                if let (Some((rows, cols)), Some(fd)) = (window_size(), &pty_fd) {
                    set_window_size(fd, rows, cols);
                }
            }
        }
    };
    if let Some(out) = pty_out {
        // What the program printed last is still on its way.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), out).await;
    }
    for r in relays {
        let _ = r.await;
    }
    // A cut the select above did not see (the run ended first) still counts.
    if cut_rx.try_recv().is_ok() {
        truncated = true;
    }
    let mut outcome = outcome;
    if truncated {
        outcome.output_truncated = true;
        if outcome.ending != sandbox_core::Ending::WallTimeExceeded {
            outcome.ending = sandbox_core::Ending::OutputLimitExceeded;
        }
    }
    if args.json {
        eprintln!(
            "{}",
            serde_json::to_string(&outcome).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
    Ok(ExitCode::from(outcome.shell_code().clamp(0, 255) as u8))
}

/// What a person can do about some errors.
fn hint(e: &Error) -> Option<&'static str> {
    use sandbox_core::net::Error as NetError;
    match e {
        Error::Net(NetError::NoSuchBridge { .. }) => {
            Some("create it by giving its subnet: --net bridge:NAME:10.88.0.0/24")
        }
        Error::Setup {
            stage: Stage::Exec,
            errno,
            ..
        } if errno.0 == libc::ENOENT => Some(
            "the program is looked up inside the sandbox's root: give its absolute path \
             there (the default root has the host's /usr, /bin, /sbin, /lib* and /etc)",
        ),
        Error::Unsupported(_) => Some(
            "--memory, --pids, --cpus and --cpu-time need cgroups; see `run --help` and \
             sandbox-core's Limits documentation",
        ),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    // The flags typed on the command line (over a --profile, only these apply).
    let given: Vec<String> = matches
        .ids()
        .filter(|id| {
            matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|id| id.as_str().to_string())
        .collect();
    let json = args.json;
    match run(args, given).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("run: {e}");
            if let Some(hint) = hint(&e) {
                eprintln!("run: {hint}");
            }
            if json {
                eprintln!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            ExitCode::from(exit_code_for(&e))
        }
    }
}
