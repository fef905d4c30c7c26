//! Machine-wide claims on bridge addresses, so that several processes sharing a bridge
//! (two `run` commands, a service and its restarted copy) never hand out one address twice.
//!
//! A claim is an exclusive `flock` on a file `/run/sandbox-net/leases/<netns>/<bridge>-
//! <index>/<address>`, in directories only root may write: the kernel drops the lock when
//! its holder dies, so a crashed caller needs no cleanup, and no unprivileged process can
//! take (and so block) an address. The file is removed, with the directories it
//! emptied, when the claim ends; one left by a crash is taken over by the next claimant.
//!
//! A caller that cannot use that directory (not root: it owns the bridge's network
//! namespace through a user namespace of its own, where only its own processes live)
//! claims with an abstract unix socket of the same name instead, which the kernel also
//! gives to one holder and frees at its death.

use crate::Error;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the claim files live.
pub const LEASE_DIR: &str = "/run/sandbox-net/leases";

/// A held claim; released when dropped.
#[derive(Debug)]
pub(crate) enum Claim {
    /// A locked file, removed on release (before the lock goes with the fd).
    File {
        path: PathBuf,
        #[allow(dead_code)]
        lock: nix::fcntl::Flock<std::fs::File>,
    },
    /// A bound abstract socket.
    Socket(#[allow(dead_code)] OwnedFd),
}

/// How claims on one bridge are made: files in its claim directory, or abstract sockets
/// (decided once per lease, not for every address it tries).
pub(crate) struct Claimer<'a> {
    /// The bridge's name and index.
    name: &'a str,
    index: u32,
    /// Its claim directory; `None`: abstract sockets.
    dir: Option<PathBuf>,
}

impl<'a> Claimer<'a> {
    /// For the bridge `name` (index `index`) of the caller's network namespace.
    pub(crate) fn new(name: &'a str, index: u32) -> Claimer<'a> {
        let dir = bridge_dir(name, index);
        if dir.is_some() {
            sweep_once();
        }
        Claimer { name, index, dir }
    }

    /// Claims `addr`: `None` if another process holds it.
    pub(crate) fn claim(&self, addr: Ipv4Addr) -> Result<Option<Claim>, Error> {
        let r = match &self.dir {
            Some(dir) => claim_file(dir, addr),
            None => claim_socket(self.name, self.index, addr),
        };
        r.map_err(|source| Error::Io {
            what: format!("claim address {addr} on bridge {}", self.name),
            source,
        })
    }
}

/// Once per process: removes the claim files nobody holds (left by callers that died
/// without releasing them, in any network namespace, dead ones included) and the
/// directories that leaves empty.
fn sweep_once() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(Path::new(LEASE_DIR), 0));
}

fn sweep(dir: &Path, depth: u32) {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() && depth < 2 {
            sweep(&path, depth + 1);
            let _ = std::fs::remove_dir(&path);
        } else if kind.is_file() && depth == 2 {
            let Ok(file) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
            else {
                continue;
            };
            // Lockable: its holder is gone. Unlinked while locked, as a release does.
            if let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// The claim directory of a bridge, when this process may use the lease directory (it is
/// root, and the directory's ancestors are root's and writable by no one else).
fn bridge_dir(name: &str, index: u32) -> Option<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let ns = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    let base = Path::new(LEASE_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(base)
        .ok()?;
    // Only root's, writable by no one else, all the way up.
    let mut p = Some(base);
    while let Some(dir) = p {
        let m = std::fs::symlink_metadata(dir).ok()?;
        if !m.is_dir() || m.uid() != 0 || m.mode() & 0o022 != 0 {
            return None;
        }
        p = dir.parent();
    }
    Some(
        base.join(format!("{}-{}", ns.dev(), ns.ino()))
            .join(format!("{name}-{index}")),
    )
}

fn claim_file(dir: &Path, addr: Ipv4Addr) -> std::io::Result<Option<Claim>> {
    use nix::fcntl::{Flock, FlockArg};
    let path = dir.join(addr.to_string());
    // A release may remove the directories between our creating and opening them, and a
    // file may be unlinked between our opening and locking it: try again.
    for _ in 0..16 {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r?,
        };
        let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, nix::Error::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => return Err(e.into()),
        };
        // Still the file at that path (not one a release unlinked meanwhile)?
        let held = locked.metadata()?;
        match std::fs::symlink_metadata(&path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(Some(Claim::File { path, lock: locked }));
            }
            _ => continue,
        }
    }
    Err(std::io::Error::other("the claim file kept changing"))
}

fn claim_socket(name: &str, index: u32, addr: Ipv4Addr) -> std::io::Result<Option<Claim>> {
    use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let label = format!("sandbox-net/lease/{name}/{index}/{addr}");
    let at = UnixAddr::new_abstract(label.as_bytes())?;
    match bind(fd.as_raw_fd(), &at) {
        Ok(()) => Ok(Some(Claim::Socket(fd))),
        Err(nix::Error::EADDRINUSE) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Claim::File { path, .. } = self {
            // Unlinked while still locked (the fd closes after this), so a claimant that
            // opened it meanwhile sees another file at the path and tries again.
            let _ = std::fs::remove_file(&*path);
            // The bridge's and the namespace's directories, and the base, once empty.
            let mut dir = path.parent();
            for _ in 0..4 {
                let Some(d) = dir else { break };
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
    }
}
