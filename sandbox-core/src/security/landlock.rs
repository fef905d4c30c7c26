//! Landlock: the paths a sandboxed program may open, and the ruleset the child applies.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Landlock rules: the only paths (inside the sandbox's root) the program may open, read-only
/// or read-write, each with everything beneath it. Applied when the kernel has landlock;
/// [`Landlock::required`] makes its absence an error instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Landlock {
    /// Paths readable (and executable), with what is beneath.
    pub read_only: Vec<PathBuf>,
    /// Paths readable and writable, with what is beneath.
    pub read_write: Vec<PathBuf>,
    /// Fail the spawn when the kernel has no landlock.
    pub required: bool,
}

impl Landlock {
    /// No path allowed yet.
    pub fn new() -> Landlock {
        Landlock::default()
    }

    /// Allows reading (and executing) `path` and everything beneath it.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Landlock {
        self.read_only.push(path.into());
        self
    }

    /// Allows reading and writing `path` and everything beneath it.
    pub fn read_write(mut self, path: impl Into<PathBuf>) -> Landlock {
        self.read_write.push(path.into());
        self
    }

    /// Fails the spawn ([`Error::Unsupported`]) on a kernel without landlock, instead of
    /// running without it.
    pub fn required(mut self) -> Landlock {
        self.required = true;
        self
    }
}

/// Landlock's filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
pub(crate) mod landlock_access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// The rights that apply to a file (the others are about directories).
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
    /// Reading and executing.
    pub const READ: u64 = EXECUTE | READ_FILE | READ_DIR;

    /// Every right that landlock ABI `abi` knows (and so restricts).
    pub fn handled(abi: u32) -> u64 {
        match abi {
            0 => 0,
            1 => (1 << 13) - 1,
            2 => (1 << 14) - 1,
            3 | 4 => (1 << 15) - 1,
            _ => (1 << 16) - 1,
        }
    }
}

/// The kernel's landlock ABI version, or `None` without landlock.
fn landlock_abi() -> Option<u32> {
    // The kernel's answer does not change: asked once, not on every spawn.
    static ABI: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *ABI.get_or_init(ask_landlock_abi)
}

fn ask_landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no attribute pointer and no size.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

/// A landlock ruleset the child fills (paths are resolved inside its root) and applies.
#[derive(Debug)]
pub(crate) struct LandlockPlan {
    pub ruleset: std::os::fd::OwnedFd,
    /// `(path inside the root, rights)`.
    pub rules: Vec<(std::ffi::CString, u64)>,
}

impl Landlock {
    /// Checks the rules and creates the ruleset; `None` when the kernel has no landlock and
    /// it is not required.
    pub(crate) fn prepare(&self) -> Result<Option<LandlockPlan>> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let mut rules = Vec::new();
        for (paths, rights) in [
            (&self.read_only, landlock_access::READ),
            (&self.read_write, u64::MAX),
        ] {
            for p in paths {
                if !p.is_absolute() {
                    return Err(Error::Invalid {
                        what: "landlock path",
                        reason: format!("{} is not an absolute path", p.display()),
                    });
                }
                let c =
                    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Nul {
                        what: "landlock path",
                        value: p.display().to_string(),
                    })?;
                rules.push((c, rights));
            }
        }
        let Some(abi) = landlock_abi() else {
            if self.required {
                return Err(Error::Unsupported(
                    "landlock: this kernel has none (Linux 5.13+, with landlock in the \
                     lsm= list)"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let handled = landlock_access::handled(abi);
        for r in &mut rules {
            r.1 &= handled;
        }
        #[repr(C)]
        struct RulesetAttr {
            handled_access_fs: u64,
        }
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: a ruleset attribute of the size given; the result is a new descriptor.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0,
            )
        };
        if fd < 0 {
            return Err(Error::os(
                "create a landlock ruleset",
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a new descriptor (close-on-exec by the kernel), owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
        let ruleset =
            crate::sys::above_stdio(fd).map_err(|e| Error::os("create a landlock ruleset", e))?;
        Ok(Some(LandlockPlan { ruleset, rules }))
    }
}
