//! Why an image could not be imported: [`ImageError`], whose variants name the image and,
//! where relevant, the entry or blob at fault.

use std::io;
use std::path::{Path, PathBuf};

/// Why an image could not be imported. Each variant names the image, and where relevant the
/// entry or blob it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The image path does not exist or cannot be opened.
    #[error("image {}: {source}", path.display())]
    Missing {
        /// The image path.
        path: PathBuf,
        /// Why it could not be used.
        #[source]
        source: io::Error,
    },
    /// The path is neither a tar archive nor an OCI image layout, or is a tar archive of image
    /// files (`manifest.json`, `blobs/`…) that is neither an OCI layout nor a `docker save`
    /// archive.
    #[error("image {}: not an image: {reason}", path.display())]
    NotAnImage {
        /// The image path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The image's index, a manifest or a config is malformed or names no usable manifest: an
    /// OCI layout's `index.json` or blobs, a `docker save` archive's `manifest.json` or config.
    #[error("image {}: {}: {reason}", image.display(), file.display())]
    InvalidOci {
        /// The image (layout directory or archive).
        image: PathBuf,
        /// The file at fault (`index.json`, `manifest.json` or a blob; inside an archive, its
        /// path there).
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob named by the image (a `docker save` archive's layer or config) is not in it.
    #[error("image {}: blob {} is missing", image.display(), blob.display())]
    MissingBlob {
        /// The image (layout directory or archive).
        image: PathBuf,
        /// Where the blob should be (inside an archive: its path there).
        blob: PathBuf,
    },
    /// A blob's (or the tarball's) sha256 is not the expected one.
    #[error("image {}: {} has digest {actual}, expected {expected}", image.display(), blob.display())]
    DigestMismatch {
        /// The image.
        image: PathBuf,
        /// The blob (inside an archive: its path there), or the tarball itself.
        blob: PathBuf,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
    /// A layer's media type is not a plain or gzip-compressed tar (zstd, for instance).
    #[error("image {}: layer {layer} has unsupported media type {media_type:?}", image.display())]
    UnsupportedLayer {
        /// The image (layout directory or archive).
        image: PathBuf,
        /// The layer's digest.
        layer: String,
        /// Its media type.
        media_type: String,
    },
    /// An entry would be written, or would point, outside the image's tree.
    #[error("image {}: layer {layer}: entry {}: {reason}", image.display(), path.display())]
    UnsafePath {
        /// The image.
        image: PathBuf,
        /// The layer's digest (a `docker save` layer's diff ID), or `tarball`.
        layer: String,
        /// The entry's path as written in the archive.
        path: PathBuf,
        /// What is unsafe about it.
        reason: String,
    },
    /// An entry cannot be extracted: unsupported type, malformed header, missing hard link
    /// target…
    #[error("image {}: layer {layer}: entry {}: {reason}", image.display(), path.display())]
    BadEntry {
        /// The image.
        image: PathBuf,
        /// The layer's digest (a `docker save` layer's diff ID), or `tarball`.
        layer: String,
        /// The entry's path as written in the archive.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating an entry in the tree failed.
    #[error("image {}: layer {layer}: entry {}: {source}", image.display(), path.display())]
    Extract {
        /// The image.
        image: PathBuf,
        /// The layer's digest (a `docker save` layer's diff ID), or `tarball`.
        layer: String,
        /// The entry's path as written in the archive.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Reading the image failed (I/O error, corrupt gzip or tar stream).
    #[error("image {}: reading {}: {source}", image.display(), file.display())]
    Read {
        /// The image.
        image: PathBuf,
        /// The file being read (the tarball, `index.json` or a blob).
        file: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A gzip-compressed image archive decompresses to more than the cache can take: its
    /// decompressed copy would leave less free space on the cache's filesystem than a margin
    /// (see [`ImageCache::import`](super::ImageCache::import)).
    #[error(
        "image {}: decompressed, it is larger than the {limit} bytes image cache {} can take",
        path.display(),
        cache.display()
    )]
    TooLarge {
        /// The image.
        path: PathBuf,
        /// The cache directory.
        cache: PathBuf,
        /// How many bytes the decompressed copy could take.
        limit: u64,
    },
    /// The cache directory cannot be used.
    #[error("image cache {}: {source}", path.display())]
    Cache {
        /// The path in the cache.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// The error of a failed read of the image file itself.
pub(super) fn read_error(image: &Path) -> impl Fn(io::Error) -> ImageError + Copy + '_ {
    move |source| ImageError::Read {
        image: image.to_path_buf(),
        file: image.to_path_buf(),
        source,
    }
}
