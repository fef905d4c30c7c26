//! `run`: a bubblewrap-like command line over the sandbox SDK.
//!
//! ```text
//! cargo run --release --example run -- [OPTIONS] [-- PROGRAM ARGS...]
//! ```
//!
//! With no program it runs a shell that shows the isolation: the hostname, `id`, `ps`
//! seeing only the sandbox's processes, and the sandbox's own mount table. With a program
//! it runs it with stdin, stdout and stderr passed through and exits with its status
//! (128 + the signal when it was killed). `--json` adds one JSON line with the outcome on
//! stderr at the end.
//!
//! It is a thin layer over the public API: every option maps to one builder call.

use clap::Parser;
use sandbox_core::{Error, Namespace, Network, Rootfs, Sandbox, Stage, Stdio};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a program in a new Linux sandbox: its own user, mount, PID, UTS, IPC, network,
/// cgroup and time namespaces, with a built-in init as PID 1.
#[derive(Parser, Debug)]
#[command(name = "run", version, about, long_about = None)]
struct Args {
    /// Hostname inside the sandbox.
    #[arg(long, value_name = "H", default_value = sandbox_core::DEFAULT_HOSTNAME)]
    hostname: String,

    /// Use DIR as the root filesystem (entered with pivot_root, read-only). Without it the
    /// sandbox sees the host's tree through its own mount table, with a fresh /proc.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,

    /// Make the --rootfs directory writable.
    #[arg(long, requires = "rootfs")]
    rootfs_writable: bool,

    /// Network: none (only lo, down), loopback (lo up) or host (the caller's).
    #[arg(long, value_name = "KIND", default_value = "loopback")]
    net: Network,

    /// Keep the caller's namespace of this kind (user, mnt, pid, uts, ipc, net, cgroup,
    /// time); may be repeated.
    #[arg(long, value_name = "NS")]
    share: Vec<Namespace>,

    /// Run the program as PID 1 instead of under the built-in init.
    #[arg(long)]
    no_init: bool,

    /// Working directory inside the sandbox.
    #[arg(long, value_name = "DIR", default_value = "/")]
    chdir: PathBuf,

    /// Set an environment variable (NAME=VALUE); may be repeated.
    #[arg(long = "setenv", value_name = "NAME=VALUE")]
    setenv: Vec<String>,

    /// Print the outcome as one JSON line on stderr at the end.
    #[arg(long)]
    json: bool,

    /// The program (an absolute path inside the sandbox) and its arguments.
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    command: Vec<String>,
}

/// What runs when no program is given: a look at the sandbox from inside.
const SHOW: &str = r#"echo "hostname: $(uname -n)"
echo "id:       $(id)"
echo "processes (ps -e):"
ps -e -o pid,ppid,user,comm 2>/dev/null || ls /proc | grep '^[0-9]'
echo "mount table (/proc/self/mountinfo):"
cat /proc/self/mountinfo"#;

fn sandbox(args: &Args) -> Sandbox {
    let mut s = Sandbox::new().network(args.net.clone()).init(!args.no_init);
    for ns in &args.share {
        s = s.share(*ns);
    }
    if !args.share.contains(&Namespace::Uts) {
        s = s.hostname(&args.hostname);
    }
    if let Some(dir) = &args.rootfs {
        let mut r = Rootfs::dir(dir);
        if args.rootfs_writable {
            r = r.writable();
        }
        s = s.rootfs(r);
    }
    s
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

async fn run(args: Args) -> Result<ExitCode, Error> {
    let sandbox = sandbox(&args);
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
    let mut child = cmd.spawn().await?;

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
    let outcome = loop {
        tokio::select! {
            o = child.wait() => break o?,
            _ = term.recv() => { let _ = child.signal(libc::SIGTERM); }
            _ = int.recv() => { let _ = child.signal(libc::SIGINT); }
            _ = hup.recv() => { let _ = child.signal(libc::SIGHUP); }
        }
    };
    if args.json {
        eprintln!(
            "{}",
            serde_json::to_string(&outcome).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
    Ok(ExitCode::from(outcome.shell_code().clamp(0, 255) as u8))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("run: {e}");
            if json {
                eprintln!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            ExitCode::from(exit_code_for(&e))
        }
    }
}
