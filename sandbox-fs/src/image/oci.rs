//! OCI image layouts (a directory, or an archive of one): the index, nested indexes and the
//! choice of platform, the manifest and its layers. Keyed by the manifest's digest.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::digest::{check_digest, to_hex};
use super::source::{parse_json, Source};
use super::{ImageCache, ImageError, ImageFormat, Imported};

/// Layer media types that can be extracted (compression is detected from the bytes).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Media types of image indexes (manifest lists).
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How many indexes deep a manifest may be nested.
const MAX_INDEX_DEPTH: usize = 4;

impl ImageCache {
    pub(super) fn import_oci(&self, image: &Path) -> Result<Imported, ImageError> {
        if !image.join("oci-layout").is_file() || !image.join("index.json").is_file() {
            return Err(ImageError::NotAnImage {
                path: image.to_path_buf(),
                reason: "a directory without `oci-layout` and `index.json`".into(),
            });
        }
        self.import_layout(image, &Source::Dir(image))
    }

    /// Imports an OCI image layout (a directory or an archive), keyed by its manifest's digest.
    pub(super) fn import_layout(
        &self,
        image: &Path,
        src: &Source<'_>,
    ) -> Result<Imported, ImageError> {
        let index_path = src.display("index.json");
        let bytes = src.read_small(image, "index.json")?;
        let index: Index = parse_json(image, &index_path, &bytes)?;
        let (digest, manifest_path, bytes) = resolve(image, src, &index_path, &index.manifests, 0)?;
        let hex = digest["sha256:".len()..].to_string();
        if let Some(root) = self.cached(ImageFormat::Oci, &hex) {
            return Ok(Imported {
                format: ImageFormat::Oci,
                digest,
                root,
                extracted: false,
            });
        }

        // Check every layer before extracting any.
        let manifest: Manifest = parse_json(image, &manifest_path, &bytes)?;
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let layer_hex = check_digest(image, &manifest_path, &layer.digest)?;
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(ImageError::UnsupportedLayer {
                    image: image.to_path_buf(),
                    layer: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
            let rel = blob_rel(layer_hex);
            if !src.exists(&rel) {
                return Err(ImageError::MissingBlob {
                    image: image.to_path_buf(),
                    blob: src.display(&rel),
                });
            }
            layers.push((layer.digest.as_str(), layer_hex, rel));
        }

        self.extract(
            image,
            src,
            ImageFormat::Oci,
            digest,
            &layers,
            &manifest_path,
        )
    }
}

/// An OCI content descriptor (the fields used here).
#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    layers: Vec<Descriptor>,
}

/// The host's architecture as OCI platforms spell it.
pub(super) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Follows the descriptors of an index down to one image manifest: the only one, or the one
/// for linux on this architecture. Returns its digest, blob path (as errors name it) and
/// (verified) bytes.
fn resolve(
    image: &Path,
    src: &Source<'_>,
    referrer: &Path,
    descriptors: &[Descriptor],
    depth: usize,
) -> Result<(String, PathBuf, Vec<u8>), ImageError> {
    let invalid = |reason: String| ImageError::InvalidOci {
        image: image.to_path_buf(),
        file: referrer.to_path_buf(),
        reason,
    };
    let chosen = match descriptors {
        [] => return Err(invalid("lists no manifests".into())),
        [only] => only,
        several => several
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
            })
            .or_else(|| {
                // Several names for one manifest (tags) are fine.
                let first = &several[0];
                several
                    .iter()
                    .all(|d| d.digest == first.digest)
                    .then_some(first)
            })
            .ok_or_else(|| invalid(format!("lists no manifest for linux/{}", host_arch())))?,
    };
    let hex = check_digest(image, referrer, &chosen.digest)?;
    let rel = blob_rel(hex);
    let path = src.display(&rel);
    let bytes = src.read_small(image, &rel)?;
    let actual = to_hex(&Sha256::digest(&bytes));
    if actual != hex {
        return Err(ImageError::DigestMismatch {
            image: image.to_path_buf(),
            blob: path,
            expected: chosen.digest.clone(),
            actual: format!("sha256:{actual}"),
        });
    }
    let value: serde_json::Value = parse_json(image, &path, &bytes)?;
    let nested = INDEX_TYPES.contains(&chosen.media_type.as_str())
        || (value.get("manifests").is_some() && value.get("layers").is_none());
    if !nested {
        return Ok((chosen.digest.clone(), path, bytes));
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(ImageError::InvalidOci {
            image: image.to_path_buf(),
            file: path,
            reason: "indexes nested too deeply".into(),
        });
    }
    let index: Index = parse_json(image, &path, &bytes)?;
    resolve(image, src, &path, &index.manifests, depth + 1)
}

/// Where blob `sha256:<hex>` is, relative to the layout.
fn blob_rel(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

#[cfg(test)]
mod tests {
    //! An OCI layout yields the manifest for this platform with its layers applied in order;
    //! whatever is broken is named (the blob, the layer, `index.json`) and leaves nothing behind.

    use super::*;
    use crate::image::fixtures::*;
    use std::fs;

    #[test]
    fn oci_nested_index_picks_the_host_platform() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        fs::create_dir_all(&layout).unwrap();
        let plain = "application/vnd.oci.image.layer.v1.tar";
        let (manifest, _) = put_manifest(
            &layout,
            &[(plain, tar_of(&[E::File("hello", 0o644, b"hi")]))],
        );
        let foreign = if host_arch() == "riscv64" {
            "amd64"
        } else {
            "riscv64"
        };
        let absent = sha(b"a manifest that is not in the layout");
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": absent, "size": 1,
                 "platform": {"architecture": foreign, "os": "linux"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": 1,
                 "platform": {"architecture": host_arch(), "os": "linux"}},
            ],
        });
        let list = put_blob(&layout, list.to_string().as_bytes());
        write_index(
            &layout,
            serde_json::json!([{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": list, "size": 1}]),
        );
        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&layout).unwrap();
        assert_eq!(img.digest, manifest);
        assert_eq!(fs::read(img.root.join("hello")).unwrap(), b"hi");
    }

    #[test]
    fn oci_errors_name_the_blob_and_leave_nothing() {
        let layer1 = gz(&tar_of(&[E::File("one", 0o644, b"1")]));
        let layer2 = gz(&tar_of(&[E::File("two", 0o644, b"2")]));
        let layers = [(GZ_LAYER, layer1), (GZ_LAYER, layer2)];

        // What to break in a fresh layout (given its path, manifest and layer digests), and
        // what to expect of the error.
        type Mutate<'a> = &'a dyn Fn(&Path, &str, &[String]);
        type Expect<'a> = &'a dyn Fn(&ImageError, &Path, &str, &[String]);
        let check = |mutate: Mutate<'_>, expect: Expect<'_>| {
            let tmp = tempfile::tempdir().unwrap();
            let layout = tmp.path().join("layout");
            let (manifest, digests) = oci(&layout, &layers);
            mutate(&layout, &manifest, &digests);
            let cache = ImageCache::new(tmp.path().join("cache"));
            let err = cache.import(&layout).unwrap_err();
            expect(&err, &layout, &manifest, &digests);
            assert_clean(cache.dir());
        };

        // A missing layer blob.
        check(
            &|layout, _, d| fs::remove_file(blob_of(layout, &d[1])).unwrap(),
            &|err, layout, _, d| {
                assert!(
                    matches!(err, ImageError::MissingBlob { blob, .. } if *blob == blob_of(layout, &d[1])),
                    "{err}"
                )
            },
        );
        // A missing manifest blob.
        check(
            &|layout, m, _| fs::remove_file(blob_of(layout, m)).unwrap(),
            &|err, layout, m, _| {
                assert!(
                    matches!(err, ImageError::MissingBlob { blob, .. } if *blob == blob_of(layout, m)),
                    "{err}"
                )
            },
        );
        // A layer whose bytes are not those of its digest (still a valid layer).
        check(
            &|layout, _, d| {
                fs::write(
                    blob_of(layout, &d[1]),
                    gz(&tar_of(&[E::File("evil", 0o644, b"!")])),
                )
                .unwrap()
            },
            &|err, layout, _, d| match err {
                ImageError::DigestMismatch {
                    blob,
                    expected,
                    actual,
                    ..
                } => {
                    assert_eq!(*blob, blob_of(layout, &d[1]));
                    assert_eq!(*expected, d[1]);
                    assert_ne!(actual, expected);
                }
                other => panic!("{other}"),
            },
        );
        // A corrupt gzip layer.
        check(
            &|layout, _, d| {
                let mut bytes = fs::read(blob_of(layout, &d[0])).unwrap();
                let n = bytes.len();
                bytes[n / 2..].fill(0xff);
                fs::write(blob_of(layout, &d[0]), bytes).unwrap()
            },
            &|err, layout, _, d| {
                assert!(
                    matches!(err, ImageError::Read { file, .. } | ImageError::DigestMismatch { blob: file, .. } if *file == blob_of(layout, &d[0])),
                    "{err}"
                )
            },
        );
        // A tampered manifest.
        check(
            &|layout, m, _| {
                let path = blob_of(layout, m);
                let text = fs::read_to_string(&path)
                    .unwrap()
                    .replace("schemaVersion", "schemaversion");
                fs::write(path, text).unwrap()
            },
            &|err, layout, m, _| {
                assert!(
                    matches!(err, ImageError::DigestMismatch { blob, .. } if *blob == blob_of(layout, m)),
                    "{err}"
                )
            },
        );
        // A zstd layer.
        check(
            &|layout, m, _| {
                let text = fs::read_to_string(blob_of(layout, m)).unwrap();
                let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
                manifest["layers"][1]["mediaType"] =
                    "application/vnd.oci.image.layer.v1.tar+zstd".into();
                let digest = put_blob(layout, manifest.to_string().as_bytes());
                write_index(layout, serde_json::json!([{"digest": digest, "size": 1}]));
            },
            &|err, _, _, d| {
                assert!(
                    matches!(err, ImageError::UnsupportedLayer { layer, media_type, .. } if *layer == d[1] && media_type.ends_with("zstd")),
                    "{err}"
                )
            },
        );
        // A malformed digest in the index.
        check(
            &|layout, _, _| {
                write_index(
                    layout,
                    serde_json::json!([{"digest": "sha256:../../etc/passwd", "size": 1}]),
                )
            },
            &|err, layout, _, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { file, .. } if *file == layout.join("index.json")),
                    "{err}"
                )
            },
        );
    }

    #[test]
    fn oci_unsafe_entries_name_the_layer() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let good = gz(&tar_of(&[E::File("one", 0o644, b"1")]));
        let bad = tar_of(&[E::File("ok", 0o644, b""), E::File("../up", 0o644, b"!")]);
        let plain = "application/vnd.oci.image.layer.v1.tar";
        let (_, digests) = oci(&layout, &[(GZ_LAYER, good), (plain, bad)]);
        let cache = ImageCache::new(tmp.path().join("cache"));
        let err = cache.import(&layout).unwrap_err();
        let (layer, path, _) = unsafe_path(&err);
        assert_eq!((layer, path), (digests[1].as_str(), Path::new("../up")));
        assert!(!tmp.path().join("up").exists());
        assert_clean(cache.dir());
    }
}
