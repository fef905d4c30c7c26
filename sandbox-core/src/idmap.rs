//! Uid and gid maps: choosing the defaults, checking them, and writing them for a child.

use crate::error::IdKind;
use crate::{Error, IdMap, Result, Sandbox};
use std::path::{Path, PathBuf};

/// The kernel's limit on the number of lines of a map (since Linux 4.15).
const MAX_RANGES: usize = 340;

/// How the parent writes the maps once the child's user namespace exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdMapWrite {
    /// Write `/proc/<pid>/{setgroups,gid_map,uid_map}` directly.
    Direct {
        uid_map: String,
        gid_map: String,
        deny_setgroups: bool,
    },
    /// Run the setuid helpers `newuidmap` and `newgidmap` (caller is not root, maps other
    /// ids than its own).
    Helper {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
        uid_args: Vec<String>,
        gid_args: Vec<String>,
    },
}

/// What the maps mean for the child: may it, and must it, drop supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdPlan {
    pub write: IdMapWrite,
    /// Call `setgroups(0, NULL)` in the child.
    pub clear_groups: bool,
    /// ... and accept EPERM from it (a helper may have denied setgroups).
    pub groups_best_effort: bool,
}

/// The caller's identity, as far as maps are concerned.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub euid: u32,
    pub egid: u32,
    /// The caller's user name (for `/etc/subuid`); looked up only when a map needs the
    /// setuid helpers, not on every spawn (it is a passwd lookup, maybe over the network).
    pub name: Option<String>,
}

impl Caller {
    pub(crate) fn current() -> Caller {
        Caller {
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
            name: None,
        }
    }

    fn name(&self) -> Option<String> {
        self.name.clone().or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(self.euid))
                .ok()
                .flatten()
                .map(|u| u.name)
        })
    }
}

fn render(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

fn args(maps: &[IdMap]) -> Vec<String> {
    maps.iter()
        .flat_map(|m| [m.inside, m.outside, m.count])
        .map(|n| n.to_string())
        .collect()
}

/// Checks one map on its own: sizes, overflow, overlaps.
pub(crate) fn validate(kind: IdKind, maps: &[IdMap]) -> Result<()> {
    let err = |reason: String| Error::IdMap { kind, reason };
    if maps.is_empty() {
        return Err(err("no ranges".into()));
    }
    if maps.len() > MAX_RANGES {
        return Err(err(format!(
            "{} ranges, the kernel accepts at most {MAX_RANGES}",
            maps.len()
        )));
    }
    for m in maps {
        if m.count == 0 {
            return Err(err(format!("range {} {} 0 is empty", m.inside, m.outside)));
        }
        for (start, side) in [(m.inside, "inside"), (m.outside, "outside")] {
            if u64::from(start) + u64::from(m.count) > u64::from(u32::MAX) {
                return Err(err(format!(
                    "range {} {} {} runs past the last id {side}",
                    m.inside, m.outside, m.count
                )));
            }
        }
    }
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            let overlap = |x: u32, y: u32| {
                u64::from(x) < u64::from(y) + u64::from(b.count)
                    && u64::from(y) < u64::from(x) + u64::from(a.count)
            };
            if overlap(a.inside, b.inside) {
                return Err(err(format!(
                    "ranges {} {} {} and {} {} {} overlap inside",
                    a.inside, a.outside, a.count, b.inside, b.outside, b.count
                )));
            }
            if overlap(a.outside, b.outside) {
                return Err(err(format!(
                    "ranges {} {} {} and {} {} {} overlap outside",
                    a.inside, a.outside, a.count, b.inside, b.outside, b.count
                )));
            }
        }
    }
    Ok(())
}

/// Reads the subordinate ranges (`/etc/subuid`-style lines `user:start:count`) granted to
/// the caller.
fn subordinate_ranges(file: &Path, caller_id: u32, caller_name: Option<&str>) -> Vec<(u32, u32)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut it = line.trim().split(':');
            let (who, start, count) = (it.next()?, it.next()?, it.next()?);
            let me = who == caller_id.to_string() || Some(who) == caller_name;
            if !me {
                return None;
            }
            Some((start.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Chooses and checks the maps of a sandbox with a new user namespace.
pub(crate) fn plan(sandbox: &Sandbox, caller: &Caller) -> Result<IdPlan> {
    plan_with(
        sandbox,
        caller,
        Path::new("/etc/subuid"),
        Path::new("/etc/subgid"),
    )
}

pub(crate) fn plan_with(
    sandbox: &Sandbox,
    caller: &Caller,
    subuid: &Path,
    subgid: &Path,
) -> Result<IdPlan> {
    let root = caller.euid == 0;
    let default = |own: u32| {
        if root {
            let r = sandbox.remap;
            vec![IdMap::new(0, r.start, r.count)]
        } else {
            vec![IdMap::new(0, own, 1)]
        }
    };
    let uid = if sandbox.uid_map.is_empty() {
        default(caller.euid)
    } else {
        sandbox.uid_map.clone()
    };
    let gid = if sandbox.gid_map.is_empty() {
        default(caller.egid)
    } else {
        sandbox.gid_map.clone()
    };
    validate(IdKind::Uid, &uid)?;
    validate(IdKind::Gid, &gid)?;
    if root {
        return Ok(IdPlan {
            write: IdMapWrite::Direct {
                uid_map: render(&uid),
                gid_map: render(&gid),
                deny_setgroups: false,
            },
            clear_groups: true,
            groups_best_effort: false,
        });
    }
    let only_own =
        |maps: &[IdMap], own: u32| matches!(maps, [m] if m.outside == own && m.count == 1);
    if only_own(&uid, caller.euid) && only_own(&gid, caller.egid) {
        return Ok(IdPlan {
            write: IdMapWrite::Direct {
                uid_map: render(&uid),
                gid_map: render(&gid),
                deny_setgroups: true,
            },
            clear_groups: false,
            groups_best_effort: false,
        });
    }
    // Anything else needs the setuid helpers and ranges granted in /etc/sub[ug]id.
    let name = caller.name();
    let check = |kind: IdKind, maps: &[IdMap], own: u32, file: &Path| -> Result<()> {
        let granted = subordinate_ranges(file, caller.euid, name.as_deref());
        for m in maps {
            if m.outside == own && m.count == 1 {
                continue;
            }
            let lo = u64::from(m.outside);
            let hi = lo + u64::from(m.count);
            let ok = granted.iter().any(|&(s, c)| {
                let s = u64::from(s);
                lo >= s && hi <= s + u64::from(c)
            });
            if !ok {
                return Err(Error::IdMap {
                    kind,
                    reason: format!(
                        "range {} {} {} is neither the caller's own id ({own}) nor granted to it in {}",
                        m.inside,
                        m.outside,
                        m.count,
                        file.display()
                    ),
                });
            }
        }
        Ok(())
    };
    check(IdKind::Uid, &uid, caller.euid, subuid)?;
    check(IdKind::Gid, &gid, caller.egid, subgid)?;
    let helper = |kind: IdKind, name: &str| {
        find_helper(name).ok_or_else(|| Error::IdMap {
            kind,
            reason: format!(
                "an unprivileged caller needs {name} (Debian package uidmap) to write more than its own id"
            ),
        })
    };
    Ok(IdPlan {
        write: IdMapWrite::Helper {
            newuidmap: helper(IdKind::Uid, "newuidmap")?,
            newgidmap: helper(IdKind::Gid, "newgidmap")?,
            uid_args: args(&uid),
            gid_args: args(&gid),
        },
        clear_groups: true,
        groups_best_effort: true,
    })
}

/// Writes the maps of process `pid`, whose user namespace exists and which waits for us.
pub(crate) async fn write(pid: i32, how: &IdMapWrite) -> Result<()> {
    match how {
        IdMapWrite::Direct {
            uid_map,
            gid_map,
            deny_setgroups,
        } => {
            let put = |name: &str, text: &str| {
                let path = format!("/proc/{pid}/{name}");
                std::fs::write(&path, text).map_err(|e| Error::os(format!("write {path}"), e))
            };
            if *deny_setgroups {
                put("setgroups", "deny")?;
            }
            put("gid_map", gid_map)?;
            put("uid_map", uid_map)
        }
        IdMapWrite::Helper {
            newuidmap,
            newgidmap,
            uid_args,
            gid_args,
        } => {
            for (kind, helper, args) in [
                (IdKind::Gid, newgidmap, gid_args),
                (IdKind::Uid, newuidmap, uid_args),
            ] {
                let out = tokio::process::Command::new(helper)
                    .arg(pid.to_string())
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await
                    .map_err(|e| Error::os(format!("run {}", helper.display()), e))?;
                if !out.status.success() {
                    return Err(Error::IdMap {
                        kind,
                        reason: format!(
                            "{} {pid} {} failed ({}): {}",
                            helper.display(),
                            args.join(" "),
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    });
                }
            }
            Ok(())
        }
    }
}

/// A user namespace kept to describe idmapped mounts.
pub(crate) type MappingUserns = std::sync::Arc<std::os::fd::OwnedFd>;

/// For a root caller whose sandbox remaps ids: a user namespace holding the sandbox's maps
/// (made once per distinct map and kept), to mount overlay layers idmapped through it, and
/// the host uid and gid of the sandbox's root. `None` when the maps are written by helpers
/// (the caller is not root: it cannot make idmapped mounts) or map the host's root to 0.
pub(crate) fn mapping_userns(plan: &IdPlan) -> Option<Result<(MappingUserns, (u32, u32))>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    type Cache = Mutex<HashMap<(String, String), Arc<std::os::fd::OwnedFd>>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let IdMapWrite::Direct {
        uid_map,
        gid_map,
        deny_setgroups: false,
    } = &plan.write
    else {
        return None;
    };
    let root_of = |map: &str| {
        map.lines().find_map(|l| {
            let v: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match v[..] {
                [0, outside, _] => Some(outside),
                _ => None,
            }
        })
    };
    let owner = (root_of(uid_map)?, root_of(gid_map)?);
    if owner == (0, 0) {
        return None;
    }
    let cache = CACHE.get_or_init(Default::default);
    let key = (uid_map.clone(), gid_map.clone());
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fd) = c.get(&key) {
        return Some(Ok((fd.clone(), owner)));
    }
    // Each entry holds a user namespace: keep a few (sandboxes with their own ranges each
    // would otherwise pile them up to the kernel's limit).
    if c.len() >= 16 {
        c.clear();
    }
    Some(
        crate::sys::userns_with_maps(uid_map, gid_map)
            .map(|fd| {
                let fd = Arc::new(fd);
                c.insert(key, fd.clone());
                (fd, owner)
            })
            .map_err(|e| Error::os("create a user namespace for idmapped layers", e)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn caller(euid: u32) -> Caller {
        Caller {
            euid,
            egid: euid,
            name: Some("alice".into()),
        }
    }

    #[test]
    fn root_caller_is_remapped_by_default_never_to_host_root() {
        let p = plan(&Sandbox::new(), &caller(0)).unwrap();
        let IdMapWrite::Direct {
            uid_map, gid_map, ..
        } = &p.write
        else {
            panic!("{p:?}")
        };
        assert_eq!(uid_map, "0 524288 65536\n");
        assert_eq!(gid_map, "0 524288 65536\n");
        assert!(p.clear_groups);
    }

    #[test]
    fn unprivileged_caller_maps_itself_to_root_with_setgroups_denied() {
        let p = plan(&Sandbox::new(), &caller(1000)).unwrap();
        assert_eq!(
            p.write,
            IdMapWrite::Direct {
                uid_map: "0 1000 1\n".into(),
                gid_map: "0 1000 1\n".into(),
                deny_setgroups: true
            }
        );
        assert!(!p.clear_groups);
    }

    #[test]
    fn root_may_write_several_ranges() {
        let s = Sandbox::new()
            .uid_map(IdMap::new(0, 100000, 1000))
            .uid_map(IdMap::new(1000, 5000, 1));
        let p = plan(&s, &caller(0)).unwrap();
        let IdMapWrite::Direct { uid_map, .. } = p.write else {
            panic!()
        };
        assert_eq!(uid_map, "0 100000 1000\n1000 5000 1\n");
    }

    #[test]
    fn overlapping_ranges_are_rejected() {
        let inside = Sandbox::new()
            .uid_map(IdMap::new(0, 100000, 10))
            .uid_map(IdMap::new(5, 200000, 10));
        let e = plan(&inside, &caller(0)).unwrap_err();
        assert!(e.to_string().contains("overlap inside"), "{e}");
        let outside = Sandbox::new()
            .gid_map(IdMap::new(0, 100000, 10))
            .gid_map(IdMap::new(100, 100009, 10));
        let e = plan(&outside, &caller(0)).unwrap_err();
        assert!(e.to_string().contains("invalid gid map"), "{e}");
        assert!(e.to_string().contains("overlap outside"), "{e}");
    }

    #[test]
    fn empty_and_overflowing_ranges_are_rejected() {
        let e = validate(IdKind::Uid, &[IdMap::new(0, 0, 0)]).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = validate(IdKind::Uid, &[IdMap::new(0, u32::MAX - 1, 10)]).unwrap_err();
        assert!(e.to_string().contains("past the last id"), "{e}");
    }

    #[test]
    fn unprivileged_caller_needs_granted_ranges_for_more() {
        let dir = tempfile::tempdir().unwrap();
        let subuid = dir.path().join("subuid");
        let subgid = dir.path().join("subgid");
        let mut f = std::fs::File::create(&subuid).unwrap();
        writeln!(f, "alice:200000:65536").unwrap();
        std::fs::write(&subgid, "1000:300000:65536\n").unwrap();
        let s = Sandbox::new()
            .uid_map(IdMap::new(0, 1000, 1))
            .uid_map(IdMap::new(1, 200000, 65536))
            .gid_map(IdMap::new(0, 1000, 1))
            .gid_map(IdMap::new(1, 300000, 100));
        match plan_with(&s, &caller(1000), &subuid, &subgid) {
            Ok(p) => {
                let IdMapWrite::Helper { uid_args, .. } = p.write else {
                    panic!()
                };
                assert_eq!(uid_args, ["0", "1000", "1", "1", "200000", "65536"]);
            }
            // Without the uidmap package the error must say so.
            Err(e) => assert!(
                e.to_string().contains("newgidmap") || e.to_string().contains("newuidmap"),
                "{e}"
            ),
        }
        let too_far = Sandbox::new().uid_map(IdMap::new(0, 900000, 10));
        let e = plan_with(&too_far, &caller(1000), &subuid, &subgid).unwrap_err();
        assert!(e.to_string().contains("nor granted"), "{e}");
    }
}
