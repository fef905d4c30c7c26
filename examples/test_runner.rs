//! Runs every test of a Rust test binary, each in a sandbox of its own: its own hostname,
//! PID space, `/tmp` and network (loopback), N at a time, with a progress line per test
//! and a summary like `cargo test`'s. A test that leaks a process, writes outside its
//! `/tmp` or opens a port cannot disturb another.
//!
//! ```text
//! cargo test --no-run --manifest-path examples/colliding-tests/Cargo.toml  # prints the binary
//! cargo run --release --example test_runner -- TEST_BINARY [--jobs N] [--filter TEXT]
//!     [--bind SRC[:DST]]... [--pool]
//! ```
//!
//! The tests are listed with the binary's own `--list`; each runs as
//! `TEST_BINARY --exact NAME --test-threads 1` in a sandbox whose root is the host's
//! system directories read-only (the binary bound in, read-only, at `/test/bin`), with a
//! fresh `/tmp`, a loopback network, a 10-minute wall time and its own hostname. With
//! `--pool` the sandboxes are taken from a warm pool of N made ahead (each still used by one
//! test only, all named `test`).
use clap::Parser;
use sandbox_core::{Command, Limits, Mount, Network, Pool, Rootfs, Sandbox, Stdio};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs a test binary's tests, each in its own sandbox.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The test binary (what `cargo test --no-run` builds).
    binary: PathBuf,
    /// Tests run at once (default: the number of cores).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Only the tests whose name contains TEXT.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Bind the host's SRC read-only at DST (default: the same path) in every sandbox, for
    /// tests that read files of their crate; may be repeated.
    #[arg(long, value_name = "SRC[:DST]")]
    bind: Vec<String>,
    /// Take the sandboxes from a warm pool of JOBS made ahead (each still used by one test
    /// only); every sandbox then has the hostname `test`.
    #[arg(long)]
    pool: bool,
}

/// Where the tests run: one description (the binary, the binds), and with `--pool`
/// sandboxes of it made ahead.
struct Runner {
    sandbox: Sandbox,
    pool: Option<Pool>,
}

/// The tests of `binary`, from its `--list`.
fn list(binary: &std::path::Path) -> Result<Vec<String>, String> {
    let out = std::process::Command::new(binary)
        .args(["--list", "--format", "terse"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --list failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect())
}

/// A hostname from a test's name: letters, digits and dashes, at most 63 bytes.
fn hostname(i: usize, test: &str) -> String {
    let mut h: String = test
        .rsplit("::")
        .next()
        .unwrap_or(test)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    h.truncate(50);
    format!("t{i}-{}", h.trim_matches('-'))
}

/// How one test went.
struct Result1 {
    name: String,
    passed: bool,
    time: Duration,
    output: String,
}

/// The sandbox every test runs in (but for its hostname).
fn test_sandbox(binary: &std::path::Path, binds: &[Mount]) -> Sandbox {
    let mut sandbox = Sandbox::new()
        .hostname("test")
        .rootfs(Rootfs::host_readonly())
        .mount(Mount::bind(binary, "/test/bin").readonly())
        .mount(Mount::tmpfs("/tmp").size(256 << 20))
        .network(Network::loopback())
        .limits(Limits::new().wall_time(Duration::from_secs(600)));
    for m in binds {
        sandbox = sandbox.mount(m.clone());
    }
    sandbox
}

async fn run_one(runner: Arc<Runner>, i: usize, name: String) -> Result1 {
    let started = Instant::now();
    let mut cmd = match &runner.pool {
        Some(_) => Command::new("/test/bin"),
        None => runner
            .sandbox
            .clone()
            .hostname(hostname(i, &name))
            .command("/test/bin"),
    };
    cmd.args(["--exact", &name, "--test-threads", "1", "--nocapture"])
        .env("RUST_BACKTRACE", "1")
        .current_dir("/tmp")
        .stdin(Stdio::null());
    let out = match &runner.pool {
        Some(pool) => pool.output(&mut cmd).await,
        None => cmd.output().await,
    };
    let (passed, output) = match out {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("could not run the sandbox: {e}\n")),
    };
    Result1 {
        name,
        passed,
        time: started.elapsed(),
        output,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let binary = match std::fs::canonicalize(&args.binary) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("test_runner: {}: {e}", args.binary.display());
            return ExitCode::from(2);
        }
    };
    let mut tests = match list(&binary) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("test_runner: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(f) = &args.filter {
        tests.retain(|t| t.contains(f.as_str()));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let total = tests.len();
    println!("\nrunning {total} tests, each in a sandbox of its own, {jobs} at a time");
    let started = Instant::now();
    let binds: Vec<Mount> = args
        .bind
        .iter()
        .map(|b| {
            let (src, dst) = b.split_once(':').unwrap_or((b, b));
            Mount::bind(src, dst).readonly()
        })
        .collect();
    let sandbox = test_sandbox(&binary, &binds);
    let pool = if args.pool {
        match Pool::new(sandbox.clone(), jobs).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("test_runner: could not make the pool of sandboxes: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let runner = Arc::new(Runner { sandbox, pool });
    let slots = Arc::new(tokio::sync::Semaphore::new(jobs));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (i, name) in tests.into_iter().enumerate() {
        let (runner, slots, tx) = (runner.clone(), slots.clone(), tx.clone());
        tokio::spawn(async move {
            let _slot = slots.acquire().await.expect("never closed");
            let _ = tx.send(run_one(runner, i, name).await);
        });
    }
    drop(tx);
    let mut done = Vec::new();
    while let Some(r) = rx.recv().await {
        println!(
            "[{}/{total}] test {} ... {} ({:.2} s)",
            done.len() + 1,
            r.name,
            if r.passed { "ok" } else { "FAILED" },
            r.time.as_secs_f64()
        );
        done.push(r);
    }
    let failed: Vec<&Result1> = done.iter().filter(|r| !r.passed).collect();
    if !failed.is_empty() {
        println!("\nfailures:");
        for r in &failed {
            println!("\n---- {} ----\n{}", r.name, r.output.trim_end());
        }
        println!("\nfailures:");
        for r in &failed {
            println!("    {}", r.name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s",
        if failed.is_empty() { "ok" } else { "FAILED" },
        done.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
