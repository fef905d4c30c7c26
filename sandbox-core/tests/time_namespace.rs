//! Time namespace offsets shift CLOCK_MONOTONIC and CLOCK_BOOTTIME inside, not outside.
mod common;
use sandbox_core::{Clock, Namespace, NamespaceIds, Sandbox};

fn uptime() -> f64 {
    // /proc/uptime is CLOCK_BOOTTIME as seen by the reader.
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn boottime_and_monotonic_offsets_apply_inside_only() {
    common::require_root();
    let day = 86_400;
    let out = Sandbox::new()
        .time_offset(Clock::Boottime, 10 * day)
        .time_offset(Clock::Monotonic, day)
        .command("/bin/sh")
        .arg("-c")
        .arg("cat /proc/uptime /proc/self/timens_offsets")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let inside: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    let outside = uptime();
    let diff = inside - outside;
    assert!(
        (diff - (10 * day) as f64).abs() < 60.0,
        "uptime inside {inside}, outside {outside}"
    );
    let offsets: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (d, ten) = (day.to_string(), (10 * day).to_string());
    assert_eq!(
        offsets,
        vec![vec!["monotonic", &d, "0"], vec!["boottime", &ten, "0"]],
        "{text}"
    );
    // The host's clock did not move.
    assert!(uptime() < inside - 9.0 * day as f64);
}

#[tokio::test]
async fn no_offsets_still_gives_a_time_namespace_of_its_own() {
    common::require_root();
    let mut child = Sandbox::new()
        .command("/bin/sleep")
        .arg("10")
        .spawn()
        .await
        .unwrap();
    let ids = child.namespace_ids().unwrap();
    assert_ne!(ids.time, NamespaceIds::of_self().unwrap().time);
    child.kill().await.unwrap();
    let e = Sandbox::new()
        .share(Namespace::Time)
        .time_offset(Clock::Monotonic, 5)
        .command("/bin/true")
        .status()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("time namespace"), "{e}");
}
