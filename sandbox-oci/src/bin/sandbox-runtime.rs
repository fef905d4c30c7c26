//! `sandbox-runtime`: an OCI runtime command line (as runc's) over sandbox-core.
//!
//! ```text
//! sandbox-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND
//!   spec [--bundle DIR]                      a default config.json
//!   run [--bundle DIR] [--pid-file F] ID     run a container to its end (exit code = its)
//!   state ID | list [--format table|json] [--quiet]
//!   kill [--all] ID [SIGNAL]                 (default SIGTERM)
//!   ps [--format table|json] ID              the host pids of its processes
//!   delete [--force] ID
//!   features | --version
//! ```
//! `create`/`start`/`exec`/`pause`/`resume`, `run --detach` and terminals are refused
//! with an error (not yet built), as is `--systemd-cgroup`.

use clap::{Parser, Subcommand};
use sandbox_oci::state::{Record, Status, Store};
use sandbox_oci::Bundle;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints a line to standard output; a closed pipe (`| head`) is no error.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Parser, Debug)]
#[command(
    name = "sandbox-runtime",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0"),
    about = "An OCI runtime whose containers are sandbox-core sandboxes"
)]
struct Cli {
    /// Where containers' state is kept.
    #[arg(long, global = true, default_value = "/run/sandbox-runtime")]
    root: PathBuf,
    /// Write errors and warnings to FILE (default: standard error).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// How --log lines are written.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Manage cgroups with systemd (refused: not supported).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// More output (accepted, as runc's).
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Writes a default config.json into the bundle directory.
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
    },
    /// Creates and runs a container, waits for it, and exits with its exit code.
    Run {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long, short)]
        detach: bool,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// Keep the container's state after it ends (delete removes it).
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        no_pivot: bool,
        #[arg(long)]
        no_new_keyring: bool,
        id: String,
    },
    /// Prints a container's OCI state.
    State { id: String },
    /// Lists the containers.
    List {
        #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(long, short)]
        quiet: bool,
    },
    /// Sends a signal to a container's first process (`--all`: to each of its processes).
    Kill {
        #[arg(long, short)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Forgets a stopped container (`--force`: kills a running one first).
    Delete {
        #[arg(long, short)]
        force: bool,
        id: String,
    },
    /// Prints what this runtime supports (the runtime-spec's features document).
    Features,
    /// Not yet: create a container to start later.
    Create {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Not yet: start a created container.
    Start {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Not yet: run a process in a container.
    Exec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Lists the host pids of a running container's processes.
    Ps {
        #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
    },
}

/// Where errors and warnings go.
struct Log {
    file: Option<std::fs::File>,
    json: bool,
}

impl Log {
    fn open(cli: &Cli) -> Result<Log, Fail> {
        let file = match &cli.log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Fail(format!("--log {}: {e}", p.display())))?,
            ),
            None => None,
        };
        Ok(Log {
            file,
            json: cli.log_format == "json",
        })
    }

    fn write(&mut self, level: &str, msg: &str) {
        let line = if self.json {
            serde_json::json!({
                "level": level,
                "msg": msg,
                "time": sandbox_oci::state::now_rfc3339(),
            })
            .to_string()
        } else {
            format!("{level}: {msg}")
        };
        // (A closed standard error is no reason to panic.)
        match &mut self.file {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => {
                let _ = writeln!(std::io::stderr(), "sandbox-runtime: {line}");
            }
        }
        // An error also goes to standard error, for a person at a terminal.
        if self.file.is_some() && level == "error" {
            let _ = writeln!(std::io::stderr(), "sandbox-runtime: {msg}");
        }
    }
}

/// A failed command: what to say, and the exit code.
struct Fail(String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut log = match Log::open(&cli) {
        Ok(log) => log,
        Err(Fail(msg)) => {
            let _ = writeln!(std::io::stderr(), "sandbox-runtime: {msg}");
            return ExitCode::from(1);
        }
    };
    let result = if cli.systemd_cgroup {
        Err(Fail(
            "--systemd-cgroup: not supported (cgroups are managed by this runtime)".into(),
        ))
    } else {
        dispatch(&cli, &mut log)
    };
    match result {
        Ok(code) => code,
        Err(Fail(msg)) => {
            log.write("error", &msg);
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: &Cli, log: &mut Log) -> Result<ExitCode, Fail> {
    let store = Store::new(&cli.root);
    match &cli.command {
        Cmd::Spec { bundle } => spec(bundle),
        Cmd::Run {
            bundle,
            pid_file,
            detach,
            console_socket,
            keep,
            no_pivot: _,
            no_new_keyring: _,
            id,
        } => {
            if *detach {
                return Err(Fail(
                    "run --detach: not supported yet (needs create/start)".into(),
                ));
            }
            if console_socket.is_some() {
                return Err(Fail(
                    "--console-socket: terminals are not supported yet".into(),
                ));
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(&store, log, bundle, pid_file.as_deref(), *keep, id))
        }
        Cmd::State { id } => {
            let r = store.load(id)?;
            say!("{:#}", r.oci_state());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List { format, quiet } => list(&store, format, *quiet),
        Cmd::Kill { all, id, signal } => {
            let sig = parse_signal(signal)?;
            let r = store.load(id)?;
            if r.status() != Status::Running {
                return Err(Fail(format!("container {id} is not running")));
            }
            kill(&r, sig, *all)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Delete { force, id } => {
            let r = match store.load(id) {
                Ok(r) => r,
                // Claimed by a runtime that died before it recorded the container.
                Err(sandbox_oci::state::StateError::Missing(_)) if cli.root.join(id).is_dir() => {
                    store.remove_unrecorded(id)?;
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e.into()),
            };
            if r.status() == Status::Running {
                if !force {
                    return Err(Fail(format!(
                        "container {id} is running: stop it, or delete --force"
                    )));
                }
                kill(&r, libc::SIGKILL, true)?;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while r.status() == Status::Running && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                if r.status() == Status::Running {
                    return Err(Fail(format!("container {id} did not end within 10 s")));
                }
            }
            store.remove(id)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Features => {
            say!("{:#}", sandbox_oci::features());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ps { format, id } => {
            let r = store.load(id)?;
            if r.status() != Status::Running {
                return Err(Fail(format!("container {id} is not running")));
            }
            let pids = processes(&r)?;
            if format == "json" {
                say!("{}", serde_json::Value::from(pids));
            } else {
                say!("PID");
                for p in pids {
                    say!("{p}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Create { .. } | Cmd::Start { .. } | Cmd::Exec { .. } => {
            let name = format!("{:?}", cli.command);
            let name = name
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_lowercase();
            Err(Fail(format!("{name}: not supported yet (use run)")))
        }
    }
}

/// `spec`: a default config.json (refuses to overwrite one).
fn spec(bundle: &Path) -> Result<ExitCode, Fail> {
    let path = bundle.join("config.json");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Fail(format!("{}: {e}", path.display())))?;
    writeln!(f, "{:#}", sandbox_oci::default_spec())?;
    Ok(ExitCode::SUCCESS)
}

/// `run`: the container to its end; its exit code (128 + signal when killed).
async fn run(
    store: &Store,
    log: &mut Log,
    bundle: &Path,
    pid_file: Option<&Path>,
    keep: bool,
    id: &str,
) -> Result<ExitCode, Fail> {
    let bundle = std::fs::canonicalize(bundle)
        .map_err(|e| Fail(format!("bundle {}: {e}", bundle.display())))?;
    // Everything checked before the id is claimed: a bad bundle leaves nothing in --root.
    sandbox_oci::state::check_id(id)?;
    let c = Bundle::load(&bundle)?.convert()?;
    if c.terminal {
        return Err(Fail(
            "process.terminal: terminals are not supported yet".into(),
        ));
    }
    if c.hooks.is_some() {
        return Err(Fail("hooks: not supported yet".into()));
    }
    for w in &c.warnings {
        log.write("warning", &w.to_string());
    }
    let claim = store.claim(id)?;
    let result = run_claimed(store, bundle, pid_file, id, c.command).await;
    drop(claim);
    if !keep || result.is_err() {
        let _ = store.remove(id);
    }
    result
}

async fn run_claimed(
    store: &Store,
    bundle: PathBuf,
    pid_file: Option<&Path>,
    id: &str,
    mut command: sandbox_core::Command,
) -> Result<ExitCode, Fail> {
    use sandbox_core::Stdio;
    command
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().await?;
    let pid = child.id().unwrap_or(0) as i32;
    store.save(&Record {
        id: id.to_string(),
        bundle,
        pid,
        started: sandbox_oci::state::start_time(pid).unwrap_or(0),
        created: sandbox_oci::state::now_rfc3339(),
    })?;
    if let Some(p) = pid_file {
        std::fs::write(p, pid.to_string()).map_err(|e| Fail(format!("{}: {e}", p.display())))?;
    }
    // Signals to the runtime go to the container, as runc's `run` forwards them.
    use tokio::signal::unix::{signal, SignalKind};
    let mut forwarded = Vec::new();
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        forwarded.push((sig, signal(SignalKind::from_raw(sig))?));
    }
    let outcome = loop {
        let any = futures_signal(&mut forwarded);
        tokio::select! {
            o = child.wait() => break o?,
            sig = any => {
                let _ = child.signal(sig);
            }
        }
    };
    let code = match (outcome.code(), outcome.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The next of `signals` to arrive.
async fn futures_signal(signals: &mut [(i32, tokio::signal::unix::Signal)]) -> i32 {
    std::future::poll_fn(|cx| {
        for (sig, s) in signals.iter_mut() {
            if s.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*sig);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn list(store: &Store, format: &str, quiet: bool) -> Result<ExitCode, Fail> {
    let mut records = Vec::new();
    for id in store.ids()? {
        if let Ok(r) = store.load(&id) {
            records.push(r);
        }
    }
    if quiet {
        for r in &records {
            say!("{}", r.id);
        }
    } else if format == "json" {
        let v: Vec<serde_json::Value> = records.iter().map(Record::oci_state).collect();
        say!("{}", serde_json::Value::from(v));
    } else {
        say!("ID\tPID\tSTATUS\tBUNDLE\tCREATED");
        for r in &records {
            let s = r.oci_state();
            say!(
                "{}\t{}\t{}\t{}\t{}",
                r.id,
                s["pid"],
                r.status().as_str(),
                r.bundle.display(),
                r.created
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A signal by name (`SIGKILL`, `KILL`) or number (real-time signals are refused: not
/// yet).
fn parse_signal(s: &str) -> Result<i32, Fail> {
    if let Ok(n) = s.parse::<i32>() {
        return match nix::sys::signal::Signal::try_from(n) {
            Ok(_) => Ok(n),
            Err(_) => Err(Fail(format!("signal {n}: not supported"))),
        };
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let known = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("WINCH", libc::SIGWINCH),
    ];
    known
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| Fail(format!("unknown signal {s:?}")))
}

/// The host pids of a container's processes: those of its PID namespace, found from the
/// host's `/proc` (only its first process when it shares the runtime's namespace).
fn processes(r: &Record) -> Result<Vec<i32>, Fail> {
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid", r.pid))?;
    let mut pids = vec![r.pid];
    if std::fs::read_link("/proc/self/ns/pid")? != ns {
        for e in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if pid != r.pid
                && std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
            {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Sends `sig` to the container's first process, or (`all`) to each of its processes.
fn kill(r: &Record, sig: i32, all: bool) -> Result<(), Fail> {
    let send = |pid: i32| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::try_from(sig).ok(),
        )
    };
    if all {
        for pid in processes(r)?.into_iter().filter(|p| *p != r.pid) {
            let _ = send(pid);
        }
    }
    send(r.pid).map_err(|e| Fail(format!("kill {}: {e}", r.pid)))?;
    Ok(())
}
