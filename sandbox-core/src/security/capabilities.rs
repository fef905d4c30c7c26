//! The capabilities a sandbox keeps: their names, and the masks the child applies.

use crate::{Error, Result};
use std::sync::OnceLock;

pub use caps::Capability;

/// Parses a capability name: `CAP_NET_ADMIN`, `cap_net_admin` or `net_admin`.
pub fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse().map_err(|_| Error::Invalid {
        what: "capability",
        reason: format!("{name:?} is not a capability (see capabilities(7))"),
    })
}

/// The bitmask of a set of capabilities.
pub(crate) fn capability_mask(set: &[Capability]) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub(crate) fn last_capability() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_parse_in_every_spelling() {
        for n in ["CAP_NET_ADMIN", "cap_net_admin", "net_admin", " Net_Admin "] {
            assert_eq!(parse_capability(n).unwrap(), Capability::CAP_NET_ADMIN);
        }
        assert!(matches!(
            parse_capability("net_adnim"),
            Err(Error::Invalid {
                what: "capability",
                ..
            })
        ));
    }
}
