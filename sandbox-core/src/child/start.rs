//! Starting a sandbox: [`Command::spawn`], [`Command::status`] and [`Command::output`] hand
//! the command to the spawn machinery and build the [`Child`] from what comes back.

use super::{Child, Outcome, Output};
use crate::{Command, Result, Stdio};

impl Command {
    /// Starts the sandbox and the program in it.
    ///
    /// Returns once the program has been executed (or with the typed error of the step that
    /// failed). Cancel-safe: dropping the future kills and reaps a half-started sandbox.
    pub async fn spawn(&mut self) -> Result<Child> {
        let spawned = crate::spawn::spawn(self).await?;
        Child::from_spawned(spawned)
    }

    /// Runs the program and waits for it to end. Stdio defaults to inherited.
    pub async fn status(&mut self) -> Result<Outcome> {
        let mut child = self.spawn().await?;
        // Like tokio, do not keep the program waiting on input nobody will write.
        drop(child.stdin.take());
        child.wait().await
    }

    /// Runs the program with stdout and stderr captured (stdin `/dev/null` unless set) and
    /// waits for it to end.
    pub async fn output(&mut self) -> Result<Output> {
        if self.stdin.is_none() {
            self.stdin = Some(Stdio::null());
        }
        if self.stdout.is_none() {
            self.stdout = Some(Stdio::piped());
        }
        if self.stderr.is_none() {
            self.stderr = Some(Stdio::piped());
        }
        let child = self.spawn().await?;
        child.wait_with_output().await
    }
}
