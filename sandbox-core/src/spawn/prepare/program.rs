//! The program's strings, checked and made C strings: its path, arguments, environment,
//! working directory, the hostname and the clock offsets.

use crate::command::DEFAULT_PATH;
use crate::{Command, Error, Namespace, Result, Sandbox};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

pub(super) fn cstring(what: &'static str, s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::Nul {
        what,
        value: s.to_string_lossy().into_owned(),
    })
}

pub(super) fn check_program(program: &Path) -> Result<CString> {
    if program.as_os_str().is_empty() {
        return Err(Error::InvalidProgram {
            program: program.into(),
            reason: "empty path",
        });
    }
    if !program.is_absolute() {
        return Err(Error::InvalidProgram {
            program: program.into(),
            reason: "not an absolute path inside the sandbox",
        });
    }
    cstring("program path", program.as_os_str())
}

pub(super) fn check_hostname(h: &str) -> Result<CString> {
    let bad = |reason| Error::InvalidHostname {
        hostname: h.into(),
        reason,
    };
    if h.is_empty() {
        return Err(bad("empty"));
    }
    if h.len() > 64 {
        return Err(bad("longer than 64 bytes"));
    }
    CString::new(h).map_err(|_| bad("contains a NUL byte"))
}

pub(super) fn environment(cmd: &Command, hostname: Option<&str>) -> Result<Vec<CString>> {
    let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
    if !cmd.env_clear {
        env.insert("PATH".into(), DEFAULT_PATH.into());
        env.insert("HOME".into(), "/root".into());
        if let Some(h) = hostname {
            env.insert("HOSTNAME".into(), h.into());
        }
        if let Some(t) = std::env::var_os("TERM") {
            env.insert("TERM".into(), t);
        }
    }
    for (k, v) in &cmd.env {
        match v {
            Some(v) => env.insert(k.clone(), v.clone()),
            None => env.remove(k),
        };
    }
    let mut out = Vec::with_capacity(env.len());
    for (k, v) in env {
        if k.is_empty() || k.as_bytes().contains(&b'=') {
            return Err(Error::Invalid {
                what: "environment variable name",
                reason: format!("{k:?} is empty or contains '='"),
            });
        }
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        out.push(cstring("environment variable", OsStr::from_bytes(&kv))?);
    }
    Ok(out)
}

pub(super) fn time_offsets(sandbox: &Sandbox) -> Result<Option<CString>> {
    let (mono, boot) = (sandbox.monotonic_offset, sandbox.boottime_offset);
    if mono == 0 && boot == 0 {
        return Ok(None);
    }
    if !sandbox.creates(Namespace::Time) {
        return Err(Error::Conflict(
            "clock offsets need a time namespace of the sandbox's own".into(),
        ));
    }
    let mut text = String::new();
    for (name, clock, off) in [
        ("monotonic", nix::time::ClockId::CLOCK_MONOTONIC, mono),
        ("boottime", nix::time::ClockId::CLOCK_BOOTTIME, boot),
    ] {
        if off == 0 {
            continue;
        }
        let now = nix::time::clock_gettime(clock)
            .map_err(|e| Error::os(format!("clock_gettime {name}"), e.into()))?;
        if now.tv_sec().checked_add(off).is_none_or(|v| v < 0) {
            return Err(Error::Invalid {
                what: "time offset",
                reason: format!(
                    "{name} offset {off}s would make the clock negative (it reads {}s)",
                    now.tv_sec()
                ),
            });
        }
        text.push_str(&format!("{name} {off} 0\n"));
    }
    Ok(Some(CString::new(text).unwrap_or_default()))
}

/// The program's `argv`: its path, then its arguments.
pub(super) fn arguments(program: &CString, cmd: &Command) -> Result<Vec<CString>> {
    let mut argv = vec![program.clone()];
    for a in &cmd.args {
        argv.push(cstring("argument", a)?);
    }
    Ok(argv)
}

/// The program's working directory inside the sandbox (`/` unless set).
pub(super) fn working_directory(cmd: &Command) -> Result<CString> {
    match &cmd.cwd {
        None => Ok(CString::new("/").unwrap_or_default()),
        Some(d) if d.is_absolute() => cstring("working directory", d.as_os_str()),
        Some(d) => Err(Error::Invalid {
            what: "working directory",
            reason: format!("{} is not an absolute path", d.display()),
        }),
    }
}

/// The built-in init's command line (none without the init):
/// `sandbox-init STATUS_FD SYNC_FD FLAGS EXEC_STAGE PROGRAM ARGS...`, or with `serve` (the
/// init of a pooled sandbox, waiting for its program on that descriptor)
/// `sandbox-init STATUS_FD SYNC_FD FLAGS|4 EXEC_STAGE CTL_FD FDS_STAGE`. FLAGS: 1 = be a subreaper,
/// 2 = the program dies with the init (both when the init is not PID 1 of a namespace,
/// `pid1`).
pub(super) fn init_arguments(
    init: bool,
    pid1: bool,
    fds: (std::os::fd::RawFd, std::os::fd::RawFd),
    serve: Option<std::os::fd::RawFd>,
    argv: &[CString],
) -> Vec<CString> {
    if !init {
        return Vec::new();
    }
    let (status_fd, sync_fd) = fds;
    let flags = if pid1 { 0 } else { 3 } | if serve.is_some() { 4 } else { 0 };
    let mut v: Vec<CString> = [
        "sandbox-init".to_string(),
        status_fd.to_string(),
        sync_fd.to_string(),
        flags.to_string(),
        (crate::error::Stage::Exec as u32).to_string(),
    ]
    .into_iter()
    .map(|a| CString::new(a).unwrap_or_default())
    .collect();
    match serve {
        Some(ctl) => {
            for n in [ctl as u32, crate::error::Stage::FileDescriptors as u32] {
                v.push(CString::new(n.to_string()).unwrap_or_default());
            }
        }
        None => v.extend(argv.iter().cloned()),
    }
    v
}
