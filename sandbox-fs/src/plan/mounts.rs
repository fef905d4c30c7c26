//! The caller's extra [`Mount`]s: checked (targets absolute and inside the root, bind sources
//! present, sizes and modes sensible) and placed once the root is built.

use super::builder::{cpath, host, Builder};
use super::{InRoot, Op, PlanOptions, Target, TargetKind};
use crate::kernel::{
    MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_NOSUID as NOSUID, MOUNT_ATTR_RDONLY as RDONLY,
};
use crate::{Error, Mount};
use std::path::Path;

impl Builder {
    pub(super) fn user_mounts(
        &mut self,
        opts: &PlanOptions<'_>,
        new_root: bool,
    ) -> Result<(), Error> {
        for m in opts.mounts {
            self.user_mount(opts, m, new_root)?;
        }
        Ok(())
    }

    fn user_mount(
        &mut self,
        opts: &PlanOptions<'_>,
        m: &Mount,
        new_root: bool,
    ) -> Result<(), Error> {
        let dir = |p: &Path| InRoot::new(p, TargetKind::Dir, new_root);
        let on_host = |what: &str| {
            Error::BadTarget {
            target: m.target().to_path_buf(),
            reason: match what {
                "dir" => "a dir mount needs a root of the sandbox's own (it would be created on the host)",
                _ => "a symlink mount needs a root of the sandbox's own (it would be created on the host)",
            },
        }
        };
        match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                let canon = std::fs::canonicalize(source).map_err(|e| Error::BindSource {
                    path: source.clone(),
                    source: e,
                })?;
                let meta = std::fs::metadata(&canon).map_err(|e| Error::BindSource {
                    path: source.clone(),
                    source: e,
                })?;
                let kind = if meta.is_dir() {
                    TargetKind::Dir
                } else {
                    TargetKind::File
                };
                let t = InRoot::new(target, kind, new_root)?;
                let ro = if *readonly { RDONLY } else { 0 };
                self.bind(host(&canon)?, Target::Root(t), true, ro | NOSUID | NODEV);
            }
            Mount::Tmpfs { target, size, mode } => {
                if *size == Some(0) {
                    return Err(Error::Invalid {
                        what: "tmpfs size",
                        reason: format!(
                            "{}: 0 bytes (the kernel would read it as no limit)",
                            target.display()
                        ),
                    });
                }
                let mode = mode.unwrap_or(0o755);
                if mode > 0o7777 {
                    return Err(Error::Invalid {
                        what: "tmpfs mode",
                        reason: format!("{}: {mode:o} is not a permission mode", target.display()),
                    });
                }
                self.tmpfs(Target::Root(dir(target)?), mode, *size, NOSUID | NODEV);
            }
            Mount::Proc { target } => self.proc(opts, dir(target)?),
            Mount::Sysfs { target } => self.sysfs(opts, dir(target)?),
            Mount::File {
                target,
                contents,
                mode,
                readonly,
            } => {
                let t = InRoot::new(target, TargetKind::File, new_root)?;
                let mode = mode.unwrap_or(0o644);
                if mode > 0o7777 {
                    return Err(Error::Invalid {
                        what: "file mode",
                        reason: format!("{}: {mode:o} is not a permission mode", target.display()),
                    });
                }
                let src = self.staging_file(contents.clone(), mode);
                let ro = if *readonly { RDONLY } else { 0 };
                self.bind(src, Target::Root(t), false, ro | NOSUID | NODEV);
            }
            Mount::Symlink { link, points_to } => {
                if !new_root {
                    return Err(on_host("symlink"));
                }
                let l = InRoot::new(link, TargetKind::File, true)?;
                self.ops.push(Op::Symlink {
                    points_to: cpath(points_to)?,
                    link: l,
                });
            }
            Mount::Dir { target, mode } => {
                if !new_root {
                    return Err(on_host("dir"));
                }
                let mode = mode.unwrap_or(0o755);
                if mode > 0o7777 {
                    return Err(Error::Invalid {
                        what: "directory mode",
                        reason: format!("{}: {mode:o} is not a permission mode", target.display()),
                    });
                }
                self.ops.push(Op::MakeDir {
                    target: dir(target)?,
                    mode,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! A caller's mount is refused, naming it, when its target is not absolute or could leave the
    //! root, its source is missing, its size is zero, or it would create something on the
    //! host.

    use crate::plan::tests::pid;
    use crate::plan::{plan, PlanOptions};
    use crate::{Error, Mount, Rootfs};

    #[test]
    fn targets_must_be_absolute_and_stay_inside() {
        for (t, want) in [
            ("relative/x", "not an absolute path"),
            ("/a/../../etc", "contains `..`"),
            ("/", "the root itself"),
        ] {
            let m = [Mount::tmpfs(t)];
            let opts = PlanOptions {
                mounts: &m,
                ..pid()
            };
            let e = plan(&Rootfs::host_readonly(), &opts).unwrap_err();
            assert!(matches!(e, Error::BadTarget { .. }), "{e}");
            assert!(
                e.to_string().contains(want) && e.to_string().contains(t),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_bind_source_names_it() {
        let m = [Mount::bind("/no/such/source", "/data")];
        let opts = PlanOptions {
            mounts: &m,
            ..pid()
        };
        let e = plan(&Rootfs::host_readonly(), &opts).unwrap_err();
        assert!(matches!(e, Error::BindSource { .. }), "{e}");
        assert!(e.to_string().contains("/no/such/source"), "{e}");
    }

    #[test]
    fn zero_sized_tmpfs_is_refused() {
        let m = [Mount::tmpfs("/t").size(0)];
        let opts = PlanOptions {
            mounts: &m,
            ..pid()
        };
        let e = plan(&Rootfs::host_readonly(), &opts).unwrap_err();
        assert!(e.to_string().contains("0 bytes"), "{e}");
    }

    #[test]
    fn dirs_and_symlinks_are_not_created_on_the_host() {
        let m = [Mount::dir("/newdir")];
        let opts = PlanOptions {
            mounts: &m,
            ..pid()
        };
        let e = plan(&Rootfs::host(), &opts).unwrap_err();
        assert!(e.to_string().contains("created on the host"), "{e}");
    }
}
