//! What can go wrong reading a bundle, each naming the `config.json` field at fault.

use std::path::PathBuf;

/// A bundle that cannot be run as a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// `config.json` could not be read or is not a runtime spec.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// A field holds a value no runtime could use (a relative `cwd`, an `env` entry
    /// without `=`, a root that is not a directory).
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as a JSON path (`process.cwd`, `mounts[2].options`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field this runtime does not implement (rather than silently dropping it).
    #[error("{field}: not supported by this runtime ({reason})")]
    Unsupported {
        /// The field, as a JSON path.
        field: String,
        /// What is missing, or what to use instead.
        reason: String,
    },
}

impl OciError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> OciError {
        OciError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> OciError {
        OciError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field at fault, if the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            OciError::Invalid { field, .. } | OciError::Unsupported { field, .. } => Some(field),
            OciError::Config { .. } => None,
        }
    }
}
