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
    let shifted = Sandbox::new()
        .time_offset(Clock::Boottime, 10 * day)
        .time_offset(Clock::Monotonic, day);
    let out = common::shell_output(&shifted, "cat /proc/uptime /proc/self/timens_offsets").await;
    assert!(out.status.success(), "{out:?}");
    let text = common::text(&out.stdout);
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
    let ids = common::while_running(&Sandbox::new(), |c| c.namespace_ids().unwrap()).await;
    assert_ne!(ids.time, NamespaceIds::of_self().unwrap().time);
    let e = Sandbox::new()
        .share(Namespace::Time)
        .time_offset(Clock::Monotonic, 5)
        .command("/bin/true")
        .status()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("time namespace"), "{e}");
}
