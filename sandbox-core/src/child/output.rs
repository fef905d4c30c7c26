//! Collecting a sandbox's output: [`Child::wait_with_output`] and the capped reads behind
//! the output limit.

use super::{Child, Ending, Outcome};
use crate::{sys, Error, Result};
use std::os::fd::AsFd;
use tokio::io::AsyncReadExt;

/// What [`Command::output`](crate::Command::output) returns: how the run ended and everything it printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// How the run ended.
    pub status: Outcome,
    /// Everything written to standard output.
    pub stdout: Vec<u8>,
    /// Everything written to standard error.
    pub stderr: Vec<u8>,
}

/// Reads a stream to its end, keeping at most `limit` bytes; calls `cut` once when the
/// stream goes past the limit (then stops reading: the writer is being killed).
pub(super) async fn read_limited<R: tokio::io::AsyncRead + Unpin>(
    r: Option<R>,
    limit: Option<u64>,
    cut: &impl Fn(),
) -> Result<Vec<u8>> {
    let Some(limit) = limit else {
        return read_all(r).await;
    };
    let Some(mut r) = r else {
        return Ok(Vec::new());
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = r
            .read(&mut buf)
            .await
            .map_err(|e| Error::os("read the sandbox's output", e))?;
        if n == 0 {
            return Ok(out);
        }
        let room = limit - out.len();
        out.extend_from_slice(&buf[..n.min(room)]);
        if n > room {
            cut();
            return Ok(out);
        }
    }
}

impl Child {
    /// Waits for the sandbox to end while collecting its stdout and stderr (when piped).
    ///
    /// With an output limit ([`Limits::output`](crate::Limits::output)), at most that many
    /// bytes of each stream are kept; a stream that goes past it gets the sandbox killed,
    /// and the run ends as [`Ending::OutputLimitExceeded`].
    pub async fn wait_with_output(mut self) -> Result<Output> {
        let limit = self.limits.output;
        let killer = match (&self.pidfd, limit) {
            (Some(fd), Some(_)) => Some(
                sys::dup_above_stdio(fd.get_ref().as_fd())
                    .map_err(|e| Error::os("duplicate the pidfd", e))?,
            ),
            _ => None,
        };
        let over = std::sync::atomic::AtomicBool::new(false);
        let cut = || {
            over.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(k) = &killer {
                let _ = sys::pidfd_send_signal(k.as_fd(), libc::SIGKILL);
            }
        };
        let out = read_limited(self.stdout.take(), limit, &cut);
        let err = read_limited(self.stderr.take(), limit, &cut);
        let (stdout, stderr, mut status) = tokio::try_join!(out, err, self.wait())?;
        if over.load(std::sync::atomic::Ordering::SeqCst) {
            status.output_truncated = true;
            if !matches!(status.ending, Ending::WallTimeExceeded) {
                status.ending = Ending::OutputLimitExceeded;
            }
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(r: Option<R>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        r.read_to_end(&mut buf)
            .await
            .map_err(|e| crate::Error::os("read the program's output", e))?;
    }
    Ok(buf)
}
