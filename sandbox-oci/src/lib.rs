//! OCI runtime-spec bundles run as sandboxes: a bundle's `config.json` becomes a
//! [`sandbox_core::Sandbox`] and the [`sandbox_core::Command`] to run in it, so an OCI
//! runtime (and through it containerd, podman or Kubernetes) can drive the same
//! isolation, limits and hardening as the library.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bundle = sandbox_oci::Bundle::load("/path/to/bundle")?;
//! let mut c = bundle.convert()?;
//! for w in &c.warnings {
//!     eprintln!("warning: {w}");
//! }
//! let outcome = c.command.status().await?;
//! # Ok(()) }
//! ```
//!
//! Every field of the spec is applied, refused with an [`OciError`] naming it, or — when
//! leaving it out cannot make the sandbox less isolated (an SELinux label, `cpu.shares`) —
//! reported as a [`Warning`]; nothing is dropped silently. Access-time mount options
//! (`relatime`, `strictatime`, …) and propagation options (the sandbox's mounts are
//! private) are accepted as what the sandbox does anyway.
//!
//! Where this differs from runc: without a `linux.seccomp` object the sandbox keeps its
//! default filter; the process always runs with `no_new_privs`; `/proc`, `/dev` and `/sys`
//! are the sandbox's own (masked as runc masks them); one capability set (the effective
//! one) is kept in every set; the process runs as root of its user namespace.
//!
//! The runtime command line (`create`, `start`, `state`, …) is not here yet.

mod convert;
mod error;
mod mounts;
mod seccomp;

pub use convert::{convert, Conversion, Warning};
pub use error::OciError;
pub use oci_spec::runtime::Spec;

use std::path::{Path, PathBuf};

/// The most bytes of a `config.json` read (a hostile bundle cannot make the reader take
/// more memory than this).
pub const MAX_CONFIG: u64 = 4 << 20;

/// An OCI bundle: a directory holding `config.json` (and, usually, the root filesystem).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle's directory.
    pub dir: PathBuf,
    /// Its parsed `config.json`.
    pub spec: Spec,
}

impl Bundle {
    /// Reads `dir/config.json`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Bundle, OciError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join("config.json");
        let config = |reason: String| OciError::Config {
            path: path.clone(),
            reason,
        };
        let file = std::fs::File::open(&path).map_err(|e| config(e.to_string()))?;
        let size = file.metadata().map_err(|e| config(e.to_string()))?.len();
        if size > MAX_CONFIG {
            return Err(config(format!("{size} bytes (at most {MAX_CONFIG})")));
        }
        let reader = std::io::Read::take(std::io::BufReader::new(file), MAX_CONFIG);
        let spec: Spec = serde_json::from_reader(reader).map_err(|e| config(e.to_string()))?;
        Ok(Bundle { dir, spec })
    }

    /// The sandbox and command the bundle describes.
    pub fn convert(&self) -> Result<Conversion, OciError> {
        convert(&self.spec, &self.dir)
    }
}
