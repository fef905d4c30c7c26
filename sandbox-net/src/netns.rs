//! Named, persistent network namespaces, as `ip netns add` makes them: a namespace kept
//! alive by a bind mount of its file, so sandboxes can join it one after another.

use crate::netlink::Netlink;
use crate::Error;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A network namespace kept alive by a bind mount of its file (`/run/netns/NAME`), with
/// `lo` up. It outlives the sandboxes that join it ([`crate::Network::join`]) until its
/// owner calls [`Netns::remove`].
#[derive(Debug)]
pub struct Netns {
    path: PathBuf,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

impl Netns {
    /// Creates the namespace `name` under `/run/netns` (see [`Netns::create_in`]).
    pub async fn create(name: &str) -> Result<Netns, Error> {
        Netns::create_in(Path::new(NETNS_DIR), name).await
    }

    /// Creates a network namespace and binds it at `dir/name` (`dir` is created when
    /// missing). The bind mount is made in the caller's mount namespace. Needs root.
    pub async fn create_in(dir: &Path, name: &str) -> Result<Netns, Error> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InterfaceName {
                name: name.to_string(),
                reason: "a namespace name must be a single path component",
            });
        }
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(format!("create {}", path.display())))?;
        // Whatever happens from here (an error, or this future dropped at an await), the
        // file and its mount go again unless the namespace is handed out.
        let guard = Arc::new(Mutex::new(Pending {
            path: Some(path.clone()),
            mounted: false,
            done: false,
        }));
        let drop_guard = PendingGuard(guard.clone());
        let target = path.clone();
        // A thread of its own enters a new network namespace (a namespace of a thread
        // only), binds its namespace file, and ends: the mount keeps the namespace. (Not
        // a runtime thread, which would stay in that namespace; awaited, not joined.)
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().spawn(move || {
            let r = (|| -> Result<(), Error> {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io("create a network namespace")(e.into()))?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    nix::mount::MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| io(format!("bind the namespace at {}", target.display()))(e.into()))
            })();
            {
                let mut p = lock(&guard);
                p.mounted = r.is_ok();
                p.done = true;
                if p.path.is_none() {
                    // The caller gave up meanwhile: undo what only this thread knows of.
                    if p.mounted {
                        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
                    }
                    let _ = std::fs::remove_file(&target);
                    return;
                }
            }
            let _ = tx.send(r);
        });
        let made = match spawned {
            Ok(_) => rx.await.unwrap_or_else(|_| {
                Err(Error::Io {
                    what: "create a network namespace".into(),
                    source: std::io::Error::other("the thread died"),
                })
            }),
            Err(e) => {
                lock(&drop_guard.0).done = true;
                Err(io("start a thread for the namespace")(e))
            }
        };
        made?;
        let ns = Netns { path };
        // lo up, as `ip netns add` leaves it down but every user wants it.
        let up = async {
            let nl = Netlink::connect_in(ns.open_fd()?).await?;
            if let Some(lo) = nl.index("lo").await? {
                nl.up(lo).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        up?;
        drop_guard.disarm();
        Ok(ns)
    }

    /// A namespace file that exists already (made by [`Netns::create`] or `ip netns add`).
    /// Removing it stays with whoever made it.
    pub fn open(path: impl Into<PathBuf>) -> Result<Netns, Error> {
        let ns = Netns { path: path.into() };
        let fd = ns.open_fd()?;
        // NS_GET_NSTYPE
        // SAFETY: an ioctl without argument on a valid fd.
        let ty = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), 0xb703) };
        if ty != libc::CLONE_NEWNET {
            return Err(Error::Io {
                what: format!("{}", ns.path.display()),
                source: std::io::Error::other("not a network namespace file"),
            });
        }
        Ok(ns)
    }

    /// The namespace file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_fd(&self) -> Result<OwnedFd, Error> {
        std::fs::File::open(&self.path)
            .map(OwnedFd::from)
            .map_err(io(format!("open {}", self.path.display())))
    }

    fn remove_now(&self) -> Result<(), Error> {
        nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| io(format!("unmount {}", self.path.display()))(e.into()))?;
        std::fs::remove_file(&self.path).map_err(io(format!("remove {}", self.path.display())))
    }

    /// Unmounts and removes the namespace file; the namespace goes once no process is in
    /// it any more.
    pub fn remove(self) -> Result<(), Error> {
        self.remove_now()
    }
}

/// A namespace file being made: its path until it is handed out (`None` once the caller
/// gave up or succeeded), whether the namespace is bound on it, and whether the thread
/// binding it is done (or never started).
struct Pending {
    path: Option<PathBuf>,
    mounted: bool,
    done: bool,
}

fn lock(m: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a namespace file (and its mount) that was never handed out: on an error, or
/// when the future making it is dropped. While the thread making the mount still runs,
/// it is that thread's to undo (it finds the path taken away).
struct PendingGuard(Arc<Mutex<Pending>>);

impl PendingGuard {
    fn disarm(self) {
        lock(&self.0).path = None;
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut p = lock(&self.0);
        if let Some(path) = p.path.take() {
            if p.mounted {
                let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
            }
            if p.done {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}
