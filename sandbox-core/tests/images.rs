//! Images: an OCI image layout (layers with whiteouts and opaque directories), a tar archive
//! of one (`skopeo`/`podman` `oci-archive`, Docker 25's `docker save`), an older `docker save`
//! archive and a `docker export` tarball are imported into the cache once, show the right
//! files, and are not extracted again; a broken image is refused with a typed error naming
//! what is wrong, and leaves nothing in the cache.
mod common;
use common::text;
use sandbox_core::{Error, Output, Rootfs, Sandbox};
use sandbox_fs::image::{ImageCache, ImageError, ImageFormat};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether an import error is the expected one.
type Check<'a> = Box<dyn Fn(&ImageError) -> bool + 'a>;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Builds a layer entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Layer {
        let mut h = Layer::header(tar::EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    fn file(mut self, path: &str, contents: &[u8], mode: u32) -> Layer {
        let mut h = Layer::header(tar::EntryType::Regular, mode, contents.len() as u64);
        self.0.append_data(&mut h, path, contents).unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Layer {
        let mut h = Layer::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A file whose name is written as is, unchecked (`tar` refuses `..` otherwise).
    fn raw_file(mut self, name: &[u8], contents: &[u8]) -> Layer {
        let mut h = Layer::header(tar::EntryType::Regular, 0o644, contents.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        self.0.append(&h, contents).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Layer 1: a busybox tree, with `etc/gone` and `opt/old/file` that layer 2 hides.
fn base_layer() -> Layer {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    Layer::new()
        .dir("bin", 0o755)
        .file("bin/busybox", &busybox, 0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/ls", "busybox")
        .symlink("bin/cat", "busybox")
        .dir("etc", 0o755)
        .file("etc/gone", b"gone\n", 0o644)
        .file("etc/keep", b"keep\n", 0o644)
        .dir("proc", 0o755)
        .dir("dev", 0o755)
        .dir("tmp", 0o1777)
        .dir("opt", 0o755)
        .dir("opt/old", 0o755)
        .file("opt/old/file", b"old\n", 0o644)
}

/// Layer 2: removes `etc/gone`, makes `opt/old` opaque and adds `opt/old/new` to it.
fn whiteout_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc", 0o755)
        .file("etc/.wh.gone", b"", 0o644)
        .dir("opt/old", 0o755)
        .file("opt/old/.wh..wh..opq", b"", 0o644)
        .file("opt/old/new", b"new\n", 0o644)
        .finish()
}

fn write_blob(layout: &Path, bytes: &[u8]) -> serde_json::Value {
    let hex = sha_hex(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    json!({ "digest": format!("sha256:{hex}"), "size": bytes.len() })
}

/// Writes an OCI image layout of `layers` (bytes, media type) at `layout`; returns the hex
/// digest of its manifest (the image's digest) and those of its layers.
fn oci_layout(layout: &Path, layers: &[(Vec<u8>, &str)]) -> (String, Vec<String>) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut descriptors = Vec::new();
    let mut hexes = Vec::new();
    let mut diff_ids = Vec::new();
    for (bytes, media_type) in layers {
        let mut d = write_blob(layout, bytes);
        d["mediaType"] = json!(media_type);
        hexes.push(sha_hex(bytes));
        let plain = if media_type.ends_with("gzip") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .unwrap();
            out
        } else {
            bytes.clone()
        };
        diff_ids.push(format!("sha256:{}", sha_hex(&plain)));
        descriptors.push(d);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    }))
    .unwrap();
    let mut config_desc = write_blob(layout, &config);
    config_desc["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": descriptors,
    }))
    .unwrap();
    let mut manifest_desc = write_blob(layout, &manifest);
    manifest_desc["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": [manifest_desc] })).unwrap(),
    )
    .unwrap();
    (sha_hex(&manifest), hexes)
}

/// Writes the OCI layout of [`base_layer`] and [`whiteout_layer`] (gzipped) at `layout`;
/// returns the image's hex digest.
fn whiteout_image(layout: &Path) -> String {
    let layers = [
        (base_layer().finish(), TAR),
        (gzip(&whiteout_layer()), TAR_GZ),
    ];
    oci_layout(layout, &layers).0
}

/// Writes the files of a `docker save` archive (the format before Docker 25) of `layers` into
/// `dir`: `<id>/layer.tar` (plus `VERSION` and `json`) per layer, the config `<hex>.json`,
/// `manifest.json` and `repositories`. Returns the config's hex digest (the image ID) and the
/// layers' paths in the archive.
fn docker_save(dir: &Path, layers: &[Vec<u8>]) -> (String, Vec<String>) {
    let mut paths = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let id = sha_hex(format!("layer {i}").as_bytes());
        std::fs::create_dir_all(dir.join(&id)).unwrap();
        std::fs::write(dir.join(&id).join("VERSION"), "1.0").unwrap();
        std::fs::write(dir.join(&id).join("json"), format!(r#"{{"id":"{id}"}}"#)).unwrap();
        std::fs::write(dir.join(&id).join("layer.tar"), layer).unwrap();
        diff_ids.push(format!("sha256:{}", sha_hex(layer)));
        paths.push(format!("{id}/layer.tar"));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    }))
    .unwrap();
    let hex = sha_hex(&config);
    std::fs::write(dir.join(format!("{hex}.json")), &config).unwrap();
    let manifest = json!([{
        "Config": format!("{hex}.json"),
        "RepoTags": ["busybox:test"],
        "Layers": paths,
    }]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(
        dir.join("repositories"),
        json!({"busybox": {"test": hex}}).to_string(),
    )
    .unwrap();
    (hex, paths)
}

/// The names in a directory (empty when it does not exist).
fn names(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

/// The trees in an image cache, as `<format>/<hex>` (`oci`, `docker-config`, `tarball`).
fn trees(cache: &Path) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for format in ["oci", "docker-config", "tarball"] {
        let dir = cache.join(format).join("sha256");
        all.extend(names(&dir).into_iter().map(|hex| format!("{format}/{hex}")));
    }
    all
}

async fn run(rootfs: Rootfs, script: &str) -> sandbox_core::Result<Output> {
    Sandbox::new()
        .hostname("img")
        .rootfs(rootfs)
        .command("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .await
}

const LOOK: &str = "ls /etc; echo --; ls -A /opt/old; echo --; cat /etc/keep /opt/old/new; \
                    test -e /etc/gone && echo GONE-IS-THERE; echo --; ls /";
/// What [`LOOK`] shows in the image of [`base_layer`] and [`whiteout_layer`].
const LOOK_WANT: &str = "hostname\nhosts\nkeep\nresolv.conf\n--\nnew\n--\nkeep\nnew\n--\n\
                         bin\ndev\netc\nopt\nproc\nsys\ntmp\n";

/// Runs [`LOOK`] in `rootfs`, checks that it shows [`LOOK_WANT`], and returns its output.
async fn look(rootfs: Rootfs) -> Output {
    let out = run(rootfs, LOOK).await.unwrap();
    assert_eq!(text(&out.stdout), LOOK_WANT, "{out:?}");
    out
}

#[tokio::test]
async fn oci_layout_is_imported_once_with_its_whiteouts() {
    common::require_root();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let hex = whiteout_image(&layout);
    let cache = work.path().join("cache");
    let rootfs = Rootfs::image(&layout).cache_dir(&cache);

    let out = look(rootfs.clone()).await;
    assert!(out.status.success(), "{out:?}");
    // One tree, under the manifest's digest; nothing left being extracted.
    assert_eq!(trees(&cache), BTreeSet::from([format!("oci/{hex}")]));
    assert_eq!(names(&cache.join("tmp")), BTreeSet::new());
    let tree = cache.join("oci/sha256").join(&hex).join("rootfs");
    assert_eq!(
        std::fs::read(tree.join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert!(!tree.join("etc/gone").exists());
    assert!(!tree.join("etc/.wh.gone").exists());
    assert_eq!(names(&tree.join("opt/old")), BTreeSet::from(["new".into()]));

    // The second spawn extracts nothing: every entry of the cache (inodes included) is
    // the same.
    let before = common::snapshot(&cache);
    let out = look(rootfs).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(common::snapshot(&cache), before, "the cache changed");
    let again = ImageCache::new(&cache).import(&layout).unwrap();
    assert_eq!(again.format, ImageFormat::Oci);
    assert_eq!(again.digest, format!("sha256:{hex}"));
    assert_eq!(again.root, tree);
    assert!(!again.extracted);
    assert_eq!(common::snapshot(&cache), before, "the cache changed");
}

#[tokio::test]
async fn oci_archive_is_imported_once_with_its_whiteouts() {
    common::require_root();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let hex = whiteout_image(&layout);
    // What `skopeo copy … oci-archive:` writes (Docker 25's `docker save` adds these two).
    let archive = work.path().join("image.oci.tar");
    std::fs::write(&archive, common::tar_of_tree(&layout)).unwrap();
    std::fs::write(layout.join("manifest.json"), "[]").unwrap();
    std::fs::write(layout.join("repositories"), "{}").unwrap();
    let docker = work.path().join("docker-save.tar.gz");
    std::fs::write(&docker, gzip(&common::tar_of_tree(&layout))).unwrap();
    let cache = work.path().join("cache");
    let rootfs = Rootfs::image(&archive).cache_dir(&cache);

    let out = look(rootfs.clone()).await;
    assert!(out.status.success(), "{out:?}");
    // One tree, under the manifest's digest (as the layout directory would be); nothing
    // left being extracted.
    assert_eq!(trees(&cache), BTreeSet::from([format!("oci/{hex}")]));
    assert_eq!(names(&cache.join("tmp")), BTreeSet::new());
    let tree = cache.join("oci/sha256").join(&hex).join("rootfs");
    assert!(!tree.join("etc/gone").exists());
    assert!(!tree.join("blobs").exists() && !tree.join("index.json").exists());

    // Nothing is extracted again: not for the next spawn, not for the same image compressed,
    // not for its directory.
    let before = common::snapshot(&cache.join("oci"));
    look(rootfs).await;
    look(Rootfs::image(&docker).cache_dir(&cache)).await;
    for image in [&archive, &docker, &layout] {
        let again = ImageCache::new(&cache).import(image).unwrap();
        assert_eq!(again.format, ImageFormat::Oci);
        assert_eq!(again.digest, format!("sha256:{hex}"));
        assert_eq!(again.root, tree);
        assert!(!again.extracted);
    }
    assert_eq!(
        common::snapshot(&cache.join("oci")),
        before,
        "the cache's trees changed"
    );
    // The compressed archive got a ref of its own, and its decompressed copy is gone.
    assert_eq!(names(&cache.join("refs")).len(), 2);
    assert_eq!(names(&cache.join("tmp")), BTreeSet::new());
}

#[tokio::test]
async fn docker_save_archive_is_imported_once_with_its_whiteouts() {
    common::require_root();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("save");
    let (hex, _) = docker_save(&dir, &[base_layer().finish(), whiteout_layer()]);
    let archive = work.path().join("save.tar");
    std::fs::write(&archive, common::tar_of_tree(&dir)).unwrap();
    let cache = work.path().join("cache");
    let rootfs = Rootfs::image(&archive).cache_dir(&cache);

    let out = look(rootfs.clone()).await;
    assert!(out.status.success(), "{out:?}");
    // Under the image ID, in the key space of image configs.
    assert_eq!(
        trees(&cache),
        BTreeSet::from([format!("docker-config/{hex}")])
    );
    assert_eq!(names(&cache.join("tmp")), BTreeSet::new());
    let tree = cache.join("docker-config/sha256").join(&hex).join("rootfs");
    assert!(!tree.join("manifest.json").exists());

    let before = common::snapshot(&cache);
    look(rootfs).await;
    let again = ImageCache::new(&cache).import(&archive).unwrap();
    assert_eq!((again.root, again.extracted), (tree, false));
    assert_eq!(common::snapshot(&cache), before, "the cache changed");
}

#[tokio::test]
async fn docker_export_tarball_works() {
    common::require_root();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    common::busybox_rootfs(&tree, &["sh", "ls", "cat"]);
    std::fs::write(tree.join("etc/keep"), "keep\n").unwrap();
    let tarball = work.path().join("export.tar.gz");
    let bytes = gzip(&common::tar_of_tree(&tree));
    std::fs::write(&tarball, &bytes).unwrap();
    let cache = work.path().join("cache");
    let rootfs = Rootfs::image(&tarball).cache_dir(&cache);
    let script = "ls /; echo --; cat /etc/keep";
    let want = "bin\ndev\netc\nproc\nsys\ntmp\n--\nkeep\n";

    let out = run(rootfs.clone(), script).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), want);
    assert_eq!(
        trees(&cache),
        BTreeSet::from([format!("tarball/{}", sha_hex(&bytes))])
    );
    assert_eq!(names(&cache.join("tmp")), BTreeSet::new());
    let before = common::snapshot(&cache);
    let out = run(rootfs, script).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), want);
    assert_eq!(common::snapshot(&cache), before, "the cache changed");
}

#[tokio::test]
async fn broken_images_are_typed_errors_and_leave_nothing_in_the_cache() {
    common::require_root();
    let work = tempfile::tempdir().unwrap();
    let canary = tempfile::tempdir().unwrap();

    // Not an image: bytes that are no tar (and no gzip).
    let junk = work.path().join("junk.tar");
    let mut bytes = common::random_hex(4096).into_bytes();
    bytes[0] = b'J';
    std::fs::write(&junk, &bytes).unwrap();

    // A layout whose second layer's blob is missing.
    let no_blob = work.path().join("no-blob");
    let (_, layers) = oci_layout(
        &no_blob,
        &[(base_layer().finish(), TAR), (whiteout_layer(), TAR)],
    );
    let gone_blob = no_blob.join("blobs/sha256").join(&layers[1]);
    std::fs::remove_file(&gone_blob).unwrap();

    // A layer that climbs out of the tree, after some good entries.
    let dotdot = work.path().join("dotdot");
    oci_layout(
        &dotdot,
        &[(base_layer().raw_file(b"../x", b"x\n").finish(), TAR)],
    );

    // A layer that plants a link to a host directory, then writes through it.
    let through = work.path().join("through");
    let target = canary.path().display().to_string();
    oci_layout(
        &through,
        &[(
            base_layer()
                .symlink("evil", &target)
                .file("evil/pwned", b"x\n", 0o644)
                .finish(),
            TAR,
        )],
    );

    // The same layout, tarred: its missing blob is named as the archive holds it.
    let no_blob_tar = work.path().join("no-blob.tar");
    std::fs::write(&no_blob_tar, common::tar_of_tree(&no_blob)).unwrap();
    let gone_member = PathBuf::from("blobs/sha256").join(&layers[1]);

    // A `docker save` archive whose second layer is missing.
    let save = work.path().join("save");
    let (_, save_layers) = docker_save(&save, &[base_layer().finish(), whiteout_layer()]);
    std::fs::remove_file(save.join(&save_layers[1])).unwrap();
    let save_tar = work.path().join("save.tar");
    std::fs::write(&save_tar, common::tar_of_tree(&save)).unwrap();

    // Image files that are neither an OCI layout nor a `docker save` archive.
    let neither = work.path().join("neither");
    oci_layout(&neither, &[(whiteout_layer(), TAR)]);
    std::fs::remove_file(neither.join("index.json")).unwrap();
    let neither_tar = work.path().join("neither.tar.gz");
    std::fs::write(&neither_tar, gzip(&common::tar_of_tree(&neither))).unwrap();

    let cases: Vec<(&Path, Check, String)> = vec![
        (
            &no_blob_tar,
            Box::new(|e| {
                matches!(e, ImageError::MissingBlob { image, blob }
                    if *image == no_blob_tar && *blob == gone_member)
            }),
            gone_member.display().to_string(),
        ),
        (
            &save_tar,
            Box::new(|e| {
                matches!(e, ImageError::MissingBlob { image, blob }
                    if *image == save_tar && *blob == Path::new(&save_layers[1]))
            }),
            save_layers[1].clone(),
        ),
        (
            &neither_tar,
            Box::new(|e| matches!(e, ImageError::NotAnImage { path, .. } if *path == neither_tar)),
            "neither an OCI image layout".to_string(),
        ),
        (
            &junk,
            Box::new(|e| matches!(e, ImageError::NotAnImage { path, .. } if *path == junk)),
            junk.display().to_string(),
        ),
        (
            &no_blob,
            Box::new(|e| matches!(e, ImageError::MissingBlob { blob, .. } if *blob == gone_blob)),
            gone_blob.display().to_string(),
        ),
        (
            &dotdot,
            Box::new(|e| {
                matches!(e, ImageError::UnsafePath { image, path, .. }
                    if *image == dotdot && *path == Path::new("../x"))
            }),
            "../x".to_string(),
        ),
        (
            &through,
            Box::new(|e| {
                matches!(e, ImageError::UnsafePath { image, path, .. }
                    if *image == through && *path == Path::new("evil/pwned"))
            }),
            "evil/pwned".to_string(),
        ),
    ];
    for (image, check, named) in &cases {
        let cache: PathBuf = work.path().join("cache");
        let e = run(Rootfs::image(image).cache_dir(&cache), "echo RAN")
            .await
            .map(|o| text(&o.stdout))
            .unwrap_err();
        match &e {
            Error::Fs(sandbox_fs::Error::Image(ie)) => {
                assert!(check(ie), "{}: {ie:?}", image.display())
            }
            other => panic!("{}: not an image error: {other:?}", image.display()),
        }
        let msg = e.to_string();
        assert!(msg.contains(named.as_str()), "{msg} does not name {named}");
        assert!(
            msg.contains(&image.display().to_string()),
            "{msg} does not name the image"
        );
        assert_eq!(names(&cache.join("tmp")), BTreeSet::new(), "{msg}");
        assert_eq!(trees(&cache), BTreeSet::new(), "{msg}");
    }
    assert_eq!(
        names(canary.path()),
        BTreeSet::new(),
        "a layer wrote outside"
    );
}
