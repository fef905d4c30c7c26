//! A sandbox service embedded in a tokio program: it accepts code over TCP on 127.0.0.1,
//! runs each request in a fresh sandbox (no network, the host's system directories
//! read-only, a small writable `/tmp`, memory, PID, time and output limits), and answers
//! with how the run ended. Many requests run at once, up to `--max` sandboxes.
//!
//! ```text
//! cargo run --release --example embed -- [--listen 127.0.0.1:7878] [--max 8]
//! ```
//!
//! The protocol is one JSON object per line each way. A request:
//! `{"language": "sh" | "python", "code": "...", "stdin": "...", "time_ms": 2000}`
//! (`stdin` and `time_ms` optional); the answer:
//! `{"ending": "Exited(0)", "exit_code": 0, "stdout": "...", "stderr": "...",
//!   "time_ms": 12, "memory_kb": 1540, "truncated": false}` or `{"error": "..."}`.
//! A connection may send several requests, one after the other.
//!
//! ```text
//! $ echo '{"language":"sh","code":"echo hello from $(hostname)"}' | nc 127.0.0.1 7878
//! {"ending":"Exited(0)","exit_code":0,"memory_kb":...,"stderr":"","stdout":"hello from sandbox\n",...}
//! ```
use clap::Parser;
use sandbox_core::{Limits, Mount, Network, Rootfs, Sandbox, Stdio};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Runs code sent over TCP in sandboxes.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The address to listen on (port 0: any free port; the first line printed says which).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: std::net::SocketAddr,
    /// The most sandboxes running at once (others wait their turn).
    #[arg(long, default_value_t = 8)]
    max: usize,
}

/// One request.
#[derive(Deserialize)]
struct Request {
    language: String,
    code: String,
    #[serde(default)]
    stdin: String,
    time_ms: Option<u64>,
}

/// The longest a request may ask for, and what it gets by default.
const MAX_TIME: Duration = Duration::from_secs(10);
const DEFAULT_TIME: Duration = Duration::from_secs(2);
/// The most output kept per stream.
const OUTPUT_LIMIT: u64 = 64 << 10;

fn sandbox(time: Duration) -> Sandbox {
    Sandbox::new()
        .rootfs(Rootfs::host_readonly())
        .mount(Mount::tmpfs("/tmp").size(16 << 20))
        .network(Network::none())
        .limits(
            Limits::new()
                .memory(256 << 20)
                .pids(64)
                .wall_time(time)
                .cpu_time(time)
                .output(OUTPUT_LIMIT),
        )
}

/// Runs one request; the answer as JSON.
async fn run(req: Request) -> serde_json::Value {
    let (program, args): (&str, Vec<String>) = match req.language.as_str() {
        "sh" => ("/bin/sh", vec!["-c".into(), req.code.clone()]),
        "python" => ("/usr/bin/python3", vec!["-c".into(), req.code.clone()]),
        other => {
            return serde_json::json!({
                "error": format!("unknown language {other:?}: sh or python")
            })
        }
    };
    let time = req
        .time_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIME)
        .min(MAX_TIME);
    let sandbox = sandbox(time);
    let mut cmd = sandbox.command(program);
    cmd.args(&args)
        .current_dir("/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn().await {
        Ok(c) => c,
        Err(e) => return serde_json::json!({ "error": e.to_string() }),
    };
    // Feed stdin while the output is collected (a large input must not block the run).
    if let Some(mut stdin) = child.stdin.take() {
        let input = req.stdin.into_bytes();
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => return serde_json::json!({ "error": e.to_string() }),
    };
    let s = out.status;
    serde_json::json!({
        "ending": format!("{:?}", s.ending),
        "exit_code": s.shell_code(),
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
        "time_ms": s.wall_time.as_millis() as u64,
        "memory_kb": s.peak_memory.unwrap_or(0) / 1024,
        "truncated": s.output_truncated,
    })
}

/// Serves one connection: a request per line, an answer per line.
async fn serve(stream: TcpStream, slots: Arc<Semaphore>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                // One sandbox slot for the run; requests beyond --max wait here.
                let _slot = slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                run(req).await
            }
            Err(e) => serde_json::json!({ "error": format!("bad request: {e}") }),
        };
        let mut text = answer.to_string();
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("embed: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(2);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening on {addr}");
    let slots = Arc::new(Semaphore::new(args.max.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("embed: accept: {e}");
                continue;
            }
        };
        let slots = slots.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, slots).await {
                eprintln!("embed: {peer}: {e}");
            }
        });
    }
}
