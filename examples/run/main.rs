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
//!
//! The code, one concern per file: `args.rs` (the command line), `sandbox.rs` (the
//! `Sandbox` from a profile and the flags), `command.rs` (the program, its environment
//! and stdio), `network.rs` (the bridge and NAT on the host),
//! `terminal.rs` (raw mode, window size); this file runs the steps and turns errors into
//! exit codes and hints.

use sandbox_core::{Error, Stage};
use std::process::ExitCode;

mod args;
mod command;
mod network;
mod sandbox;
mod terminal;
#[path = "../common/units.rs"]
mod units;

use args::Args;
use terminal::{set_window_size, window_size, RawMode};

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
    let sandbox = sandbox::build(&args, &given)?;
    network::check(&args, &sandbox)?;
    // Held to the end: while it is, the spawn takes the sandbox's address from its allocator.
    let _bridge = network::bridge(&args).await?;
    let mut cmd = command::command(&args, &sandbox);
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
