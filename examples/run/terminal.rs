//! The terminal of `--pty`: ours in raw mode while the sandbox's is relayed (keys to it,
//! its output to ours), and the window size, read from ours and set on the sandbox's.

use sandbox_core::Child;
use std::os::fd::OwnedFd;
use tokio::signal::unix::Signal;
use tokio::task::JoinHandle;

/// The terminal on our stdin, put in raw mode until dropped (so keys reach the sandbox's
/// terminal as typed), or nothing when stdin is not a terminal.
pub(crate) struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub(crate) fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Sets the size of the terminal `fd`.
fn set_window_size(fd: &std::os::fd::OwnedFd, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Our terminal's size, if stdout is one.
fn window_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to the pointer.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The sandbox's terminal relayed to ours: keys to it, its output to ours, its size
/// following ours. Without `--pty`, nothing.
pub(crate) struct PtyRelay {
    /// The copy of its output to ours.
    out: Option<JoinHandle<()>>,
    /// Our window's changes of size.
    winch: Option<Signal>,
    /// Its descriptor, for resizing once the relays own the pty.
    fd: Option<OwnedFd>,
}

impl PtyRelay {
    /// Starts relaying `child`'s terminal, when it has one, at our window's size.
    pub(crate) fn start(child: &mut Child) -> PtyRelay {
        let mut pty_out = None;
        let mut winch = None;
        let mut pty_fd = None;
        if let Some(pty) = child.pty.take() {
            if let Some((rows, cols)) = window_size() {
                let _ = pty.resize(rows, cols);
            }
            // Its descriptor, for resizing once the relays own the pty.
            use std::os::fd::AsFd;
            pty_fd = pty.as_fd().try_clone_to_owned().ok();
            let (mut from, mut to) = tokio::io::split(pty);
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut to).await;
            });
            pty_out = Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut tokio::io::stdout()).await;
            }));
            winch =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
        }
        PtyRelay {
            out: pty_out,
            winch,
            fd: pty_fd,
        }
    }

    /// Our window's next change of size; `None` at once without a terminal.
    pub(crate) async fn resized(&mut self) -> Option<()> {
        self.winch.as_mut()?.recv().await
    }

    /// The sandbox's terminal takes our new size (its program gets SIGWINCH).
    pub(crate) fn follow_size(&self) {
        if let (Some((rows, cols)), Some(fd)) = (window_size(), &self.fd) {
            set_window_size(fd, rows, cols);
        }
    }

    /// Waits, a second at most, for the rest of the program's output to reach ours.
    pub(crate) async fn finish(&mut self) {
        if let Some(out) = self.out.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), out).await;
        }
    }
}
