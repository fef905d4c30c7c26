//! `mounts`, `linux.maskedPaths` and `linux.readonlyPaths`.
//!
//! A sandbox's new root always gets a fresh `/proc` (masked as runc masks it), a private
//! `/dev` (with its own `devpts` and `/dev/shm`) and a read-only `/sys`: the spec's mounts of
//! those kinds at those places are what the sandbox does already. Binds, tmpfs, `proc` and
//! `sysfs` elsewhere become the sandbox's [`Mount`]s; anything else is refused.

use crate::convert::Warning;
use crate::error::OciError;
use oci_spec::runtime::{Linux, Spec};
use sandbox_core::{Mount, Sandbox};
use std::path::{Component, Path};

/// The places the sandbox builds itself, with the mount type it builds there.
const BUILT: [(&str, &str); 5] = [
    ("/proc", "proc"),
    ("/dev", "tmpfs"),
    ("/dev/pts", "devpts"),
    ("/dev/shm", "tmpfs"),
    ("/sys", "sysfs"),
];

/// Options that say nothing a sandbox's mounts do not already do: propagation (its mounts
/// are private), access-time updates, and what every such mount has (`nosuid`, `nodev`).
const ACCEPTED: [&str; 12] = [
    "private",
    "rprivate",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "noatime",
    "nosuid",
    "nodev",
    "rw",
    "newinstance",
];

/// Applies the spec's mounts and path lists to `sandbox`.
pub(crate) fn apply(
    mut sandbox: Sandbox,
    spec: &Spec,
    linux: &Linux,
    bundle: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Sandbox, OciError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination();
        check_destination(dest, &format!("{field}.destination"))?;
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(OciError::unsupported(
                format!("{field}.uidMappings"),
                "idmapped mounts",
            ));
        }
        let options = m.options().clone().unwrap_or_default();
        let typ = m.typ().clone().unwrap_or_default();
        let bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        if let Some((_, built)) = BUILT.iter().find(|(p, _)| Path::new(p) == dest) {
            if !bind && typ == *built {
                // (The sandbox's own /dev/shm is `nosuid,nodev`, its /dev `nosuid,noexec,
                // nodev`: a `noexec` asked of /dev/shm is not applied.)
                if dest == Path::new("/dev/shm") && options.iter().any(|o| o == "noexec") {
                    warnings.push(Warning {
                        field: format!("{field}.options"),
                        message: "noexec is not applied to /dev/shm".into(),
                    });
                }
                continue;
            }
        }
        let hidden = [Path::new("/dev/mqueue"), Path::new("/sys/fs/cgroup")];
        if !bind
            && hidden.contains(&dest.as_path())
            && (typ == "mqueue" || typ == "cgroup" || typ == "cgroup2")
        {
            warnings.push(Warning {
                field,
                message: format!("{} ({typ}) is not mounted", dest.display()),
            });
            continue;
        }
        let mut readonly = false;
        let mut size = None;
        let mut mode = None;
        for o in &options {
            match o.as_str() {
                "ro" => readonly = true,
                "bind" | "rbind" if bind => {}
                o if ACCEPTED.contains(&o) => {}
                o if typ == "tmpfs" && o.starts_with("size=") => {
                    size = Some(bytes(&o[5..]).ok_or_else(|| {
                        OciError::invalid(format!("{field}.options"), format!("{o}: not a size"))
                    })?);
                }
                o if typ == "tmpfs" && o.starts_with("mode=") => {
                    mode = Some(u32::from_str_radix(&o[5..], 8).map_err(|_| {
                        OciError::invalid(format!("{field}.options"), format!("{o}: not octal"))
                    })?);
                }
                o => {
                    return Err(OciError::unsupported(
                        format!("{field}.options"),
                        format!("{o:?} on {} ({typ})", dest.display()),
                    ))
                }
            }
        }
        if readonly && !bind && typ != "sysfs" {
            return Err(OciError::unsupported(
                format!("{field}.options"),
                format!(
                    "\"ro\" on {} ({typ}): only binds are made read-only",
                    dest.display()
                ),
            ));
        }
        let mount = if bind {
            let source = m.source().clone().ok_or_else(|| {
                OciError::invalid(format!("{field}.source"), "a bind mount needs a source")
            })?;
            // (Relative to the bundle, as the runtime spec says.)
            let source = bundle.join(source);
            let recursive = options.iter().any(|o| o == "rbind");
            if !recursive && has_mounts_below(&source) {
                return Err(OciError::unsupported(
                    format!("{field}.options"),
                    format!(
                        "a bind (not rbind) of {}, which has mounts below it: binds here are \
                         recursive, and would show them",
                        source.display()
                    ),
                ));
            }
            let mount = Mount::bind(source, dest);
            if readonly {
                mount.readonly()
            } else {
                mount
            }
        } else {
            match typ.as_str() {
                "tmpfs" => {
                    let mut t = Mount::tmpfs(dest);
                    if let Some(s) = size {
                        t = t.size(s);
                    }
                    if let Some(m) = mode {
                        t = t.mode(m);
                    }
                    t
                }
                "proc" => {
                    // Only /proc itself is masked as runc masks it.
                    return Err(OciError::unsupported(
                        format!("{field}.destination"),
                        format!("a proc mount at {} (only /proc is)", dest.display()),
                    ));
                }
                "sysfs" => Mount::sysfs(dest),
                other => {
                    return Err(OciError::unsupported(
                        format!("{field}.type"),
                        format!(
                            "{other:?} at {} (bind, tmpfs, proc and sysfs are)",
                            dest.display()
                        ),
                    ))
                }
            }
        };
        sandbox = sandbox.mount(mount);
    }
    // What the sandbox masks and makes read-only itself (as runc's default spec, and a
    // little more).
    use sandbox_core::fs::{MASKED_DIRS, MASKED_FILES, READONLY_PATHS};
    let masked: Vec<&str> = MASKED_FILES.iter().chain(&MASKED_DIRS).copied().collect();
    for (field, list, ours) in [
        ("maskedPaths", linux.masked_paths(), &masked[..]),
        ("readonlyPaths", linux.readonly_paths(), &READONLY_PATHS[..]),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            if !ours.contains(&p.trim_start_matches('/')) {
                return Err(OciError::unsupported(
                    format!("linux.{field}[{i}]"),
                    format!(
                        "{p}: the sandbox's own list is fixed (/{})",
                        ours.join(", /")
                    ),
                ));
            }
        }
    }
    Ok(sandbox)
}

/// Whether any mount of this process's mount table lies below `dir` (not at it).
fn has_mounts_below(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return true;
    };
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(sandbox_core::fs::mountinfo_path)
        .any(|point| {
            let point = Path::new(&point);
            point != dir && point.starts_with(&dir)
        })
}

/// A mount's destination: absolute, without `..`.
fn check_destination(dest: &Path, field: &str) -> Result<(), OciError> {
    if !dest.is_absolute() {
        return Err(OciError::invalid(
            field,
            format!("{} is not absolute", dest.display()),
        ));
    }
    if dest.components().any(|c| c == Component::ParentDir) {
        return Err(OciError::invalid(
            field,
            format!("{} contains `..`", dest.display()),
        ));
    }
    Ok(())
}

/// A tmpfs `size=`: bytes, or with a `k`, `m` or `g` suffix.
fn bytes(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_sizes() {
        assert_eq!(bytes("65536k"), Some(64 << 20));
        assert_eq!(bytes("512"), Some(512));
        assert_eq!(bytes("2G"), Some(2 << 30));
        assert_eq!(bytes("1x"), None);
        assert_eq!(bytes(""), None);
        assert_eq!(bytes("99999999999g"), None);
    }
}
