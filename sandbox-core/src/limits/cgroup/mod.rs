//! One cgroup per sandbox: limits written before the sandbox runs, usage read when it
//! ends, everything killed and removed afterwards. cgroup v2 when its controllers are
//! usable, v1 otherwise (each controller its own hierarchy), detected at run time.
//!
//! This file holds the life of the cgroup, the same in both versions (detect, create, join,
//! kill, remove); what differs between them, file names above all, is in `v1.rs` and
//! `v2.rs`. `pool.rs` keeps both ends off a spawn's path: cgroups are made ahead (spares
//! holding the limits of their site's last sandbox) and removed in the background.

use crate::{Error, Limits, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod pool;
mod v1;
mod v2;

#[cfg(feature = "test-hooks")]
pub(crate) use pool::{counts as pool_counts, spares as pool_spares};

/// The cgroup version in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Version {
    /// The unified hierarchy.
    V2,
    /// One hierarchy per controller.
    V1,
}

/// The limits a cgroup holds: what is written into it. A spare made ahead holds those of
/// its site's last sandbox, so a run with the same limits (a judge's, run after run)
/// writes none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Held {
    memory: Option<u64>,
    pids: Option<u64>,
    cpus: Option<f64>,
}

impl Held {
    fn of(l: &Limits) -> Held {
        Held {
            memory: l.memory,
            pids: l.pids,
            cpus: l.cpus,
        }
    }
}

/// What a sandbox used, read from its cgroup when it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub cpu_user: Duration,
    pub cpu_system: Duration,
    pub peak_memory: Option<u64>,
}

impl Usage {
    /// The CPU time used since `base` was read (a reused sandbox's run): the exact totals'
    /// difference, the user part as the user times' difference at most.
    pub(crate) fn since(&self, base: &Usage) -> Usage {
        let total =
            (self.cpu_user + self.cpu_system).saturating_sub(base.cpu_user + base.cpu_system);
        let cpu_user = self.cpu_user.saturating_sub(base.cpu_user).min(total);
        Usage {
            cpu_user,
            cpu_system: total - cpu_user,
            peak_memory: self.peak_memory,
        }
    }
}

/// Where cgroup filesystems are mounted.
const ROOT: &str = "/sys/fs/cgroup";

/// Which version the cgroup mount at `root` offers for `limits`, if any: v2 when it has
/// the controllers the limits need (CPU time is accounted without any), v1 when the
/// memory, pids, cpu and cpuacct hierarchies are there.
pub(crate) fn detect(root: &Path, limits: &Limits) -> Option<Version> {
    if let Some(serves) = v2::serves(root, limits) {
        return serves.then_some(Version::V2);
    }
    v1::present(root).then_some(Version::V1)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A sandbox's cgroup (one directory per hierarchy in v1). Dropping it kills whatever is
/// left in it and removes it.
#[derive(Debug)]
pub(crate) struct Cgroup {
    version: Version,
    /// v2: one directory; v1: one per controller, in `v1::CONTROLLERS` order.
    dirs: Vec<PathBuf>,
    /// The parent directories of `dirs`.
    parents: Vec<PathBuf>,
    /// v1: the controller of each of `dirs`.
    controllers: Vec<&'static str>,
    /// v1: controllers sharing another's directory (co-mounted), with its index.
    alias: Vec<(&'static str, usize)>,
    /// The parent is the library's own ([`DEFAULT_PARENT`]), not one the caller named.
    default_parent: bool,
    /// Removed in the background when dropped (see [`Site::pooled`]).
    pooled: bool,
    /// The limits written into it, if any.
    held: Option<Held>,
    /// Removed, or handed over for removal: dropping it does nothing more.
    swept: bool,
}

/// Where a sandbox's cgroup is made: the version, each hierarchy's directory, the parent.
/// Cgroups of one site are interchangeable until their limits are written, which is what
/// lets them be made ahead (`pool.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Site {
    version: Version,
    /// `(controller, directory)` of each hierarchy (v2: one, controller `""`).
    bases: Vec<(&'static str, PathBuf)>,
    /// The parent, relative to each base.
    parent: String,
    /// The caller named the parent (`Limits::cgroup_parent`): it must exist already.
    named_parent: bool,
    /// The root is a mounted cgroup filesystem: its cgroups are made ahead and removed in
    /// the background (a tree that only looks like one, in tests, is not).
    pooled: bool,
}

impl Site {
    /// The site of `limits`' cgroup: the mount it names (or `/sys/fs/cgroup`), the version
    /// found there, the hierarchies the limits need. Found once per process for each kind
    /// of limits (which controllers, which mount and parent): the mounts, and the caller's
    /// own cgroup the default parent lives in, are not expected to change under it.
    fn of(limits: &Limits) -> Result<Site> {
        type Key = (Option<PathBuf>, Option<String>, [bool; 3]);
        static FOUND: std::sync::Mutex<Vec<(Key, Site)>> = std::sync::Mutex::new(Vec::new());
        let key: Key = (
            limits.cgroup_mount.clone(),
            limits.cgroup_parent.clone(),
            [
                limits.memory.is_some(),
                limits.pids.is_some(),
                limits.cpus.is_some(),
            ],
        );
        let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, site)) = found.iter().find(|(k, _)| *k == key) {
            return Ok(site.clone());
        }
        let site = Site::find(limits)?;
        found.push((key, site.clone()));
        Ok(site)
    }

    /// [`Site::of`], looked for now.
    fn find(limits: &Limits) -> Result<Site> {
        let root = limits.cgroup_mount.as_deref().unwrap_or(Path::new(ROOT));
        let version = detect(root, limits).ok_or_else(|| {
            Error::Unsupported(format!(
                "memory, pids, cpus and CPU-time limits need cgroups: {} has neither cgroup \
                 v2 with the controllers these limits need ({}) nor the cgroup v1 memory, \
                 pids, cpu and cpuacct hierarchies (Limits::rlimits_only runs without)",
                root.display(),
                v2::needed(limits).join(", ")
            ))
        })?;
        Ok(Site::in_root(root, version, limits))
    }

    /// The site of `limits`' cgroup in the `version` hierarchy (or hierarchies) at `root`.
    fn in_root(root: &Path, version: Version, limits: &Limits) -> Site {
        let bases = match version {
            Version::V2 => vec![("", root.to_path_buf())],
            Version::V1 => v1::bases(root, limits),
        };
        Site {
            version,
            pooled: bases.iter().all(|(_, b)| is_cgroupfs(b)),
            bases,
            parent: limits
                .cgroup_parent
                .clone()
                .unwrap_or_else(|| DEFAULT_PARENT.to_string()),
            named_parent: limits.cgroup_parent.is_some(),
        }
    }
}

/// Whether `path` is on a cgroup filesystem (v1 or v2).
fn is_cgroupfs(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    statfs(path).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// The number after `key` on its line of a flat-keyed cgroup file (`cpu.stat`, ...).
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

/// Reads the CPU time of a sandbox's cgroup: v1 `cpuacct.usage` (ns), v2 `cpu.stat`'s
/// `usage_usec`. A cgroup gone reads as 0.
#[derive(Debug, Clone)]
pub(crate) struct CpuMeter {
    file: PathBuf,
    v2: bool,
    /// What was used before (a reused sandbox's earlier runs): not counted.
    base: Duration,
}

impl CpuMeter {
    pub(crate) fn read(&self) -> Duration {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        let total = if self.v2 {
            Duration::from_micros(field(&text, "usage_usec "))
        } else {
            Duration::from_nanos(num(&text))
        };
        total.saturating_sub(self.base)
    }

    /// A meter counting from now on.
    pub(crate) fn counting_from_now(mut self) -> CpuMeter {
        self.base = Duration::ZERO;
        self.base = self.read();
        self
    }
}

/// The directories of a sandbox's cgroup, for moving another process in; owning it
/// removes nothing (the sandbox's [`Cgroup`] does).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    dirs: Vec<PathBuf>,
}

impl Member {
    /// Moves `pid` into the cgroup (every hierarchy, in v1).
    pub(crate) fn add(&self, pid: u32) -> Result<()> {
        for d in &self.dirs {
            write(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }
}

/// The parent of sandboxes' cgroups unless `Limits::cgroup_parent` names another.
const DEFAULT_PARENT: &str = "sandbox";

/// Parent directories this process created: the last of its sandboxes to leave one
/// removes it, so no trace is left on the machine.
static MADE: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> =
    std::sync::OnceLock::new();

fn lock_made() -> std::sync::MutexGuard<'static, std::collections::HashSet<PathBuf>> {
    MADE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Cgroup { what, source: e }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(io(format!("write {value} to {}", p.display())))
}

/// A cgroup file's text; a file missing (a controller the cgroup lacks) reads as empty.
fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// A one-number cgroup file's number; 0 when there is none.
fn num(text: &str) -> u64 {
    text.trim().parse::<u64>().unwrap_or(0)
}

/// Makes the sandbox's directory `name` in the parent `p`, and the parent first when it is
/// the library's own and missing (retrying while another process removes it meanwhile).
fn make_dir(p: &Path, name: &str, version: Version, named_parent: bool) -> Result<PathBuf> {
    let mut tries = 0;
    loop {
        // Held while the parent is made and our cgroup put in it: the removal of
        // the parent (by this process's last sandbox in it) takes the same lock.
        let mut made = lock_made();
        if !p.is_dir() && named_parent {
            // A parent the caller named must exist (the default one is made).
            return Err(Error::Cgroup {
                what: format!(
                    "the cgroup parent {} (named with Limits::cgroup_parent)",
                    p.display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        if !p.is_dir() {
            std::fs::create_dir_all(p).map_err(io(format!(
                "create the cgroup parent {} (set another with Limits::cgroup_parent)",
                p.display()
            )))?;
            made.insert(p.to_path_buf());
            if version == Version::V2 {
                v2::enable_controllers(p);
            }
        }
        let dir = p.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // The parent was removed meanwhile (by another process).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => {
                drop(made);
                tries += 1
            }
            Err(e) => return Err(io(format!("create {}", dir.display()))(e)),
        }
    }
}

impl Cgroup {
    /// The sandbox's cgroup for `limits`, its limits written: a spare made ahead when the
    /// site has one, made now otherwise (and a spare made for the next one, in the
    /// background).
    pub(crate) fn create(limits: &Limits) -> Result<Cgroup> {
        let site = Site::of(limits)?;
        if site.pooled {
            let held = Held::of(limits);
            if let Some(cg) = pool::take(&site, held) {
                // A spare holds the limits of its site's last sandbox: other limits than
                // these, it is not used (what it holds would stay); nor one whose directories
                // are gone (removed by someone else): one is made now.
                let usable = cg.held == Some(held) && cg.dirs.iter().all(|d| d.is_dir());
                pool::count(usable);
                if usable {
                    return Ok(cg);
                }
            } else {
                pool::count(false);
            }
        }
        let mut cg = Cgroup::make(&site)?;
        cg.write_limits(limits)?;
        Ok(cg)
    }

    /// The sandbox's cgroup under `root` in `version`, made now, its limits written.
    #[cfg(test)]
    pub(crate) fn create_in(root: &Path, version: Version, limits: &Limits) -> Result<Cgroup> {
        let mut cg = Cgroup::make(&Site::in_root(root, version, limits))?;
        cg.write_limits(limits)?;
        Ok(cg)
    }

    /// Makes a cgroup at `site`, with no limit written: a directory named after this process
    /// in each hierarchy (and the library's parent when missing).
    fn make(site: &Site) -> Result<Cgroup> {
        let mut attempt = 0;
        loop {
            let name = format!(
                "sbx-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            match Cgroup::make_named(site, &name) {
                // Left by an earlier process that had this pid (reused): another name.
                Err(Error::Cgroup { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 =>
                {
                    attempt += 1;
                }
                made => return made,
            }
        }
    }

    /// [`Cgroup::make`] with the name `name` (what a failure made of it is removed).
    fn make_named(site: &Site, name: &str) -> Result<Cgroup> {
        let mut cg = Cgroup {
            version: site.version,
            dirs: Vec::new(),
            parents: Vec::new(),
            controllers: Vec::new(),
            alias: Vec::new(),
            default_parent: !site.named_parent,
            pooled: site.pooled,
            held: None,
            swept: false,
        };
        let mut seen: Vec<(PathBuf, usize)> = Vec::new();
        for (controller, base) in &site.bases {
            // `cpu` and `cpuacct` are often one hierarchy mounted twice (systemd's layout):
            // one directory serves both.
            let real = std::fs::canonicalize(base).unwrap_or_else(|_| base.clone());
            if let Some(&(_, i)) = seen.iter().find(|(r, _)| *r == real) {
                cg.alias.push((*controller, i));
                continue;
            }
            seen.push((real, cg.dirs.len()));
            let p = base.join(&site.parent);
            let dir = make_dir(&p, name, site.version, site.named_parent)?;
            cg.parents.push(p);
            cg.dirs.push(dir);
            cg.controllers.push(*controller);
        }
        Ok(cg)
    }

    fn dir(&self, controller: &str) -> &Path {
        let found = match self.version {
            Version::V2 => self.dirs.first(),
            Version::V1 => self
                .controllers
                .iter()
                .position(|c| *c == controller)
                .or_else(|| {
                    self.alias
                        .iter()
                        .find(|(c, _)| *c == controller)
                        .map(|(_, i)| *i)
                })
                .and_then(|i| self.dirs.get(i)),
        };
        found.map_or(Path::new("/nonexistent"), |d| d.as_path())
    }

    /// Writes `limits` into a cgroup that holds none yet.
    fn write_limits(&mut self, limits: &Limits) -> Result<()> {
        self.hold(Held::of(limits))
    }

    /// Writes `held` into a cgroup that holds no limits yet (what it held before would not
    /// be undone: spares holding other limits are never reused, see [`Cgroup::create`]).
    fn hold(&mut self, held: Held) -> Result<()> {
        // Unknown until written, should a write fail halfway.
        self.held = None;
        match self.version {
            Version::V1 => v1::write_limits(self, &held)?,
            Version::V2 => v2::write_limits(self.dir(""), &held)?,
        }
        self.held = Some(held);
        Ok(())
    }

    /// v2: a descriptor of the cgroup's directory, for `clone3(CLONE_INTO_CGROUP)`: the
    /// child is born in the cgroup. `None` for v1 (the parent moves the child in with
    /// [`Cgroup::add`] before it runs anything).
    pub(crate) fn clone_into(&self) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
        if self.version != Version::V2 {
            return None;
        }
        let d = self.dirs.first()?;
        Some(v2::open_dir(d))
    }

    /// Moves `pid` (the sandbox's first process, before it runs anything) into the cgroup.
    pub(crate) fn add(&self, pid: u32) -> Result<()> {
        self.member().add(pid)
    }

    /// What another process needs to join this cgroup (an exec into the sandbox).
    pub(crate) fn member(&self) -> Member {
        Member {
            dirs: self.dirs.clone(),
        }
    }

    /// A reader of the CPU time the sandbox used, for its watchdog.
    pub(crate) fn cpu_meter(&self) -> CpuMeter {
        match self.version {
            Version::V1 => v1::cpu_meter(self),
            Version::V2 => v2::cpu_meter(self.dir("")),
        }
    }

    /// What the sandbox used.
    /// Whether the kernel killed a process of the sandbox for its memory limit (read apart
    /// from [`Cgroup::usage`]: only a run killed by SIGKILL needs to know).
    pub(crate) fn oom_killed(&self) -> bool {
        match self.version {
            Version::V1 => v1::oom_killed(self),
            Version::V2 => v2::oom_killed(self.dir("")),
        }
    }

    pub(crate) fn usage(&self) -> Usage {
        match self.version {
            Version::V1 => v1::usage(self),
            Version::V2 => v2::usage(self.dir("")),
        }
    }

    /// How many times the kernel killed a process of the sandbox for its memory limit.
    pub(crate) fn oom_kills(&self) -> u64 {
        match self.version {
            Version::V1 => v1::oom_kills(self),
            Version::V2 => v2::oom_kills(self.dir("")),
        }
    }

    /// Starts the memory peak afresh, for a reused sandbox's next run; whether it could
    /// (v1 can; v2's `memory.peak` is reset per open file only, from Linux 6.12).
    pub(crate) fn reset_peak(&self) -> bool {
        match self.version {
            Version::V1 => v1::reset_peak(self),
            Version::V2 => false,
        }
    }

    /// Kills every process left in the cgroup.
    fn kill_all(&self) {
        if let (Version::V2, Some(d)) = (self.version, self.dirs.first()) {
            if v2::kill(d) {
                return;
            }
        }
        let listed = |d: &Path| -> Vec<i32> {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        };
        for d in &self.dirs {
            // Through pidfds, and only to pids still listed once their pidfds pin their
            // processes: a pid that ended and was reused by a process elsewhere is never
            // signalled. (One re-read for all, not one per pid.)
            let pinned: Vec<(i32, OwnedFd)> = listed(d)
                .into_iter()
                .filter_map(|pid| crate::sys::pidfd_open(pid).ok().map(|fd| (pid, fd)))
                .collect();
            if pinned.is_empty() {
                continue;
            }
            let still = listed(d);
            for (pid, fd) in &pinned {
                if still.contains(pid) {
                    let _ = crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                }
            }
        }
    }

    /// Kills what is left and removes the cgroup (retrying while the last processes exit;
    /// what still resists after ~2 s, a process stuck in the kernel, is left to a thread
    /// that keeps trying for a minute, so the caller is not held up).
    pub(crate) fn remove(&mut self) {
        if self.try_remove(200) {
            return;
        }
        let mut rest = Cgroup {
            version: self.version,
            dirs: std::mem::take(&mut self.dirs),
            parents: std::mem::take(&mut self.parents),
            controllers: self.controllers.clone(),
            alias: self.alias.clone(),
            default_parent: self.default_parent,
            pooled: self.pooled,
            held: self.held,
            swept: true,
        };
        // (If no thread can be made, `rest` is dropped here, trying nothing more.)
        let _ = std::thread::Builder::new()
            .name("sandbox-cgroup-sweep".into())
            .spawn(move || {
                rest.try_remove(6000);
            });
    }

    /// Up to `attempts` rounds of kill and rmdir; whether the cgroup is gone.
    fn try_remove(&mut self, attempts: u32) -> bool {
        for attempt in 0..attempts {
            self.kill_all();
            self.dirs.retain(|d| match std::fs::remove_dir(d) {
                Ok(()) => false,
                Err(e) => e.kind() != std::io::ErrorKind::NotFound,
            });
            if self.dirs.is_empty() {
                let mut made = lock_made();
                for p in self.parents.drain(..) {
                    // The library's own parent is removed by whichever sandbox (of any
                    // process) leaves it empty; a parent the caller named only if this
                    // process made it. Busy while another sandbox's cgroup is in it: that
                    // one removes it (a sandbox being made in it meanwhile makes it again).
                    let ours =
                        made.contains(&p) || (self.default_parent && p.ends_with(DEFAULT_PARENT));
                    if ours && std::fs::remove_dir(&p).is_ok() {
                        made.remove(&p);
                    }
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(if attempt < 20 { 1 } else { 10 }));
        }
        false
    }

    /// The cgroup's directories.
    #[cfg(test)]
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Cgroup {
    /// Whether dropping it only hands it over to be removed in the background (a pooled
    /// site's), rather than removing it on the spot.
    pub(crate) fn removes_in_background(&self) -> bool {
        self.pooled
    }

    /// This cgroup, moved out of `self` (which is left removed-in-effect: dropping it does
    /// nothing).
    fn take_over(&mut self) -> Cgroup {
        self.swept = true;
        Cgroup {
            version: self.version,
            dirs: std::mem::take(&mut self.dirs),
            parents: std::mem::take(&mut self.parents),
            controllers: std::mem::take(&mut self.controllers),
            alias: std::mem::take(&mut self.alias),
            default_parent: self.default_parent,
            pooled: self.pooled,
            held: self.held,
            swept: false,
        }
    }

    /// Kills what is left and removes the cgroup, here, for up to ~2 s; what still resists
    /// is handed to a thread of its own that keeps trying (the background remover's way, so
    /// one stuck cgroup does not hold up the others).
    fn remove_now(&mut self) {
        self.remove();
        self.swept = true;
    }

    /// Removes a cgroup that never held a process (a spare), without killing anything and
    /// without waiting for any lock: the way out of a process (`atexit`).
    fn remove_unused(&mut self) {
        self.swept = true;
        self.dirs.retain(|d| std::fs::remove_dir(d).is_err());
        if !self.dirs.is_empty() {
            return;
        }
        let Some(made) = MADE.get().and_then(|m| m.try_lock().ok()) else {
            return;
        };
        for p in &self.parents {
            if made.contains(p) || (self.default_parent && p.ends_with(DEFAULT_PARENT)) {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.swept {
            return;
        }
        if self.pooled {
            // Off the caller's path: the sandbox's `wait` returns without waiting for it.
            pool::retire(self.take_over());
        } else {
            self.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_usage_adds_up_to_the_totals_difference() {
        let ms = Duration::from_millis;
        let at = |u, s| Usage {
            cpu_user: ms(u),
            cpu_system: ms(s),
            peak_memory: None,
        };
        assert_eq!(at(700, 300).since(&at(400, 100)), at(300, 200));
        // The split shifted towards system time: the user part cannot pass the total.
        assert_eq!(at(390, 620).since(&at(400, 100)), at(0, 510));
    }

    fn fake(version: Version) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        match version {
            Version::V2 => {
                std::fs::write(
                    t.path().join("cgroup.controllers"),
                    "cpuset cpu io memory pids\n",
                )
                .unwrap();
            }
            Version::V1 => {
                for c in v1::CONTROLLERS {
                    std::fs::create_dir(t.path().join(c)).unwrap();
                    std::fs::write(t.path().join(c).join("cgroup.procs"), "").unwrap();
                }
            }
        }
        t
    }

    #[test]
    fn detects_each_version_and_neither() {
        let all = Limits::new().memory(1 << 30).pids(10).cpus(1.0);
        assert_eq!(detect(fake(Version::V2).path(), &all), Some(Version::V2));
        assert_eq!(detect(fake(Version::V1).path(), &all), Some(Version::V1));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(detect(empty.path(), &all), None);
        // A v2 hierarchy without the controllers (as on this machine's unified mount):
        // enough for CPU time (accounted by every v2 cgroup), not for the others.
        std::fs::write(empty.path().join("cgroup.controllers"), "\n").unwrap();
        assert_eq!(detect(empty.path(), &all), None);
        let cpu_time = Limits::new().cpu_time(Duration::from_secs(1));
        assert_eq!(detect(empty.path(), &cpu_time), Some(Version::V2));
        std::fs::write(empty.path().join("cgroup.controllers"), "pids\n").unwrap();
        assert_eq!(
            detect(empty.path(), &Limits::new().pids(3)),
            Some(Version::V2)
        );
        assert_eq!(detect(empty.path(), &Limits::new().memory(1 << 30)), None);
    }

    #[test]
    fn v2_limits_are_written_and_usage_parsed() {
        let root = fake(Version::V2);
        let l = Limits::new().memory(256 << 20).pids(64).cpus(1.5);
        let mut cg = Cgroup::create_in(root.path(), Version::V2, &l).unwrap();
        let d = cg.dirs()[0].clone();
        assert!(d.starts_with(root.path().join("sandbox")));
        let r = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(r("memory.max"), (256u64 << 20).to_string());
        assert_eq!(r("pids.max"), "64");
        assert_eq!(r("cpu.max"), "150000 100000");
        std::fs::write(
            d.join("cpu.stat"),
            "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\n",
        )
        .unwrap();
        std::fs::write(d.join("memory.peak"), "1234\n").unwrap();
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        let u = cg.usage();
        assert_eq!(u.cpu_user, Duration::from_millis(2));
        assert_eq!(u.cpu_system, Duration::from_millis(1));
        assert_eq!(u.peak_memory, Some(1234));
        assert!(cg.oom_killed());
        // Born in it: clone3(CLONE_INTO_CGROUP) gets a descriptor of the directory.
        assert!(cg.clone_into().unwrap().is_ok());
        // (A plain directory holding files cannot be rmdir'ed: clean it like the kernel.)
        for f in std::fs::read_dir(&d).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        cg.remove();
        assert!(!d.exists());
    }

    #[test]
    fn v1_limits_go_to_each_controller() {
        let root = fake(Version::V1);
        let l = Limits::new().memory(1 << 30).pids(10).cpus(0.5);
        let cg = Cgroup::create_in(root.path(), Version::V1, &l).unwrap();
        let r = |c: &str, f: &str| std::fs::read_to_string(cg.dir(c).join(f)).unwrap();
        assert_eq!(
            r("memory", "memory.limit_in_bytes"),
            (1u64 << 30).to_string()
        );
        assert_eq!(r("pids", "pids.max"), "10");
        assert_eq!(r("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cg.dirs().len(), 4);
        assert!(cg.clone_into().is_none(), "v1 moves the child in instead");
        // Without pids and cpus limits, only memory and cpuacct (for the usage).
        let cg2 =
            Cgroup::create_in(root.path(), Version::V1, &Limits::new().memory(1 << 30)).unwrap();
        assert_eq!(cg2.controllers, ["memory", "cpuacct"]);
        std::mem::forget(cg2);
        std::mem::forget(cg);
    }

    #[test]
    fn a_missing_or_unusable_parent_is_a_typed_error() {
        let root = fake(Version::V1);
        std::fs::write(root.path().join("memory").join("blocked"), "").unwrap();
        let l = Limits::new().memory(1 << 30).cgroup_parent("blocked");
        let e = Cgroup::create_in(root.path(), Version::V1, &l).unwrap_err();
        assert!(e.to_string().contains("blocked"), "{e}");
        let l = Limits::new()
            .memory(1 << 30)
            .cgroup_parent("no-such-parent");
        let e = Cgroup::create_in(root.path(), Version::V1, &l).unwrap_err();
        assert!(matches!(e, Error::Cgroup { .. }), "{e}");
        assert!(e.to_string().contains("no-such-parent"), "{e}");
        assert!(!root.path().join("memory/no-such-parent").exists());
    }
}
