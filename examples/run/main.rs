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
//! The code, one concern per file, in the order a run goes through them:
//! - `args.rs`: the command line (clap's `Args`, the help, the value parsers);
//! - `sandbox.rs`: the `Sandbox`, from a `--profile` and the flags typed over it;
//! - `network.rs`: on the host, the bridge of `--net bridge:…` created, NAT turned on;
//! - `command.rs`: the program (or the look from inside), its environment and stdio;
//! - `terminal.rs`: with `--pty`, our terminal in raw mode, the sandbox's relayed;
//! - `output.rs`: with `--output-limit`, stdout and stderr relayed and cut;
//! - `wait.rs`: the wait for the end, our signals passed on;
//! - `outcome.rs`: the outcome and its `--json` line;
//! - this file: `main`, `run` as the sequence of those steps, the exit codes and hints.

use sandbox_core::{Error, Stage};
use std::process::ExitCode;

mod args;
mod command;
mod network;
mod outcome;
mod output;
mod sandbox;
mod terminal;
#[path = "../common/units.rs"]
mod units;
mod wait;

use args::Args;
use output::OutputRelay;
use terminal::{PtyRelay, RawMode};
use wait::Signals;

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
    let mut pty = PtyRelay::start(&mut child);
    // Pass the signals a terminal or a supervisor sends us on to the sandbox.
    let mut signals = Signals::catch()?;
    // With --output-limit: copy each stream to ours, at most the limit; past it, say so.
    let mut output = OutputRelay::start(&mut child, args.output_limit);
    let (outcome, cut) = wait::wait(&mut child, &mut signals, &mut output, &mut pty).await?;
    // What the program printed last is still on its way.
    pty.finish().await;
    // A cut the wait did not see (the run ended first) still counts.
    let cut_late = output.finish().await;
    let outcome = outcome::with_cut(outcome, cut || cut_late);
    if args.json {
        outcome::print_json(&outcome);
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
                outcome::print_json_error(&e);
            }
            ExitCode::from(exit_code_for(&e))
        }
    }
}
