//! A sandboxed program cannot read a file of the host outside its root: not by its path, by
//! climbing with `..`, through `/proc/<pid>/root`, by a file handle the host computed
//! ("shocker"), nor the host's secrets under the `/etc` its root shows; nor can it make a
//! device node to reach a disk through. Each attack runs in a default sandbox and, as a
//! control, on the host, where it works (see `common/escape.rs`). The same promise for every
//! kind of root, and through symlinks planted in it, is checked by `fs_escape.rs`.
mod common;

use common::escape::{blocked, canary, escapes_without_sandbox, SERIAL};
use std::path::Path;

#[tokio::test]
async fn a_file_outside_the_root_cannot_be_read() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    let (_dir, canary) = canary();
    let path = canary.to_str().unwrap();
    blocked(&["open", path], &["ENOENT"]).await;
    escapes_without_sandbox(&[], &["open", path]);
    blocked(&["dotdot", path], &["ENOENT"]).await;
    escapes_without_sandbox(&[], &["dotdot", path]);
    // The init is not dumpable: its root link is closed to the program (EACCES).
    blocked(&["proc-root", path], &["ENOENT", "EACCES"]).await;
    // (The control goes through this test process's root: the host's PID 1 may be
    // closed even to root.)
    let me = std::process::id().to_string();
    escapes_without_sandbox(&[], &["proc-root", path, &me]);
    blocked(&["proc-self-root", path], &["ENOENT"]).await;
    escapes_without_sandbox(&[], &["proc-self-root", path]);
    // By handle ("shocker"): a handle the host computed for the canary.
    let (ty, bytes) = handle_of(&canary);
    let ty = ty.to_string();
    blocked(&["open-by-handle", &ty, &bytes], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["open-by-handle", &ty, &bytes]);
    blocked(&["name-to-handle"], &["EPERM"]).await;
    escapes_without_sandbox(&[], &["name-to-handle"]);
    // The host's own secrets, under the host's /etc that the root shows read-only.
    blocked(&["open", "/etc/shadow"], &["EACCES"]).await;
    escapes_without_sandbox(&[], &["open", "/etc/shadow"]);
}

/// `name_to_handle_at` on the host: (handle type, handle bytes in hex).
fn handle_of(path: &Path) -> (i32, String) {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        ty: i32,
        data: [u8; 128],
    }
    let mut h = Handle {
        bytes: 128,
        ty: 0,
        data: [0; 128],
    };
    let mut mount_id = 0;
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid path, a handle buffer of the size it declares, an int for the mount id.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut i32,
            0,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let hex: String = h.data[..h.bytes as usize]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (h.ty, hex)
}

#[tokio::test]
async fn no_device_node_can_be_made() {
    common::require_root();
    let _serial = SERIAL.lock().await;
    blocked(&["mknod"], &["EPERM"]).await;
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("disk");
    escapes_without_sandbox(&[], &["mknod", node.to_str().unwrap()]);
}
