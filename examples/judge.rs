//! `judge`: a small code judge on the sandbox SDK.
//!
//! ```text
//! cargo run --release --example judge -- SOURCE TESTS_DIR [--time 1s] [--memory 256M] [--json]
//!     [--pool N [--reuse]]
//! cargo run --release --example judge -- examples/judge/submissions/ok.c examples/judge/sum
//! ```
//!
//! SOURCE is C (`.c`, built with the host's `gcc`), C++ (`.cc`/`.cpp`, `g++`) or Python
//! (`.py`, `python3`). TESTS_DIR holds `NAME.in`/`NAME.out` pairs. The source is compiled in
//! a sandbox of its own (looser limits); every test then runs in a fresh sandbox: no
//! network, the host's system directories read-only, a 16 MiB writable `/tmp`, the
//! program's input on stdin, limits on wall time, CPU time (the same), memory, processes
//! and output. Output is compared ignoring trailing whitespace. Verdicts: AC (accepted), WA
//! (wrong answer), TLE (time), MLE (memory), OLE (output), RE (runtime error), CE
//! (compilation error). Tests run concurrently, up to the number of cores. With `--pool N`
//! the tests take sandboxes made ahead (one each); with `--reuse` too, each sandbox runs test
//! after test, reset in between.

use clap::Parser;
use sandbox_core::{Ending, Limits, Mount, Network, Outcome, Pool, Rootfs, Sandbox, Stdio};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[path = "common/units.rs"]
mod units;
use units::{parse_duration, parse_size};

/// Judge a submission against a folder of tests.
#[derive(Parser, Debug)]
#[command(name = "judge", version, about)]
struct Args {
    /// The submission (.c, .cc, .cpp or .py).
    source: PathBuf,
    /// A folder of NAME.in / NAME.out pairs.
    tests: PathBuf,
    /// Time limit per test (wall and CPU time), e.g. 1s, 500ms, 1m.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    time: Duration,
    /// Memory limit per test (K, M, G suffixes).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    memory: u64,
    /// One JSON object per test, and a summary object, instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep N sandboxes made ahead (a warm pool: each test takes one, its program started
    /// by the sandbox's waiting init); 0 spawns a sandbox per test.
    #[arg(long, default_value_t = 0)]
    pool: usize,
    /// With --pool: each sandbox of the pool runs test after test, reset by its init in
    /// between (a reused pool), instead of one test each.
    #[arg(long, requires = "pool")]
    reuse: bool,
}

/// Where the tests run: one sandbox description (the program, the limits), and with
/// `--pool N` sandboxes of it made ahead.
struct Runner {
    sandbox: Sandbox,
    pool: Option<Pool>,
    program: &'static str,
    argv: Vec<&'static str>,
}

/// How the submission runs inside a test's sandbox.
enum Program {
    /// A compiled binary, placed at /work/prog.
    Binary(Vec<u8>),
    /// A Python script, placed at /work/main.py.
    Python(Vec<u8>),
}

/// The verdict of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Ac,
    Wa,
    Tle,
    Mle,
    Ole,
    Re,
    Ce,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ac => "AC",
            Verdict::Wa => "WA",
            Verdict::Tle => "TLE",
            Verdict::Mle => "MLE",
            Verdict::Ole => "OLE",
            Verdict::Re => "RE",
            Verdict::Ce => "CE",
        }
    }
}

/// The sandbox every program runs in: no network, the host's system directories
/// read-only, a writable /tmp of `tmp` bytes.
fn base(tmp: u64) -> Sandbox {
    Sandbox::new()
        .hostname("judge")
        .rootfs(Rootfs::host_readonly())
        .network(Network::none())
        .mount(Mount::tmpfs("/tmp").size(tmp))
}

/// Compiles the source in a sandbox of its own; the binary comes back on stdout.
async fn compile(source: &Path) -> Result<Program, String> {
    let code = std::fs::read(source).map_err(|e| format!("{}: {e}", source.display()))?;
    let ext = source.extension().and_then(|e| e.to_str()).unwrap_or("");
    let (compiler, file) = match ext {
        "py" => return Ok(Program::Python(code)),
        "c" => ("gcc", "/work/main.c"),
        "cc" | "cpp" => ("g++", "/work/main.cc"),
        other => {
            return Err(format!(
                "unknown language of {:?} (.c, .cc, .cpp, .py)",
                other
            ))
        }
    };
    let limits = Limits::new()
        .wall_time(Duration::from_secs(60))
        .memory(1 << 30)
        .pids(64)
        .output(256 << 20);
    let script = format!("{compiler} -O2 -o /tmp/prog {file} -lm >&2 && cat /tmp/prog");
    let out = base(256 << 20)
        .mount(Mount::file(file, code).readonly())
        .limits(limits)
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(Program::Binary(out.stdout))
}

struct Result1 {
    name: String,
    verdict: Verdict,
    outcome: Option<Outcome>,
}

fn same_output(got: &[u8], want: &[u8]) -> bool {
    let norm = |b: &[u8]| -> Vec<String> {
        let text = String::from_utf8_lossy(b);
        let mut lines: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    };
    norm(got) == norm(want)
}

/// The sandbox every test of `program` runs in, under the per-test limits.
fn test_sandbox(program: &Program, time: Duration, memory: u64) -> Runner {
    // CPU time is the limit; wall time (which also counts the sandbox's setup and other
    // tests running beside it) only stops a program that sleeps or waits.
    let limits = Limits::new()
        .wall_time(time * 2 + Duration::from_secs(1))
        .cpu_time(time)
        .memory(memory)
        .pids(32)
        .output(64 << 20)
        .file_size(16 << 20);
    let sandbox = base(16 << 20).limits(limits);
    let (sandbox, program, argv) = match program {
        Program::Binary(b) => (
            sandbox.mount(Mount::file("/work/prog", b.clone()).mode(0o755).readonly()),
            "/work/prog",
            vec![],
        ),
        Program::Python(src) => (
            sandbox.mount(Mount::file("/work/main.py", src.clone()).readonly()),
            "/usr/bin/python3",
            vec!["/work/main.py"],
        ),
    };
    Runner {
        sandbox,
        pool: None,
        program,
        argv,
    }
}

async fn run_test(runner: Arc<Runner>, name: String, input: PathBuf, expected: Vec<u8>) -> Result1 {
    let stdin = match std::fs::File::open(&input) {
        Ok(f) => f,
        Err(_) => {
            return Result1 {
                name,
                verdict: Verdict::Re,
                outcome: None,
            }
        }
    };
    let mut cmd = runner.sandbox.command(runner.program);
    cmd.args(&runner.argv)
        .current_dir("/tmp")
        .stdin(Stdio::from(stdin));
    let out = match &runner.pool {
        Some(pool) => pool.output(&mut cmd).await,
        None => cmd.output().await,
    };
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            // The judge's own failure, not the program's: say so.
            eprintln!("judge: test {name}: could not run the sandbox: {e}");
            std::process::exit(2);
        }
    };
    let verdict = match out.status.ending {
        Ending::Exited(0) if same_output(&out.stdout, &expected) => Verdict::Ac,
        Ending::Exited(0) => Verdict::Wa,
        Ending::WallTimeExceeded | Ending::CpuTimeExceeded => Verdict::Tle,
        Ending::OutOfMemory => Verdict::Mle,
        Ending::OutputLimitExceeded => Verdict::Ole,
        _ => Verdict::Re,
    };
    Result1 {
        name,
        verdict,
        outcome: Some(out.status),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut tests: Vec<(String, PathBuf, PathBuf)> = match std::fs::read_dir(&args.tests) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                let name = p.file_name()?.to_str()?.strip_suffix(".in")?.to_string();
                let out = args.tests.join(format!("{name}.out"));
                out.exists().then_some((name, p, out))
            })
            .collect(),
        Err(e) => {
            eprintln!("judge: {}: {e}", args.tests.display());
            return ExitCode::from(2);
        }
    };
    tests.sort();
    if tests.is_empty() {
        eprintln!("judge: {}: no NAME.in/NAME.out pairs", args.tests.display());
        return ExitCode::from(2);
    }
    let program = match compile(&args.source).await {
        Ok(p) => Arc::new(p),
        Err(msg) => {
            let results: Vec<Result1> = tests
                .iter()
                .map(|(n, _, _)| Result1 {
                    name: n.clone(),
                    verdict: Verdict::Ce,
                    outcome: None,
                })
                .collect();
            report(&args, &results);
            if !args.json {
                eprintln!("{msg}");
            }
            return ExitCode::from(1);
        }
    };
    let mut runner = test_sandbox(&program, args.time, args.memory);
    if args.pool > 0 {
        let pool = if args.reuse {
            Pool::reused(runner.sandbox.clone(), args.pool).await
        } else {
            Pool::new(runner.sandbox.clone(), args.pool).await
        };
        match pool {
            Ok(pool) => runner.pool = Some(pool),
            Err(e) => {
                eprintln!("judge: could not make the pool of sandboxes: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let runner = Arc::new(runner);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gate = Arc::new(tokio::sync::Semaphore::new(cores));
    let mut tasks = Vec::new();
    for (name, input, output) in tests {
        let expected = std::fs::read(&output).unwrap_or_default();
        let (runner, gate) = (runner.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            run_test(runner, name, input, expected).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("judge: a test task failed: {e}");
                return ExitCode::from(2);
            }
        }
    }
    report(&args, &results);
    if results.iter().all(|r| r.verdict == Verdict::Ac) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn report(args: &Args, results: &[Result1]) {
    let ms = |r: &Result1| {
        r.outcome
            .map(|o| o.cpu_user.unwrap_or_default() + o.cpu_system.unwrap_or_default())
            .map_or(0, |d| d.as_millis() as u64)
    };
    let kb = |r: &Result1| r.outcome.and_then(|o| o.peak_memory).unwrap_or(0) / 1024;
    let passed = results.iter().filter(|r| r.verdict == Verdict::Ac).count();
    if args.json {
        for r in results {
            println!(
                "{}",
                serde_json::json!({
                    "test": r.name,
                    "verdict": r.verdict.as_str(),
                    "time_ms": ms(r),
                    "memory_kb": kb(r),
                })
            );
        }
        let verdict = results
            .iter()
            .map(|r| r.verdict)
            .find(|v| *v != Verdict::Ac)
            .unwrap_or(Verdict::Ac);
        println!(
            "{}",
            serde_json::json!({
                "summary": verdict.as_str(),
                "passed": passed,
                "total": results.len(),
            })
        );
        return;
    }
    println!(
        "{:<12} {:<7} {:>9} {:>11}",
        "test", "verdict", "time", "memory"
    );
    for r in results {
        println!(
            "{:<12} {:<7} {:>6} ms {:>8} KiB",
            r.name,
            r.verdict.as_str(),
            ms(r),
            kb(r)
        );
    }
    println!("{passed}/{} accepted", results.len());
}
