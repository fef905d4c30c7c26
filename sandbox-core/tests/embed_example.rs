//! The embedding example, run as a user runs it: a service on 127.0.0.1 that runs code in
//! sandboxes answers many requests at once. (In a network namespace this test makes: its
//! traffic never touches the machine's own.)
mod common;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Sends one request line, returns the answer.
async fn ask(addr: &str, request: serde_json::Value) -> serde_json::Value {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut line = request.to_string();
    line.push('\n');
    write.write_all(line.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(read).lines();
    let answer = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("an answer")
        .unwrap()
        .expect("a line");
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_answers_many_requests_at_once() {
    common::require_root();
    if common::in_private_network_namespace("the_service_answers_many_requests_at_once") {
        return;
    }
    let st = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
    let mut server = tokio::process::Command::new(common::example("embed"))
        .args(["--listen", "127.0.0.1:0", "--max", "4"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = out.next_line().await.unwrap().unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    // 20 clients at once, 4 sandboxes at a time.
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let a = ask(
                &addr,
                serde_json::json!({
                    "language": "sh",
                    "code": format!("echo $(({i} * {i})); hostname; cat"),
                    "stdin": format!("input {i}"),
                }),
            )
            .await;
            (i, a)
        }));
    }
    for t in tasks {
        let (i, a) = t.await.unwrap();
        assert_eq!(a["ending"], "Exited(0)", "{a}");
        assert_eq!(
            a["stdout"].as_str().unwrap(),
            format!("{}\nsandbox\ninput {i}", i * i),
            "{a}"
        );
    }
    // Python, a time limit, a bad request, an unknown language.
    let a = ask(
        &addr,
        serde_json::json!({"language": "python", "code": "print(sum(range(10)))"}),
    )
    .await;
    assert_eq!(a["stdout"], "45\n", "{a}");
    let a = ask(
        &addr,
        serde_json::json!({"language": "sh", "code": "sleep 30", "time_ms": 300}),
    )
    .await;
    assert_eq!(a["ending"], "WallTimeExceeded", "{a}");
    let a = ask(&addr, serde_json::json!({"code": "true"})).await;
    assert!(a["error"].as_str().unwrap().contains("bad request"), "{a}");
    let a = ask(&addr, serde_json::json!({"language": "cobol", "code": "x"})).await;
    assert!(a["error"].as_str().unwrap().contains("cobol"), "{a}");
    // The sandbox has no network: not even this service is reachable from inside.
    let port = addr.rsplit(':').next().unwrap();
    let a = ask(
        &addr,
        serde_json::json!({
            "language": "python",
            "code": format!("import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), 2)\n print('reached')\nexcept OSError as e:\n print('refused', e.errno)"),
        }),
    )
    .await;
    assert!(a["stdout"].as_str().unwrap().starts_with("refused"), "{a}");
    server.kill().await.unwrap();
}
