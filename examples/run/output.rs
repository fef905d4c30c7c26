//! `--output-limit`: the sandbox's stdout and stderr copied to ours as they come, at most
//! the limit each; a stream cut at the limit is reported, for the sandbox to be killed.

use sandbox_core::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The relays of `--output-limit` (none without it) and the word of a cut.
pub(crate) struct OutputRelay {
    /// A message per stream cut at the limit.
    cut: mpsc::Receiver<()>,
    relays: Vec<JoinHandle<()>>,
}

impl OutputRelay {
    /// Starts copying `child`'s piped stdout and stderr to ours, at most `limit` bytes
    /// each; without a limit, nothing.
    pub(crate) fn start(child: &mut Child, limit: Option<u64>) -> OutputRelay {
        let (cut_tx, cut_rx) = mpsc::channel::<()>(2);
        let mut relays = Vec::new();
        if let Some(limit) = limit {
            if let Some(out) = child.stdout.take() {
                relays.push(tokio::spawn(relay(
                    out,
                    std::io::stdout(),
                    limit,
                    cut_tx.clone(),
                )));
            }
            if let Some(err) = child.stderr.take() {
                relays.push(tokio::spawn(relay(
                    err,
                    std::io::stderr(),
                    limit,
                    cut_tx.clone(),
                )));
            }
        }
        drop(cut_tx);
        OutputRelay {
            cut: cut_rx,
            relays,
        }
    }

    /// The next stream cut at the limit; `None` once no relay is left to cut one.
    pub(crate) async fn cut(&mut self) -> Option<()> {
        self.cut.recv().await
    }

    /// Waits for the relays to end; true when a stream was cut that [`Self::cut`] has not
    /// reported.
    pub(crate) async fn finish(&mut self) -> bool {
        for r in self.relays.drain(..) {
            let _ = r.await;
        }
        self.cut.try_recv().is_ok()
    }
}

/// Copies `r` to `w` as it comes, at most `limit` bytes; past it, says so on `cut`.
async fn relay<R: tokio::io::AsyncRead + Unpin, W: std::io::Write>(
    mut r: R,
    mut w: W,
    limit: u64,
    cut: mpsc::Sender<()>,
) {
    use tokio::io::AsyncReadExt;
    let mut left = limit;
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let keep = (n as u64).min(left) as usize;
        let _ = w.write_all(&buf[..keep]);
        let _ = w.flush();
        left -= keep as u64;
        if keep < n {
            let _ = cut.send(()).await;
            return;
        }
    }
}
