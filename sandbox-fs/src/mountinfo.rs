//! Paths as `/proc/PID/mountinfo` writes them.

use std::ffi::OsString;

/// A mount point or root field of `mountinfo`, its `\\ooo` escapes (space, tab, newline,
/// backslash) decoded.
pub fn mountinfo_path(field: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Three octal digits of one byte (the first 0 to 3).
        let escape = b.get(i + 1..i + 4).filter(|d| {
            (b'0'..=b'3').contains(&d[0]) && d.iter().all(|c| (b'0'..=b'7').contains(c))
        });
        match (b[i], escape) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded_and_nothing_else() {
        assert_eq!(mountinfo_path("/tmp/a\\040b\\134c"), "/tmp/a b\\c");
        assert_eq!(mountinfo_path("/plain\\9"), "/plain\\9");
        assert_eq!(mountinfo_path("/x\\777"), "/x\\777");
        assert_eq!(mountinfo_path("/end\\04"), "/end\\04");
    }
}
