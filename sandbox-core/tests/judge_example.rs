//! The judge example, run as a user runs it, on every shipped submission: each gets the
//! verdict it was written for, and its table reads like a judge's.
mod common;
use std::path::PathBuf;
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/judge")
}

/// The verdicts of one submission, from the JSON lines.
fn judge(submission: &str, memory: &str) -> (Vec<(String, String)>, String, Option<i32>) {
    judge_with(submission, memory, &[])
}

fn judge_with(
    submission: &str,
    memory: &str,
    more: &[&str],
) -> (Vec<(String, String)>, String, Option<i32>) {
    let out = Command::new(common::example("judge"))
        .arg(examples().join("submissions").join(submission))
        .arg(examples().join("sum"))
        .args(["--json", "--time", "1s", "--memory", memory])
        .args(more)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut tests = Vec::new();
    let mut summary = String::new();
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if let Some(s) = v.get("summary") {
            summary = s.as_str().unwrap().to_string();
        } else {
            tests.push((
                v["test"].as_str().unwrap().to_string(),
                v["verdict"].as_str().unwrap().to_string(),
            ));
        }
    }
    (tests, summary, out.status.code())
}

#[test]
fn every_shipped_submission_gets_its_verdict() {
    common::require_root();
    for (file, want) in [
        ("ok.c", "AC"),
        ("ok.py", "AC"),
        ("wrong.c", "WA"),
        ("slow.c", "TLE"),
        ("hog.c", "MLE"),
        ("forkbomb.c", "TLE"),
        ("crash.c", "RE"),
        ("noisy.c", "OLE"),
        ("broken.c", "CE"),
    ] {
        // A fork bomb's failing forks charge kernel memory (the kernel copies the page
        // tables before the PID check refuses the fork): 30-54 MB measured at 32 PIDs, so
        // 64M would make it an MLE or a TLE by chance. It gets room to show its TLE.
        let memory = if file == "forkbomb.c" { "256M" } else { "64M" };
        let (tests, summary, code) = judge(file, memory);
        assert_eq!(tests.len(), 3, "{file}: {tests:?}");
        for (name, verdict) in &tests {
            assert_eq!(verdict, want, "{file}, test {name}");
        }
        assert_eq!(summary, want, "{file}");
        assert_eq!(code, Some(if want == "AC" { 0 } else { 1 }), "{file}");
    }
}

#[test]
fn with_a_warm_pool_the_verdicts_are_the_same() {
    common::require_root();
    for (file, want) in [
        ("ok.c", "AC"),
        ("wrong.c", "WA"),
        ("slow.c", "TLE"),
        ("hog.c", "MLE"),
        ("crash.c", "RE"),
        ("noisy.c", "OLE"),
    ] {
        let (tests, summary, code) = judge_with(file, "64M", &["--pool", "2"]);
        assert_eq!(tests.len(), 3, "{file}: {tests:?}");
        assert!(tests.iter().all(|(_, v)| v == want), "{file}: {tests:?}");
        assert_eq!(
            (summary.as_str(), code),
            (want, Some(if want == "AC" { 0 } else { 1 }))
        );
    }
}

#[test]
fn the_table_reads_like_a_judge() {
    common::require_root();
    let text = common::stdout_of(
        Command::new(common::example("judge"))
            .arg(examples().join("submissions/ok.c"))
            .arg(examples().join("sum")),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("test") && lines[0].contains("verdict"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("1 ") && lines[1].contains(" AC "),
        "{text}"
    );
    assert_eq!(*lines.last().unwrap(), "3/3 accepted");
}
