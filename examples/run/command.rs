//! The command the sandbox runs: PROGRAM and its arguments (or, without one, a shell
//! script that shows the sandbox from inside), its environment, working directory and
//! stdio.

use crate::args::Args;
use sandbox_core::{Command, Sandbox, Stdio};

/// What runs when no program is given: a look at the sandbox from inside.
const SHOW: &str = r#"echo "hostname: $(uname -n)"
echo "id:       $(id)"
echo "processes (ps -e):"
ps -e -o pid,ppid,user,comm 2>/dev/null || ls /proc | grep '^[0-9]'
echo "mount table (/proc/self/mountinfo):"
cat /proc/self/mountinfo"#;

/// The command of `args` in `sandbox`, ready to spawn.
pub(crate) fn command(args: &Args, sandbox: &Sandbox) -> Command {
    let mut cmd = match args.command.split_first() {
        Some((program, rest)) => {
            let mut c = sandbox.command(program);
            c.args(rest);
            c
        }
        None => {
            let mut c = sandbox.command("/bin/sh");
            c.arg("-c").arg(SHOW);
            c
        }
    };
    for kv in &args.setenv {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    cmd.current_dir(&args.chdir)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    if args.output_limit.is_some() {
        // Relayed through pipes as it comes, cut at the limit (the sandbox is killed).
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    if args.pty {
        cmd.stdin(Stdio::pty())
            .stdout(Stdio::pty())
            .stderr(Stdio::pty());
    }
    cmd
}
