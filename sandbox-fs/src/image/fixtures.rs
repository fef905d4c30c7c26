//! Images built for the tests: tar archives written byte for byte, OCI layouts, `docker save`
//! archives, and checks of what a cache holds.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::EntryType;

use super::digest::to_hex;
use super::oci::host_arch;
use super::{ImageCache, ImageError, ImageFormat};

pub(super) const MTIME: u64 = 1_600_000_000;

/// A tar entry to build.
pub(super) enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Fifo(&'a str, u32),
    Chr(&'a str),
}

/// A header whose names are written as is (the builder would refuse `..`).
pub(super) fn header(kind: EntryType, name: &str, link: &str, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(MTIME);
    h.set_uid(1234);
    h.set_gid(5678);
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    h
}

pub(super) fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match *e {
            E::Dir(n, m) => (header(EntryType::Directory, n, "", m, 0), b""),
            E::File(n, m, d) => (header(EntryType::Regular, n, "", m, d.len() as u64), d),
            E::Sym(n, t) => (header(EntryType::Symlink, n, t, 0o777, 0), b""),
            E::Hard(n, t) => (header(EntryType::Link, n, t, 0o644, 0), b""),
            E::Fifo(n, m) => (header(EntryType::Fifo, n, "", m, 0), b""),
            E::Chr(n) => (header(EntryType::Char, n, "", 0o666, 0), b""),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub(super) fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub(super) fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", to_hex(&Sha256::digest(bytes)))
}

pub(super) fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha(bytes);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(&digest[7..]), bytes).unwrap();
    digest
}

pub(super) fn blob_of(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(&digest[7..])
}

pub(super) const GZ_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Writes a manifest for `layers` (media type, bytes); returns its digest.
pub(super) fn put_manifest(layout: &Path, layers: &[(&str, Vec<u8>)]) -> (String, Vec<String>) {
    let config = put_blob(layout, br#"{"architecture":"amd64","os":"linux"}"#);
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    for (media_type, bytes) in layers {
        let digest = put_blob(layout, bytes);
        descs.push(serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": bytes.len()
        }));
        digests.push(digest);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": descs,
    });
    (put_blob(layout, manifest.to_string().as_bytes()), digests)
}

pub(super) fn write_index(layout: &Path, manifests: serde_json::Value) {
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    fs::write(layout.join("index.json"), index.to_string()).unwrap();
}

/// An OCI layout with one manifest; returns its digest and the layers' digests.
pub(super) fn oci(layout: &Path, layers: &[(&str, Vec<u8>)]) -> (String, Vec<String>) {
    fs::create_dir_all(layout).unwrap();
    let (manifest, digests) = put_manifest(layout, layers);
    write_index(
        layout,
        serde_json::json!([{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest, "size": 1,
            "platform": {"architecture": host_arch(), "os": "linux"},
        }]),
    );
    (manifest, digests)
}

/// Nothing half-extracted anywhere in the cache.
pub(super) fn assert_clean(cache: &Path) {
    for sub in [
        "tmp",
        "oci/sha256",
        "docker-config/sha256",
        "tarball/sha256",
    ] {
        let dir = cache.join(sub);
        if dir.exists() {
            let left: Vec<_> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(left.is_empty(), "leftovers in {}: {left:?}", dir.display());
        }
    }
}

pub(super) fn assert_clean_tmp(cache: &Path) {
    assert_eq!(fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
}

/// The trees in a cache, as `<format>/<hex>`.
pub(super) fn trees(cache: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for format in ImageFormat::ALL {
        let dir = cache.join(format.dir_name()).join("sha256");
        if dir.exists() {
            all.extend(
                names(&dir)
                    .into_iter()
                    .map(|hex| format!("{}/{hex}", format.dir_name())),
            );
        }
    }
    all
}

pub(super) fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub(super) fn all_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            all_paths(&e.path(), out);
        }
    }
}

/// Fails a test that needs root when the suite does not run as root (CI runs it as root):
/// such a test is never skipped.
pub(super) fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: run the test suite as root (see README.md)"
    );
}

pub(super) fn rootfs_tar(tool: &[u8]) -> Vec<u8> {
    tar_of(&[
        E::Dir("./", 0o755),
        E::Dir("./bin/", 0o755),
        E::File("./bin/tool", 0o4755, tool),
        E::Dir("etc/", 0o750),
        E::File("/etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n"),
        E::File("etc/motd", 0o644, b"old"),
        E::File("etc/motd", 0o600, b"new"),
        E::Sym("bin/sh", "/bin/tool"),
        E::Sym("etc/rel", "../bin/tool"),
        E::Hard("bin/tool2", "./bin/tool"),
        E::Fifo("etc/fifo", 0o620),
        E::Dir("dev/", 0o755),
        E::Chr("dev/null"),
        E::Dir("x/", 0o755),
        E::File("x/y", 0o644, b"y"),
        E::File("x", 0o644, b"now a file"),
        E::File("deep/implicit/file", 0o644, b"parents not in the archive"),
        E::Dir("ro/", 0o555),
        E::File("ro/f", 0o444, b"read-only"),
        E::Dir("ro/sub/", 0o500),
        E::File("ro/sub/g", 0o400, b"g"),
        E::Dir("etc/", 0o711),
    ])
}

/// Imports `bytes` as a tarball into a fresh cache, expecting an error; checks that the
/// cache holds nothing half-extracted and that nothing appeared in `canary`.
pub(super) fn import_fails(bytes: &[u8]) -> ImageError {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("image.tar");
    fs::write(&tarball, bytes).unwrap();
    let cache = ImageCache::new(tmp.path().join("cache"));
    let err = cache.import(&tarball).unwrap_err();
    assert_clean(cache.dir());
    let mut left = names(tmp.path());
    left.retain(|n| n != "image.tar" && n != "cache");
    assert!(left.is_empty(), "created next to the cache: {left:?}");
    err
}

pub(super) fn unsafe_path(err: &ImageError) -> (&str, &Path, &str) {
    match err {
        ImageError::UnsafePath {
            layer,
            path,
            reason,
            ..
        } => (layer, path, reason),
        other => panic!("expected UnsafePath, got {other}"),
    }
}

/// A tar archive of directory `dir`'s tree (sorted, so `blobs/` comes first, as skopeo
/// writes it), entry names prefixed with `prefix`; symbolic links are archived as such.
pub(super) fn tar_dir(dir: &Path, prefix: &str) -> Vec<u8> {
    fn walk(b: &mut tar::Builder<Vec<u8>>, root: &Path, dir: &Path, prefix: &str) {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap();
            b.append_path_with_name(&path, format!("{prefix}{rel}"))
                .unwrap();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                walk(b, root, &path, prefix);
            }
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    walk(&mut b, dir, dir, prefix);
    b.into_inner().unwrap()
}

/// Two layers: files, then whiteouts of some of them and an opaque directory.
pub(super) fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
    let layer1 = tar_of(&[
        E::Dir("bin/", 0o755),
        E::File("bin/sh", 0o755, b"#!sh"),
        E::Dir("etc/", 0o755),
        E::File("etc/gone", 0o644, b"gone"),
        E::File("etc/keep", 0o644, b"keep"),
        E::Dir("opq/", 0o755),
        E::File("opq/old", 0o644, b"old"),
    ]);
    let layer2 = tar_of(&[
        E::File("etc/.wh.gone", 0o644, b""),
        E::File("opq/.wh..wh..opq", 0o644, b""),
        E::File("opq/new", 0o644, b"new"),
    ]);
    (layer1, layer2)
}

/// What [`whiteout_layers`] make.
pub(super) fn assert_whiteout_tree(root: &Path) {
    assert_eq!(names(root), ["bin", "etc", "opq"]);
    assert_eq!(names(&root.join("etc")), ["keep"]);
    assert_eq!(names(&root.join("opq")), ["new"]);
    assert_eq!(fs::read(root.join("bin/sh")).unwrap(), b"#!sh");
}

/// Writes a `docker save` archive's files (the format before Docker 25) for `layers` into
/// `dir`: `<id>/layer.tar` each (one more, empty, linked to an identical one as Docker
/// does), `<config-hex>.json`, `manifest.json`, `repositories`. Returns the config's
/// digest (the image ID) and the layers' paths.
pub(super) fn docker_save_dir(dir: &Path, layers: &[Vec<u8>]) -> (String, Vec<String>) {
    let empty = tar_of(&[]);
    let mut all: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    all.extend([empty.as_slice(), empty.as_slice()]);
    let mut names: Vec<String> = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, layer) in all.iter().enumerate() {
        let id = to_hex(&Sha256::digest(format!("layer {i}")));
        fs::create_dir_all(dir.join(&id)).unwrap();
        fs::write(dir.join(&id).join("VERSION"), "1.0").unwrap();
        fs::write(dir.join(&id).join("json"), format!(r#"{{"id":"{id}"}}"#)).unwrap();
        let path = format!("{id}/layer.tar");
        match names.last() {
            Some(prev) if i == all.len() - 1 => {
                // Identical to the one before: a link to it.
                let target = format!("../{}", prev.split('/').next().unwrap());
                std::os::unix::fs::symlink(format!("{target}/layer.tar"), dir.join(&path)).unwrap();
            }
            _ => fs::write(dir.join(&path), layer).unwrap(),
        }
        diff_ids.push(sha(layer));
        names.push(path);
    }
    let config = serde_json::json!({
        "architecture": host_arch(), "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_hex = to_hex(&Sha256::digest(&config));
    fs::write(dir.join(format!("{config_hex}.json")), &config).unwrap();
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": ["test:latest"],
        "Layers": names,
    }]);
    fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    fs::write(
        dir.join("repositories"),
        format!(r#"{{"test":{{"latest":"{}"}}}}"#, &config_hex[..12]),
    )
    .unwrap();
    (format!("sha256:{config_hex}"), names)
}
