//! [`Child::exec`]: another program in a running sandbox's namespaces, as `docker exec`
//! does.

use super::Child;
use crate::ns::NamespaceIds;
use crate::{sys, Command, Error, Namespace, Result};

impl Child {
    /// Runs another program inside this running sandbox's namespaces, as `docker exec`
    /// does, and returns its own `Child`. Only the process side of `cmd` is used (program,
    /// arguments, environment, working directory, stdio, passed descriptors, kill-on-drop);
    /// its sandbox description is ignored, since the sandbox already exists: the process
    /// gets the sandbox's own seccomp filter, capabilities, landlock rules and rlimits, and
    /// joins its cgroup.
    pub async fn exec(&self, cmd: &Command) -> Result<Child> {
        if self.lease.is_some() {
            return Err(Error::Unsupported(
                "exec into a reused pool's sandbox (its run would outlive the reset)".into(),
            ));
        }
        let joins = {
            let (pid, _held) = self.live_pid()?;
            let own = NamespaceIds::of_self().map_err(|e| Error::os("read /proc/self/ns", e))?;
            let theirs = NamespaceIds::of_pid(pid)
                .map_err(|e| Error::os(format!("read /proc/{pid}/ns"), e))?;
            let mut joins = Vec::new();
            for ns in Namespace::ALL {
                if own.get(ns) == theirs.get(ns) {
                    continue;
                }
                let p = format!("/proc/{pid}/ns/{}", ns.proc_name());
                let f = std::fs::File::open(&p).map_err(|e| Error::os(format!("open {p}"), e))?;
                let fd =
                    sys::above_stdio(f.into()).map_err(|e| Error::os(format!("dup {p}"), e))?;
                joins.push((ns, fd));
            }
            joins
        };
        let cgroup = self.cgroup.as_ref().map(|c| c.member());
        // The sandbox's own hardening and rlimits, not the command's description: a process
        // started in it is held as its first one was.
        let hardened = cmd.sandbox.hardened_by(&self.hardening);
        let spawned = crate::spawn::exec(cmd, &hardened, joins, cgroup).await?;
        Child::from_spawned(spawned)
    }
}
