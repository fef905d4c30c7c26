//! [`Command`]: one program to run in a sandbox, with its arguments, environment and stdio.
//!
//! This is the description only. The verbs that start it — [`Command::spawn`],
//! [`Command::status`], [`Command::output`] — live with the handle they return, in
//! `child/start.rs`, so the spawn machinery (which reads a `Command`) never depends on them.

use crate::Sandbox;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// How a standard stream of the sandboxed program is connected, as in `tokio::process`.
#[derive(Debug)]
pub struct Stdio(pub(crate) StdioKind);

#[derive(Debug)]
pub(crate) enum StdioKind {
    Inherit,
    Null,
    Piped,
    Pty,
    Fd(OwnedFd),
}

impl Stdio {
    /// A new pipe; the parent's end becomes [`Child::stdin`](crate::Child::stdin)/`stdout`/`stderr`.
    pub fn piped() -> Stdio {
        Stdio(StdioKind::Piped)
    }

    /// `/dev/null` of the host (opened before the sandbox starts).
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }

    /// The caller's own stream.
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// A new pseudo-terminal, for interactive programs (a shell, an editor): every stream
    /// given `pty()` is its terminal side, which becomes the sandbox's controlling terminal,
    /// and the caller's side is [`Child::pty`](crate::Child::pty). The sandbox runs in a
    /// session of its own either way, so it never reaches the caller's terminal.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> sandbox_core::Result<()> {
    /// use sandbox_core::{Sandbox, Stdio};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut child = Sandbox::new()
    ///     .command("/bin/sh")
    ///     .stdin(Stdio::pty())
    ///     .stdout(Stdio::pty())
    ///     .stderr(Stdio::pty())
    ///     .spawn()
    ///     .await?;
    /// let mut pty = child.pty.take().unwrap();
    /// pty.resize(40, 100).ok();
    /// pty.write_all(b"test -t 0 && stty size; echo T$((1+1)); exit\n").await.ok();
    /// let mut seen = Vec::new();
    /// pty.read_to_end(&mut seen).await.ok();
    /// let seen = String::from_utf8_lossy(&seen);
    /// assert!(seen.contains("40 100") && seen.contains("T2"), "{seen}");
    /// child.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn pty() -> Stdio {
        Stdio(StdioKind::Pty)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(f: File) -> Stdio {
        Stdio(StdioKind::Fd(f.into()))
    }
}

/// A program to run in a sandbox, built like `tokio::process::Command`.
///
/// Made by [`Sandbox::command`]; every setter returns `&mut Command` so calls chain.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sandbox_core::{Sandbox, Stdio};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// let mut child = Sandbox::new()
///     .command("/bin/cat")
///     .stdin(Stdio::piped())
///     .stdout(Stdio::piped())
///     .spawn()
///     .await?;
/// let mut stdin = child.stdin.take().unwrap();
/// stdin.write_all(b"hello").await?;
/// drop(stdin);
/// let mut out = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut out).await?;
/// assert_eq!(out, "hello");
/// assert!(child.wait().await?.success());
/// # Ok(()) }
/// ```
///
/// # Environment
/// Nothing of the caller's environment enters the sandbox unless asked for: the program gets
/// `PATH`, `HOME=/root`, `HOSTNAME` (when the sandbox has its own) and the caller's `TERM`,
/// plus what [`Command::env`] sets. [`Command::env_clear`] removes those defaults too.
#[derive(Debug)]
pub struct Command {
    pub(crate) sandbox: Sandbox,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env_clear: bool,
    pub(crate) env: BTreeMap<OsString, Option<OsString>>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Option<Stdio>,
    pub(crate) stdout: Option<Stdio>,
    pub(crate) stderr: Option<Stdio>,
    pub(crate) kill_on_drop: Option<bool>,
    /// Descriptors passed on purpose: `(number inside, descriptor)`.
    pub(crate) pass: Vec<(std::os::fd::RawFd, OwnedFd)>,
    /// A pooled sandbox's first command: its init runs no program but waits for one on
    /// the descriptor passed first (`spawn/serve.rs`).
    pub(crate) serve: bool,
}

/// The `PATH` a sandboxed program gets by default.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Sandbox {
    /// A command that runs `program` (an absolute path inside the sandbox) in a new sandbox
    /// of this description.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        Command::with_sandbox(self.clone(), program)
    }
}

impl Command {
    /// A command in a default [`Sandbox`]. Same as `Sandbox::new().command(program)`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::with_sandbox(Sandbox::new(), program)
    }

    pub(crate) fn with_sandbox(sandbox: Sandbox, program: impl AsRef<OsStr>) -> Command {
        Command {
            sandbox,
            program: PathBuf::from(program.as_ref()),
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            kill_on_drop: None,
            pass: Vec::new(),
            serve: false,
        }
    }

    /// Passes a descriptor on purpose: the program finds `fd` open as descriptor number
    /// `target` (3 or above; 0-2 are [`Command::stdin`] and friends), as systemd's socket
    /// activation or nsjail's `--pass_fd` do. Every other descriptor of the caller's is
    /// closed before the program starts.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use sandbox_core::Sandbox;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut cmd = Sandbox::new().command("/usr/bin/my-server");
    /// cmd.pass_fd(3, listener).env("LISTEN_FDS", "1");
    /// # Ok(()) }
    /// ```
    pub fn pass_fd(&mut self, target: std::os::fd::RawFd, fd: impl Into<OwnedFd>) -> &mut Command {
        self.pass.push((target, fd.into()));
        self
    }

    /// The sandbox description this command runs in.
    pub fn get_sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The program's path inside the sandbox.
    pub fn get_program(&self) -> &Path {
        &self.program
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(
            key.as_ref().to_os_string(),
            Some(val.as_ref().to_os_string()),
        );
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable (one of the defaults, or one set earlier).
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_os_string(), None);
        self
    }

    /// Starts from an empty environment, without even the defaults.
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Sets the working directory inside the sandbox (default `/`).
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Connects the program's standard input (default: inherited by `spawn` and `status`,
    /// `/dev/null` for `output`).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stdin = Some(cfg.into());
        self
    }

    /// Connects the program's standard output (default: inherited, piped for `output`).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stdout = Some(cfg.into());
        self
    }

    /// Connects the program's standard error (default: inherited, piped for `output`).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.stderr = Some(cfg.into());
        self
    }

    /// Whether dropping the [`Child`](crate::Child) kills the whole sandbox (default: the sandbox's
    /// setting, `true` unless changed).
    ///
    /// # Caveats
    /// Unlike `tokio::process`, the default is `true`: a sandbox never outlives the handle
    /// that owns it. With `false`, a dropped sandbox runs on and is reaped in the background
    /// when it ends.
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = Some(kill);
        self
    }

    /// Whether dropping the [`Child`](crate::Child) kills the whole sandbox.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop.unwrap_or(self.sandbox.kill_on_drop)
    }
}
