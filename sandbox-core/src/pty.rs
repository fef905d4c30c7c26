//! [`Pty`]: the caller's side of a sandbox's pseudo-terminal ([`Stdio::pty`]).
//!
//! [`Stdio::pty`]: crate::Stdio::pty

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A new pseudo-terminal pair: `(master, slave)`, both close-on-exec, the slave above 2.
pub(crate) fn open() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    // TIOCGPTPEER opens the slave from the master itself: no path lookup, no race with
    // another devpts instance (Linux 4.13+).
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, flags) };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nothing else.
    let slave = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(slave) };
    let slave = crate::sys::above_stdio(slave)?;
    let master: OwnedFd = master.into();
    Ok((master, slave))
}

/// The caller's side of the sandbox's terminal: what the program writes to its terminal is
/// read here, what is written here is the program's keyboard input. Implements tokio's
/// `AsyncRead` and `AsyncWrite`; reading ends (0 bytes) once every process of the sandbox
/// has closed the terminal.
#[derive(Debug)]
pub struct Pty {
    master: AsyncFd<OwnedFd>,
}

impl Pty {
    pub(crate) fn new(master: OwnedFd) -> io::Result<Pty> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let fl = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
        // SAFETY: the AsyncFd owns the master for its whole life and never replaces it.
        let master = unsafe {
            AsyncFd::register_with_interest(
                master,
                tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        Ok(Pty { master })
    }

    /// Sets the terminal's size (the program gets `SIGWINCH`).
    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The terminal's size: `(rows, columns)`.
    pub fn size(&self) -> io::Result<(u16, u16)> {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize to the pointer.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((ws.ws_row, ws.ws_col))
    }
}

impl AsFd for Pty {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.master.get_ref().as_fd()
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: no process holds the terminal any more: the end of the stream.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.master.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
