//! The background reaper: collects sandboxes whose [`Child`](crate::Child) was dropped
//! before they were waited for, so no zombie outlives its handle.
//!
//! A single lazily started thread polls the pidfds it adopted and reaps each one with
//! `waitid(P_PIDFD)` as it ends. It never calls `waitpid(-1)`, so it cannot steal the
//! status of a process the application itself waits for.

use crate::sys;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

struct Reaper {
    pending: Vec<OwnedFd>,
    wake: Option<OwnedFd>,
}

static REAPER: Mutex<Reaper> = Mutex::new(Reaper {
    pending: Vec::new(),
    wake: None,
});

/// Hands a process over to the reaper. Reaps it at once if it has already ended.
pub(crate) fn adopt(pidfd: OwnedFd) {
    if let Ok(Some(_)) = sys::waitid_pidfd(pidfd.as_fd(), true) {
        return;
    }
    let mut r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    if r.wake.is_none() {
        let Ok((read, write)) = sys::pipe() else {
            return;
        };
        if std::thread::Builder::new()
            .name("sandbox-reaper".into())
            .spawn(move || serve(read))
            .is_err()
        {
            return;
        }
        r.wake = Some(write);
    }
    r.pending.push(pidfd);
    if let Some(w) = &r.wake {
        let _ = nix::unistd::write(w, b"x");
    }
}

/// How many processes the reaper is still waiting for (for tests).
#[doc(hidden)]
pub fn pending() -> usize {
    REAPER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pending
        .len()
}

fn serve(wake: OwnedFd) {
    loop {
        let mut fds = vec![libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        {
            let r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
            fds.extend(r.pending.iter().map(|p| libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        // SAFETY: `fds` is a valid array of pollfd; the pidfds stay open (only this thread
        // removes them) and the wake pipe is owned by this function.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        if fds[0].revents != 0 {
            let mut buf = [0u8; 64];
            let _ = nix::unistd::read(&wake, &mut buf);
        }
        let mut r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
        r.pending
            .retain(|p| !matches!(sys::waitid_pidfd(p.as_fd(), true), Ok(Some(_)) | Err(_)));
    }
}
