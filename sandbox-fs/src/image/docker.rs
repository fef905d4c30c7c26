//! `docker save` archives of the format before OCI layouts: `manifest.json`, the image config
//! and its `diff_ids`, the layers in order. Keyed by the config's digest (Docker's image ID).

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::digest::{check_digest, is_hex64, to_hex};
use super::names::normalise;
use super::source::{parse_json, Source};
use super::{ImageCache, ImageError, ImageFormat, Imported};

impl ImageCache {
    /// Imports a `docker save` archive of the format before OCI layouts: `manifest.json` names
    /// the image's config and its layers in order. Keyed by the config's digest (Docker's image
    /// ID), which pins every layer through the config's `diff_ids`.
    pub(super) fn import_docker_save(
        &self,
        image: &Path,
        src: &Source<'_>,
    ) -> Result<Imported, ImageError> {
        let manifest_path = src.display("manifest.json");
        let invalid = |file: &Path, reason: String| ImageError::InvalidOci {
            image: image.to_path_buf(),
            file: file.to_path_buf(),
            reason,
        };
        let bytes = src.read_small(image, "manifest.json")?;
        let images: Vec<SaveManifest> = parse_json(image, &manifest_path, &bytes)?;
        let entry = match images.as_slice() {
            [one] => one,
            [] => return Err(invalid(&manifest_path, "lists no image".into())),
            several => {
                let tags: Vec<&str> = several
                    .iter()
                    .flat_map(|i| i.repo_tags.iter().flatten())
                    .map(String::as_str)
                    .collect();
                return Err(invalid(
                    &manifest_path,
                    format!(
                        "lists {} images ({}); save one image per archive",
                        several.len(),
                        tags.join(", ")
                    ),
                ));
            }
        };
        let member = |name: &str| {
            normalise(name.as_bytes())
                .ok()
                .filter(|rel| !rel.is_empty())
                .and_then(|rel| String::from_utf8(rel).ok())
                .ok_or_else(|| {
                    invalid(
                        &manifest_path,
                        format!("names {name:?}, which is not a path inside the archive"),
                    )
                })
        };
        let config_rel = member(&entry.config)?;
        let config_path = src.display(&config_rel);
        let config_bytes = src.read_small(image, &config_rel)?;
        let hex = to_hex(&Sha256::digest(&config_bytes));
        let digest = format!("sha256:{hex}");
        // Docker names the config after its digest.
        let named = config_rel
            .strip_suffix(".json")
            .or_else(|| config_rel.strip_prefix("blobs/sha256/"))
            .filter(|h| is_hex64(h));
        if let Some(named) = named.filter(|named| *named != hex) {
            return Err(ImageError::DigestMismatch {
                image: image.to_path_buf(),
                blob: config_path,
                expected: format!("sha256:{named}"),
                actual: digest,
            });
        }
        let config: ImageConfig = parse_json(image, &config_path, &config_bytes)?;
        if let Some(root) = self.cached(ImageFormat::DockerSave, &hex) {
            return Ok(Imported {
                format: ImageFormat::DockerSave,
                digest,
                root,
                extracted: false,
            });
        }

        // Check every layer before extracting any.
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(invalid(
                &config_path,
                format!(
                    "lists {} layers (`rootfs.diff_ids`), manifest.json {}",
                    diff_ids.len(),
                    entry.layers.len()
                ),
            ));
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let diff_hex = check_digest(image, &config_path, diff_id)?;
            let rel = member(name)?;
            if !src.exists(&rel) {
                return Err(ImageError::MissingBlob {
                    image: image.to_path_buf(),
                    blob: src.display(&rel),
                });
            }
            layers.push((diff_id.as_str(), diff_hex, rel));
        }

        self.extract(
            image,
            src,
            ImageFormat::DockerSave,
            digest,
            &layers,
            &config_path,
        )
    }
}

/// An image of a `docker save` archive's `manifest.json` (the fields used here).
#[derive(Deserialize)]
struct SaveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// An image config (the fields used here).
#[derive(Deserialize)]
struct ImageConfig {
    rootfs: ConfigRootfs,
}

#[derive(Deserialize)]
struct ConfigRootfs {
    diff_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    //! A `docker save` archive yields its layers in the order `manifest.json` gives, each checked
    //! against the config's `diff_ids`; whatever is broken is named and leaves nothing behind.

    use crate::image::cache::memo;
    use crate::image::fixtures::*;
    use crate::image::{ImageCache, ImageError};
    use std::fs;
    use std::path::Path;

    #[test]
    fn docker_save_archive_imports_its_layers_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("save");
        let (layer1, layer2) = whiteout_layers();
        let (image_id, layers) = docker_save_dir(&dir, &[layer1, layer2]);
        let archive = tmp.path().join("save.tar");
        fs::write(&archive, tar_dir(&dir, "")).unwrap();
        let compressed = tmp.path().join("save.tar.gz");
        fs::write(&compressed, gz(&fs::read(&archive).unwrap())).unwrap();

        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&archive).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, image_id, "keyed by the image ID");
        assert_whiteout_tree(&img.root);
        assert_clean_tmp(cache.dir());
        for image in [&archive, &compressed] {
            memo().lock().unwrap().clear();
            let again = cache.import(image).unwrap();
            assert!(!again.extracted, "{}", image.display());
            assert_eq!(again.root, img.root);
        }
        assert_clean_tmp(cache.dir());
        // Found by its image ID before any layer is read: an archive of the same image whose
        // layers are gone still finds it.
        for layer in &layers {
            let _ = fs::remove_file(dir.join(layer));
        }
        let thin = tmp.path().join("thin.tar");
        fs::write(&thin, tar_dir(&dir, "")).unwrap();
        assert_eq!(cache.import(&thin).unwrap().root, img.root);
    }

    #[test]
    fn broken_docker_save_archives_name_what_is_wrong() {
        let (layer1, layer2) = whiteout_layers();
        type Mutate<'a> = &'a dyn Fn(&Path, &[String]);
        type Expect<'a> = &'a dyn Fn(&ImageError, &[String]);
        let check = |mutate: Mutate<'_>, expect: Expect<'_>| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("save");
            let (_, layers) = docker_save_dir(&dir, &[layer1.clone(), layer2.clone()]);
            mutate(&dir, &layers);
            let archive = tmp.path().join("save.tar");
            fs::write(&archive, tar_dir(&dir, "")).unwrap();
            let cache = ImageCache::new(tmp.path().join("cache"));
            let err = cache.import(&archive).unwrap_err();
            expect(&err, &layers);
            assert!(err.to_string().contains("save.tar"), "{err}");
            assert_clean(cache.dir());
        };
        // A missing layer.
        check(
            &|dir, l| fs::remove_file(dir.join(&l[1])).unwrap(),
            &|err, l| {
                assert!(
                    matches!(err, ImageError::MissingBlob { blob, .. } if *blob == Path::new(&l[1])),
                    "{err}"
                )
            },
        );
        // A layer that is not the one the config names (still a valid layer).
        check(
            &|dir, l| fs::write(dir.join(&l[1]), tar_of(&[E::File("evil", 0o644, b"!")])).unwrap(),
            &|err, l| {
                assert!(
                    matches!(err, ImageError::DigestMismatch { blob, .. } if *blob == Path::new(&l[1])),
                    "{err}"
                )
            },
        );
        // A config that is not the one its name says.
        check(
            &|dir, _| {
                let config = fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.extension().is_some_and(|e| e == "json"))
                    .unwrap();
                let text = fs::read_to_string(&config)
                    .unwrap()
                    .replace("linux", "Linux");
                fs::write(config, text).unwrap()
            },
            &|err, _| assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}"),
        );
        // Two images in one archive.
        check(
            &|dir, _| {
                let text = fs::read_to_string(dir.join("manifest.json")).unwrap();
                let one: serde_json::Value = serde_json::from_str(&text).unwrap();
                let two = serde_json::json!([one[0], one[0]]);
                fs::write(dir.join("manifest.json"), two.to_string()).unwrap()
            },
            &|err, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { file, reason, .. }
                        if *file == Path::new("manifest.json") && reason.contains("2 images")),
                    "{err}"
                )
            },
        );
        // A layer path that leaves the archive.
        check(
            &|dir, _| {
                let text = fs::read_to_string(dir.join("manifest.json"))
                    .unwrap()
                    .replace("\"Layers\":[\"", "\"Layers\":[\"../");
                fs::write(dir.join("manifest.json"), text).unwrap()
            },
            &|err, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { reason, .. } if reason.contains("../")),
                    "{err}"
                )
            },
        );
        // Not JSON.
        check(
            &|dir, _| fs::write(dir.join("manifest.json"), "[{").unwrap(),
            &|err, _| {
                assert!(
                    matches!(err, ImageError::InvalidOci { file, .. } if *file == Path::new("manifest.json")),
                    "{err}"
                )
            },
        );
    }
}
