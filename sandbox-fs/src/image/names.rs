//! Entry names as bytes: normalised (refusing `..`), split and joined, and whether a relative
//! link climbs out of the tree.

/// An entry's path relative to the tree's root: `/`-separated, without empty, `.` or `..`
/// components (empty for the root itself).
pub(super) fn normalise(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.contains(&0) {
        return Err("has a NUL byte");
    }
    let mut out = Vec::with_capacity(raw.len());
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("has a `..` component"),
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    Ok(out)
}

/// Splits a normalised path into its parent and last component.
pub(super) fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

pub(super) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = parent.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// Whether a relative symbolic link target, resolved lexically from directory `dir`, climbs
/// above the root.
pub(super) fn climbs_out(dir: &[u8], target: &[u8]) -> bool {
    let mut depth = dir.split(|&b| b == b'/').filter(|c| !c.is_empty()).count();
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if depth == 0 => return true,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// Records that the current layer holds `rel` and, implicitly, its ancestors.
pub(super) fn mark(created: &mut std::collections::HashSet<Vec<u8>>, rel: &[u8]) {
    let mut path = rel;
    while !path.is_empty() && created.insert(path.to_vec()) {
        path = split(path).0;
    }
}

#[cfg(test)]
mod tests {
    //! Names are normalised without `..`, and a link that climbs out is told from its text.

    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(normalise(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalise(b"/").unwrap(), b"");
        assert!(normalise(b"a/../b").is_err());
        assert!(climbs_out(b"", b".."));
        assert!(!climbs_out(b"a/b", b"../../c"));
        assert!(climbs_out(b"a/b", b"../../../c"));
        assert!(!climbs_out(b"a", b"x/../../b"));
    }
}
