//! A System V shared-memory segment created on the host is invisible inside a sandbox.
mod common;
use sandbox_core::{Namespace, Sandbox};
use std::process::Command;

struct Segment(String);
impl Drop for Segment {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm").args(["-m", &self.0]).status();
    }
}

fn host_segment() -> Segment {
    let out = Command::new("ipcmk").args(["-M", "4096"]).output().unwrap();
    assert!(out.status.success(), "ipcmk: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.split(':').next_back().unwrap().trim().to_string();
    Segment(id)
}

fn ids(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect()
}

#[tokio::test]
async fn host_shm_segment_is_invisible_inside() {
    common::require_root();
    let seg = host_segment();
    let host = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(ids(&host).contains(&seg.0), "segment visible on the host");
    let out = Sandbox::new()
        .command("/bin/cat")
        .arg("/proc/sysvipc/shm")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let inside = String::from_utf8_lossy(&out.stdout);
    assert!(
        !ids(&inside).contains(&seg.0),
        "segment leaked in: {inside}"
    );
    assert!(ids(&inside).is_empty(), "{inside}");

    // With the IPC namespace shared, the same segment is visible: the check can fail.
    let out = Sandbox::new()
        .share(Namespace::Ipc)
        .command("/bin/cat")
        .arg("/proc/sysvipc/shm")
        .output()
        .await
        .unwrap();
    assert!(ids(&String::from_utf8_lossy(&out.stdout)).contains(&seg.0));
}
