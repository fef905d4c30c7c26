//! The background reaper: collects sandboxes whose [`Child`](crate::Child) was dropped
//! before they were waited for (and spawns that were abandoned), so no zombie outlives its
//! handle.
//!
//! A single lazily started thread polls the pidfds it adopted and reaps each one with
//! `waitid(P_PIDFD)` as it ends. It never calls `waitpid(-1)`, so it cannot steal the
//! status of a process the application itself waits for. Each adopted process may come with
//! a value to drop once it is reaped: the plan of an abandoned spawn, whose memory the
//! process may use until it is gone.

use crate::sys;
use std::any::Any;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

type KeepAlive = Option<Box<dyn Any + Send>>;

struct Reaper {
    pending: Vec<(OwnedFd, KeepAlive)>,
    /// Processes reaped but whose pidfds and keep-alives are still being dropped.
    reaping: usize,
    wake: Option<OwnedFd>,
}

static REAPER: Mutex<Reaper> = Mutex::new(Reaper {
    pending: Vec::new(),
    reaping: 0,
    wake: None,
});

/// Hands a process over to the reaper. Reaps it at once if it has already ended.
pub(crate) fn adopt(pidfd: OwnedFd) {
    adopt_with(pidfd, None)
}

/// Hands a process over to the reaper, with a value to drop once the process is reaped.
pub(crate) fn adopt_with(pidfd: OwnedFd, keep: KeepAlive) {
    // The thread (and its wake pipe) is started on the first adoption even if that process
    // has already ended: whether it exists must not depend on how fast a SIGKILL lands.
    let mut r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    if r.wake.is_none() {
        let started = sys::pipe().and_then(|(read, write)| {
            // Never block on a full pipe (a full pipe already means a wake-up is due).
            let flags = nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_GETFL)?;
            let flags =
                nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(&write, nix::fcntl::FcntlArg::F_SETFL(flags))?;
            std::thread::Builder::new()
                .name("sandbox-reaper".into())
                .spawn(move || serve(read))?;
            Ok(write)
        });
        match started {
            Ok(write) => r.wake = Some(write),
            Err(_) => {
                // No reaper: wait here rather than leak (the process was killed, or asked to
                // outlive its handle, in which case this blocks until it ends).
                drop(r);
                let _ = sys::waitid_pidfd(pidfd.as_fd(), false);
                drop(keep);
                return;
            }
        }
    }
    drop(r);
    if let Ok(Some(_)) = sys::waitid_pidfd(pidfd.as_fd(), true) {
        drop(keep);
        return;
    }
    let mut r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    r.pending.push((pidfd, keep));
    if let Some(w) = &r.wake {
        let _ = nix::unistd::write(w, b"x");
    }
}

/// How many processes the reaper is still waiting for or releasing.
#[cfg(feature = "test-hooks")]
pub(crate) fn pending() -> usize {
    let r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
    r.pending.len() + r.reaping
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
            fds.extend(r.pending.iter().map(|(p, _)| libc::pollfd {
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
        let done: Vec<(OwnedFd, KeepAlive)> = {
            let mut r = REAPER.lock().unwrap_or_else(|e| e.into_inner());
            let (done, left) = std::mem::take(&mut r.pending)
                .into_iter()
                .partition(|(p, _)| {
                    matches!(sys::waitid_pidfd(p.as_fd(), true), Ok(Some(_)) | Err(_))
                });
            r.pending = left;
            r.reaping = done.len();
            done
        };
        // Outside the lock: dropping a keep-alive may adopt another process.
        drop(done);
        REAPER.lock().unwrap_or_else(|e| e.into_inner()).reaping = 0;
    }
}
