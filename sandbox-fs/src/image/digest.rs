//! sha256 digests: their hex form, checking a `sha256:<hex>` found in an image, and hashing
//! bytes as they are read.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ImageError;

pub(super) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

pub(super) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hex part of a `sha256:<hex>` digest found in `file`.
pub(super) fn check_digest<'d>(
    image: &Path,
    file: &Path,
    digest: &'d str,
) -> Result<&'d str, ImageError> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_hex64(hex))
        .ok_or_else(|| ImageError::InvalidOci {
            image: image.to_path_buf(),
            file: file.to_path_buf(),
            reason: format!("unsupported or malformed digest {digest:?}"),
        })
}

/// A reader that hashes what it reads.
pub(super) struct HashingReader<'a, R> {
    pub(super) inner: R,
    /// `None`: pass the bytes through unhashed.
    pub(super) hasher: Option<&'a mut Sha256>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
