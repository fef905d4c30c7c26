//! Waiting for the sandbox to end: the signals a terminal or a supervisor sends us passed
//! on to it, a cut output killing it, our window size followed by its terminal.

use crate::output::OutputRelay;
use crate::terminal::PtyRelay;
use sandbox_core::{Child, Error, Outcome};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGTERM, SIGINT and SIGHUP, caught to be passed on to the sandbox.
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Catches them from now on (they no longer end us).
    pub(crate) fn catch() -> Result<Signals, Error> {
        let catch = |kind| {
            signal(kind).map_err(|e| Error::Invalid {
                what: "signal handler",
                reason: e.to_string(),
            })
        };
        Ok(Signals {
            term: catch(SignalKind::terminate())?,
            int: catch(SignalKind::interrupt())?,
            hup: catch(SignalKind::hangup())?,
        })
    }
}

/// The sandbox's outcome once it ends, and whether a stream of its output was cut (the
/// sandbox is killed then).
pub(crate) async fn wait(
    child: &mut Child,
    signals: &mut Signals,
    output: &mut OutputRelay,
    pty: &mut PtyRelay,
) -> Result<(Outcome, bool), Error> {
    let mut truncated = false;
    let outcome = loop {
        tokio::select! {
            o = child.wait() => break o?,
            Some(()) = output.cut(), if !truncated => {
                truncated = true;
                let _ = child.start_kill();
            }
            _ = signals.term.recv() => { let _ = child.signal(libc::SIGTERM); }
            _ = signals.int.recv() => { let _ = child.signal(libc::SIGINT); }
            _ = signals.hup.recv() => { let _ = child.signal(libc::SIGHUP); }
            Some(()) = pty.resized() => pty.follow_size(),
        }
    };
    Ok((outcome, truncated))
}
