//! Where an image's files (`index.json`, manifests, configs, layers) are read from: an OCI
//! layout directory, or regions of an indexed archive read in place.

use std::fs::File;
use std::io::{self, Read};

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::archive::{ArchiveIndex, Region};
use super::ImageError;

/// The largest index or manifest blob read into memory.
const MAX_JSON: u64 = 16 << 20;

/// Where an image's files (`index.json`, blobs…) are read from; they are named by their path
/// relative to the layout (`blobs/sha256/<hex>`), which has been checked.
pub(super) enum Source<'a> {
    /// An OCI image layout directory.
    Dir(&'a Path),
    /// An image archive.
    Archive(&'a ArchiveIndex),
}

impl Source<'_> {
    /// How errors name file `rel`: its path in a directory, or inside the archive.
    pub(super) fn display(&self, rel: &str) -> PathBuf {
        match self {
            Source::Dir(dir) => dir.join(rel),
            Source::Archive(_) => PathBuf::from(rel),
        }
    }

    pub(super) fn exists(&self, rel: &str) -> bool {
        match self {
            Source::Dir(dir) => dir.join(rel).is_file(),
            Source::Archive(archive) => archive.find(rel.as_bytes()).is_some(),
        }
    }

    pub(super) fn open(&self, image: &Path, rel: &str) -> Result<Blob<'_>, ImageError> {
        match self {
            Source::Dir(dir) => open_blob(image, &dir.join(rel)).map(Blob::File),
            Source::Archive(archive) => match archive.find(rel.as_bytes()) {
                Some((offset, size)) => Ok(Blob::Region(Region::new(&archive.file, offset, size))),
                None => Err(ImageError::MissingBlob {
                    image: image.to_path_buf(),
                    blob: self.display(rel),
                }),
            },
        }
    }

    /// Reads `index.json`, a manifest or a config, refusing absurd sizes.
    pub(super) fn read_small(&self, image: &Path, rel: &str) -> Result<Vec<u8>, ImageError> {
        let file = self.display(rel);
        let mut bytes = Vec::new();
        self.open(image, rel)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ImageError::Read {
                image: image.to_path_buf(),
                file: file.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(ImageError::InvalidOci {
                image: image.to_path_buf(),
                file,
                reason: format!("larger than {MAX_JSON} bytes"),
            });
        }
        Ok(bytes)
    }
}

/// A blob being read: a file of a layout directory, or a part of an archive.
pub(super) enum Blob<'a> {
    File(File),
    Region(Region<'a>),
}

impl Read for Blob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Blob::File(file) => file.read(buf),
            Blob::Region(region) => region.read(buf),
        }
    }
}

fn open_blob(image: &Path, blob: &Path) -> Result<File, ImageError> {
    File::open(blob).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ImageError::MissingBlob {
                image: image.to_path_buf(),
                blob: blob.to_path_buf(),
            }
        } else {
            ImageError::Read {
                image: image.to_path_buf(),
                file: blob.to_path_buf(),
                source,
            }
        }
    })
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(
    image: &Path,
    file: &Path,
    bytes: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::InvalidOci {
        image: image.to_path_buf(),
        file: file.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}
