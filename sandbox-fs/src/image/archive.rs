//! Image archives: telling a tarball that holds an OCI layout or a `docker save` image from a
//! root filesystem, indexing its members (within bounds), and decompressing a gzip-compressed
//! one into the cache before it is read in place.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::cache::TmpDir;
use super::digest::is_hex64;
use super::error::read_error;
use super::names::{normalise, split};
use super::{ImageCache, ImageError};

/// The first two bytes of a gzip stream.
pub(super) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most entries an image archive may have (its index is kept in memory).
const MAX_MEMBERS: usize = 100_000;

/// The longest name (or link target) an image archive's entry may have: `PATH_MAX`.
const MAX_NAME: usize = libc::PATH_MAX as usize;

/// The most bytes the names (and link targets) of an image archive's entries may take.
const MAX_NAME_BYTES: usize = 16 << 20;

/// What a tarball holds.
pub(super) enum Contents {
    /// A root filesystem, as `docker export` writes it: anything that is not an image archive.
    Root,
    /// An image archive.
    Archive {
        /// Its members (and so its kind).
        archive: ArchiveIndex,
        /// The decompressed copy `archive` reads, for a gzip-compressed archive.
        unpacked: Option<TmpDir>,
    },
}

/// The kinds of image archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArchiveKind {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    Oci,
    /// A `docker save` archive of the older format (`manifest.json`).
    DockerSave,
    /// Image files, but neither of those.
    Unknown,
}

impl ImageCache {
    /// Whether a tarball is a root filesystem or an image archive; the latter indexed (and,
    /// when gzip-compressed, decompressed into the cache's `tmp/` first).
    ///
    /// Plain or gzip, the same scan decides, over the same entries: a gzip stream is scanned
    /// as it is decompressed, writing nothing, which stops at the first entry that makes it a
    /// root filesystem; only an OCI layout or a `docker save` archive is then decompressed
    /// into `tmp/` (a second time), within [`ImageCache::unpack_limit`].
    pub(super) fn classify(&self, image: &Path, file: &File) -> Result<Contents, ImageError> {
        let read_error = read_error(image);
        let mut magic = [0; 2];
        let gzip = file.read_exact_at(&mut magic, 0).is_ok() && magic == GZIP_MAGIC;
        if !gzip {
            return Ok(match ArchiveIndex::scan(image, file)? {
                Some(archive) => Contents::Archive {
                    archive,
                    unpacked: None,
                },
                None => Contents::Root,
            });
        }
        let mut stream = tar::Archive::new(gunzip(file));
        match Members::scan(image, stream.entries(), None)? {
            None => return Ok(Contents::Root),
            Some(members) if members.kind() == ArchiveKind::Unknown => {
                return Err(neither_layout_nor_save(image))
            }
            Some(_) => {}
        }
        drop(stream);

        self.ensure_layout()?;
        let unpacked = self.new_tmp()?;
        let limit = self.unpack_limit(unpacked.path())?;
        let path = unpacked.path().join("archive.tar");
        let cache_error = |source| ImageError::Cache {
            path: path.clone(),
            source,
        };
        let mut out = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(cache_error)?;
        let mut gz = gunzip(file);
        let mut buf = vec![0; 256 << 10];
        let mut written = 0u64;
        loop {
            let n = match gz.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            written = written.saturating_add(n as u64);
            if written > limit {
                return Err(ImageError::TooLarge {
                    path: image.to_path_buf(),
                    cache: self.dir.clone(),
                    limit,
                });
            }
            out.write_all(&buf[..n]).map_err(cache_error)?;
        }
        drop(out);
        // Indexed again, in place: the file may have changed since it was scanned.
        let plain = File::open(&path).map_err(cache_error)?;
        Ok(match ArchiveIndex::scan(image, &plain)? {
            Some(archive) => Contents::Archive {
                archive,
                unpacked: Some(unpacked),
            },
            None => Contents::Root,
        })
    }

    /// How many bytes the decompressed copy of a gzip image archive may take in `tmp`, a
    /// directory of the cache: what is free on the cache's filesystem (for this user) less a
    /// margin, a twentieth of the filesystem's size but at least 64 MiB, left for the tree to
    /// be extracted and for everything else.
    fn unpack_limit(&self, tmp: &Path) -> Result<u64, ImageError> {
        if let Some(limit) = self.unpack_limit {
            return Ok(limit);
        }
        let fs = nix::sys::statvfs::statvfs(tmp).map_err(|e| ImageError::Cache {
            path: tmp.to_path_buf(),
            source: e.into(),
        })?;
        let frsize = wide(fs.fragment_size());
        let free = wide(fs.blocks_available()).saturating_mul(frsize);
        let size = wide(fs.blocks()).saturating_mul(frsize);
        let margin = (size / 20).max(64 << 20);
        Ok(free.saturating_sub(margin))
    }
}

/// Whether an entry's (normalised) path belongs in an image archive: its first component is
/// one an OCI layout or a `docker save` archive has at its top.
fn is_archive_name(rel: &[u8]) -> bool {
    let top = rel.split(|&b| b == b'/').next().unwrap_or_default();
    let hex = |name: &[u8]| std::str::from_utf8(name).is_ok_and(is_hex64);
    matches!(
        top,
        b"oci-layout" | b"index.json" | b"manifest.json" | b"repositories" | b"blobs"
    ) || hex(top)
        || top.strip_suffix(b".json").is_some_and(hex)
        || top.strip_suffix(b".tar").is_some_and(hex)
}

/// The refusal of an image archive that is neither an OCI layout nor a `docker save` archive.
pub(super) fn neither_layout_nor_save(image: &Path) -> ImageError {
    ImageError::NotAnImage {
        path: image.to_path_buf(),
        reason: "a tar archive of image files (`manifest.json`, `index.json`, `blobs/`…) that is \
                 neither an OCI image layout (no `oci-layout` and `index.json`) nor a \
                 `docker save` archive (no `manifest.json`)"
            .into(),
    }
}

/// The decompressed bytes of a gzip-compressed file (all its members).
fn gunzip(file: &File) -> flate2::bufread::MultiGzDecoder<BufReader<Region<'_>>> {
    flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(
        256 << 10,
        Region::new(file, 0, u64::MAX),
    ))
}

/// An entry of an image archive.
enum Member {
    /// A regular file: where its bytes are in the archive.
    File { offset: u64, size: u64 },
    /// A hard link (to a normalised path) or a symbolic link (relative to the entry's
    /// directory). `docker save` links identical layers to one another.
    Link { target: Vec<u8>, hard: bool },
    /// Anything else (a directory…).
    Other,
}

/// The entries of an image archive, by normalised path.
struct Members(std::collections::HashMap<Vec<u8>, Member>);

impl Members {
    /// Lists the entries of a tar stream when it is an image archive: every top-level name in
    /// it is one an image archive uses. `None` when it is not (a root filesystem), or not a
    /// tar archive at all (which extracting it as a root filesystem reports); stops at the
    /// first entry that says so. The one rule for plain and gzip-compressed tarballs alike.
    ///
    /// `len` is the length of a file whose entries' contents are seeked over: seeking past its
    /// end is no error, so an entry that ends beyond it is the error reading the stream (a
    /// gzip-compressed one) would meet.
    fn scan<R: Read>(
        image: &Path,
        entries: io::Result<tar::Entries<'_, R>>,
        len: Option<u64>,
    ) -> Result<Option<Members>, ImageError> {
        use tar::EntryType as T;
        let read_error = read_error(image);
        let refuse = |reason: String| ImageError::NotAnImage {
            path: image.to_path_buf(),
            reason,
        };
        let Ok(entries) = entries else {
            return Ok(None);
        };
        let mut members = std::collections::HashMap::new();
        let mut name_bytes = 0;
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                // Once it is known to be an image archive, it is not extracted as a root.
                Err(e) if !members.is_empty() => return Err(read_error(e)),
                Err(_) => return Ok(None),
            };
            let kind = entry.header().entry_type();
            let end = entry
                .raw_file_position()
                .checked_add(entry.size())
                .and_then(|end| end.checked_next_multiple_of(512));
            let truncated = match (len, end) {
                (Some(len), Some(end)) => end > len,
                (_, None) => true,
                (None, Some(_)) => false,
            };
            if !matches!(kind, T::XGlobalHeader | T::XHeader) {
                let raw = entry.path_bytes();
                let rel = match normalise(&raw) {
                    Ok(rel) if rel.is_empty() => None,
                    Ok(rel) if is_archive_name(&rel) => Some(rel),
                    // A root filesystem (which may well hold `blobs/` or `manifest.json`), or
                    // an unsafe name that extracting it as one refuses.
                    _ => return Ok(None),
                };
                if let Some(rel) = rel {
                    if members.len() >= MAX_MEMBERS {
                        return Err(refuse(format!(
                            "an image archive with more than {MAX_MEMBERS} entries"
                        )));
                    }
                    let link = entry.link_name_bytes().map(|t| t.into_owned());
                    let longest = raw.len().max(link.as_ref().map_or(0, Vec::len));
                    if longest > MAX_NAME {
                        let mut shown = String::from_utf8_lossy(&raw[..64.min(raw.len())]);
                        shown.to_mut().push('…');
                        return Err(refuse(format!(
                            "an image archive whose entry {shown:?} has a name or link \
                             target longer than {MAX_NAME} bytes"
                        )));
                    }
                    name_bytes += rel.len() + link.as_ref().map_or(0, Vec::len);
                    if name_bytes > MAX_NAME_BYTES {
                        return Err(refuse(format!(
                            "an image archive whose entry names take more than \
                             {MAX_NAME_BYTES} bytes"
                        )));
                    }
                    let member = match (kind, link) {
                        (T::Regular | T::Continuous, _) => Member::File {
                            offset: entry.raw_file_position(),
                            size: entry.size(),
                        },
                        (T::Symlink, Some(target)) => Member::Link {
                            target,
                            hard: false,
                        },
                        (T::Link, Some(target)) => match normalise(&target) {
                            Ok(target) => Member::Link { target, hard: true },
                            Err(_) => Member::Other,
                        },
                        _ => Member::Other,
                    };
                    members.insert(rel, member);
                }
            }
            if truncated {
                let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "truncated tar archive");
                return if members.is_empty() {
                    Ok(None)
                } else {
                    Err(read_error(eof))
                };
            }
        }
        if members.is_empty() {
            // No entries (or only `./`): extracting it reports what it is.
            return Ok(None);
        }
        Ok(Some(Members(members)))
    }

    fn kind(&self) -> ArchiveKind {
        if self.find(b"oci-layout").is_some() && self.find(b"index.json").is_some() {
            ArchiveKind::Oci
        } else if self.find(b"manifest.json").is_some() {
            ArchiveKind::DockerSave
        } else {
            ArchiveKind::Unknown
        }
    }

    /// Where the bytes of regular file `rel` are (following links, within the archive).
    fn find(&self, rel: &[u8]) -> Option<(u64, u64)> {
        let mut name = rel.to_vec();
        for _ in 0..16 {
            name = match self.0.get(&name)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link { target, hard: true } => target.clone(),
                Member::Link {
                    target,
                    hard: false,
                } => resolve_link(split(&name).0, target)?,
                Member::Other => return None,
            };
        }
        None
    }
}

/// The entries of a plain (uncompressed) image archive, read in place.
pub(super) struct ArchiveIndex {
    pub(super) file: File,
    members: Members,
}

impl ArchiveIndex {
    /// Lists `file` when it is an image archive (see [`Members::scan`]), seeking over the
    /// entries' contents.
    fn scan(image: &Path, file: &File) -> Result<Option<ArchiveIndex>, ImageError> {
        let read_error = read_error(image);
        let mut file = file.try_clone().map_err(read_error)?;
        file.rewind().map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        let members = Members::scan(
            image,
            tar::Archive::new(&file).entries_with_seek(),
            Some(len),
        )?;
        Ok(members.map(|members| ArchiveIndex { file, members }))
    }

    pub(super) fn kind(&self) -> ArchiveKind {
        self.members.kind()
    }

    pub(super) fn find(&self, rel: &[u8]) -> Option<(u64, u64)> {
        self.members.find(rel)
    }
}

/// Resolves symbolic link `target`, found in directory `dir` of an archive, lexically; `None`
/// when it is absolute or climbs above the archive's top.
fn resolve_link(dir: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    if target.starts_with(b"/") {
        return None;
    }
    let mut parts: Vec<&[u8]> = dir
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join(&b'/'))
}

/// A count as a `u64` (the types of `statvfs`'s fields vary with the platform).
fn wide(n: impl TryInto<u64>) -> u64 {
    n.try_into().unwrap_or(u64::MAX)
}

/// A part of a file, read with `pread` (so that several can be read from one file).
pub(super) struct Region<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> Region<'a> {
    pub(super) fn new(file: &'a File, offset: u64, len: u64) -> Region<'a> {
        Region {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let len = buf.len().min(left);
        if len == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..len], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! A tarball is an image archive exactly when all its files are an image's, plain or gzip
    //! alike; an archive's blobs are read in place and never from outside it; its index and its
    //! decompressed copy stay within bounds.

    use super::*;
    use crate::image::cache::memo;
    use crate::image::digest::to_hex;
    use crate::image::fixtures::*;
    use crate::image::ImageFormat;
    use sha2::{Digest, Sha256};
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use tar::EntryType;

    #[test]
    fn oci_archive_imports_like_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let (layer1, layer2) = whiteout_layers();
        let plain = "application/vnd.oci.image.layer.v1.tar";
        let (manifest, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer1)), (plain, layer2)]);
        // Docker 25's `docker save` adds these next to the layout.
        fs::write(layout.join("manifest.json"), "[]").unwrap();
        fs::write(layout.join("repositories"), "{}").unwrap();
        let archive = tmp.path().join("image.tar");
        fs::write(&archive, tar_dir(&layout, "./")).unwrap();
        let compressed = tmp.path().join("image.tar.gz");
        fs::write(&compressed, gz(&tar_dir(&layout, ""))).unwrap();

        let cache = ImageCache::new(tmp.path().join("cache"));
        let img = cache.import(&archive).unwrap();
        assert!(img.extracted);
        assert_eq!(
            img.digest, manifest,
            "keyed by the manifest, as a directory is"
        );
        assert_whiteout_tree(&img.root);
        assert_clean_tmp(cache.dir());
        assert_eq!(fs::read_dir(cache.dir().join("refs")).unwrap().count(), 1);
        // Reused: from the ref, from a fresh process (no memo), and under other names.
        let inode = fs::metadata(&img.root).unwrap().ino();
        for image in [&archive, &compressed, &layout] {
            memo().lock().unwrap().clear();
            let again = cache.import(image).unwrap();
            assert!(!again.extracted, "{}", image.display());
            assert_eq!((&again.digest, &again.root), (&img.digest, &img.root));
        }
        assert_eq!(fs::metadata(&img.root).unwrap().ino(), inode);
        assert_clean_tmp(cache.dir());
        // Found by its manifest's digest before any layer is read: an archive of the same
        // image whose layers are gone still finds it.
        for layer in &layers {
            fs::remove_file(blob_of(&layout, layer)).unwrap();
        }
        let thin = tmp.path().join("thin.tar");
        fs::write(&thin, tar_dir(&layout, "")).unwrap();
        assert_eq!(cache.import(&thin).unwrap().root, img.root);

        // Gzip-compressed, into a fresh cache: the decompressed copy does not stay.
        let other = ImageCache::new(tmp.path().join("other"));
        let img = other.import(&compressed).unwrap();
        assert!(img.extracted);
        assert_eq!(img.digest, manifest);
        assert_whiteout_tree(&img.root);
        assert_clean_tmp(other.dir());
        assert_eq!(trees(other.dir()), [format!("oci/{}", &manifest[7..])]);
    }

    #[test]
    fn oci_archive_with_a_missing_blob_is_refused_not_extracted() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let random: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let (layer1, layer2) = (
            tar_of(&[E::File("random", 0o644, &random)]),
            tar_of(&[E::File("more", 0o644, &random[..100])]),
        );
        let (_, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer1)), (GZ_LAYER, gz(&layer2))]);
        fs::remove_file(blob_of(&layout, &layers[1])).unwrap();
        for (name, bytes) in [
            ("image.tar", tar_dir(&layout, "")),
            ("image.tar.gz", gz(&tar_dir(&layout, "./"))),
        ] {
            let archive = tmp.path().join(name);
            fs::write(&archive, bytes).unwrap();
            let cache = ImageCache::new(tmp.path().join("cache"));
            let err = cache.import(&archive).unwrap_err();
            let want = Path::new("blobs/sha256").join(&layers[1][7..]);
            assert!(
                matches!(&err, ImageError::MissingBlob { image, blob } if *image == archive && *blob == want),
                "{err}"
            );
            assert_clean(cache.dir());
            assert!(
                !cache.dir().join("refs").exists()
                    || fs::read_dir(cache.dir().join("refs")).unwrap().count() == 0
            );
        }
    }

    #[test]
    fn only_image_files_make_an_image_archive() {
        // Image files only, but no layout and no manifest.json: refused.
        for entries in [
            vec![
                E::Dir("blobs/", 0o755),
                E::Dir("blobs/sha256/", 0o755),
                E::File("blobs/sha256/abc", 0o644, b"x"),
                E::File("repositories", 0o644, b"{}"),
            ],
            vec![E::File("./oci-layout", 0o644, b"{}")],
            vec![E::File(
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json",
                0o644,
                b"{}",
            )],
        ] {
            let err = import_fails(&tar_of(&entries));
            assert!(
                matches!(&err, ImageError::NotAnImage { reason, .. } if reason.contains("docker save")),
                "{err}"
            );
        }

        // Anything else is a root filesystem, however small, whatever else it holds.
        let tmp = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(tmp.path().join("cache"));
        for (i, entries) in [
            vec![E::Dir("bin/", 0o755), E::Dir("etc/", 0o755)],
            vec![E::File("hello", 0o755, b"static binary")],
            vec![
                E::File("manifest.json", 0o644, b"[]"),
                E::Dir("blobs/", 0o755),
                E::File("app", 0o755, b"x"),
            ],
            vec![
                E::File("index.json", 0o644, b"{}"),
                E::File("oci-layout", 0o644, b"{}"),
                E::Dir("etc/", 0o755),
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let bytes = tar_of(&entries);
            for (name, bytes) in [
                (format!("{i}.tar"), bytes.clone()),
                (format!("{i}.tgz"), gz(&bytes)),
            ] {
                let tarball = tmp.path().join(name);
                fs::write(&tarball, &bytes).unwrap();
                let img = cache.import(&tarball).unwrap();
                assert_eq!(img.digest, sha(&bytes));
                assert!(!names(&img.root).is_empty());
            }
        }
        assert_clean_tmp(cache.dir());
    }

    /// An image archive's members are only ever read inside it: a blob that is a link out of the
    /// archive (relative, absolute or hard), or a layer named by an absolute path, is missing;
    /// a `..` member refuses the archive, and a link to itself leads nowhere.
    #[test]
    fn hostile_archive_members_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let layer = tar_of(&[E::File("f", 0o644, b"x")]);
        let (_m, layers) = oci(&layout, &[(GZ_LAYER, gz(&layer))]);
        let hex = &layers[0][7..];
        let run = |name: &str, bytes: Vec<u8>| {
            let archive = tmp.path().join(name);
            fs::write(&archive, bytes).unwrap();
            let cache = ImageCache::new(tmp.path().join(format!("cache-{name}")));
            let r = cache.import(&archive);
            assert_clean(cache.dir());
            r
        };
        // blob replaced by a symlink member pointing out of the archive.
        fs::remove_file(blob_of(&layout, &layers[0])).unwrap();
        std::os::unix::fs::symlink("../../../../../etc/passwd", blob_of(&layout, &layers[0]))
            .unwrap();
        assert!(matches!(
            run("sym.tar", tar_dir(&layout, "")),
            Err(ImageError::MissingBlob { .. })
        ));
        // absolute symlink
        fs::remove_file(blob_of(&layout, &layers[0])).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", blob_of(&layout, &layers[0])).unwrap();
        assert!(matches!(
            run("abs.tar", tar_dir(&layout, "")),
            Err(ImageError::MissingBlob { .. })
        ));
        // hard link member to a host-looking path
        fs::remove_file(blob_of(&layout, &layers[0])).unwrap();
        let mut t = tar_dir(&layout, "");
        t.truncate(t.len() - 1024);
        let mut b = tar::Builder::new(t);
        let h = header(
            EntryType::Link,
            &format!("blobs/sha256/{hex}"),
            "/etc/passwd",
            0o644,
            0,
        );
        b.append(&h, &b""[..]).unwrap();
        let h = header(EntryType::Link, "blobs/x", "../../etc/passwd", 0o644, 0);
        b.append(&h, &b""[..]).unwrap();
        assert!(matches!(
            run("hard.tar", b.into_inner().unwrap()),
            Err(ImageError::MissingBlob { .. })
        ));
        // `..` member among image files
        let mut t = tar_dir(&layout, "");
        t.truncate(t.len() - 1024);
        let mut b = tar::Builder::new(t);
        let h = header(EntryType::Regular, "blobs/../../x", "", 0o644, 1);
        b.append(&h, &b"x"[..]).unwrap();
        assert!(run("dotdot.tar", b.into_inner().unwrap()).is_err());
        // docker-save with absolute layer path and symlink-looping layers
        let save = tmp.path().join("save");
        let lid = to_hex(&Sha256::digest(b"l"));
        fs::create_dir_all(save.join(&lid)).unwrap();
        std::os::unix::fs::symlink("layer.tar", save.join(&lid).join("layer.tar")).unwrap();
        let cfg =
            serde_json::json!({"rootfs": {"diff_ids": [sha(&layer), sha(&layer)]}}).to_string();
        let chex = to_hex(&Sha256::digest(&cfg));
        fs::write(save.join(format!("{chex}.json")), &cfg).unwrap();
        fs::write(save.join("manifest.json"), serde_json::json!([{"Config": format!("/{chex}.json"), "Layers": ["/etc/passwd", format!("{lid}/layer.tar")]}]).to_string()).unwrap();
        assert!(matches!(
            run("save.tar", tar_dir(&save, "")),
            Err(ImageError::MissingBlob { .. })
        ));
    }

    /// A gzip-compressed tarball is told apart as it is decompressed, writing nothing: image
    /// files that make no image are refused, and a root filesystem imported, however little
    /// the cache could take of a decompressed copy; an image archive is decompressed within
    /// that limit only.
    #[test]
    fn gzip_archives_are_told_before_being_decompressed_and_within_a_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let nothing = |name: &str| ImageCache::new(tmp.path().join(name)).with_unpack_limit(0);

        // Image files, but no image.
        let unknown = tmp.path().join("unknown.tar.gz");
        let blob = vec![7u8; 1 << 20];
        fs::write(
            &unknown,
            gz(&tar_of(&[
                E::Dir("blobs/", 0o755),
                E::File("blobs/big", 0o644, &blob),
                E::File("repositories", 0o644, b"{}"),
            ])),
        )
        .unwrap();
        let cache = nothing("c1");
        let err = cache.import(&unknown).unwrap_err();
        assert!(
            matches!(&err, ImageError::NotAnImage { path, reason } if *path == unknown && reason.contains("docker save")),
            "{err}"
        );
        assert_clean(cache.dir());

        // A root filesystem that starts like an image archive.
        let root = tmp.path().join("root.tar.gz");
        let bytes = gz(&tar_of(&[
            E::File("manifest.json", 0o644, b"[]"),
            E::Dir("blobs/", 0o755),
            E::File("blobs/big", 0o644, &blob),
            E::Dir("etc/", 0o755),
        ]));
        fs::write(&root, &bytes).unwrap();
        let cache = nothing("c2");
        let img = cache.import(&root).unwrap();
        assert_eq!(
            (img.format, img.digest),
            (ImageFormat::RootTarball, sha(&bytes))
        );
        assert_eq!(names(&img.root), ["blobs", "etc", "manifest.json"]);
        assert_clean_tmp(cache.dir());

        // An OCI layout: refused when its decompressed copy would not fit, naming it.
        let layout = tmp.path().join("layout");
        let (manifest, _) = oci(
            &layout,
            &[(GZ_LAYER, gz(&tar_of(&[E::File("f", 0o644, &blob)])))],
        );
        let tar = tar_dir(&layout, "");
        let archive = tmp.path().join("oci.tar.gz");
        fs::write(&archive, gz(&tar)).unwrap();
        let len = tar.len() as u64;
        let cache = ImageCache::new(tmp.path().join("c3")).with_unpack_limit(len - 1);
        let err = cache.import(&archive).unwrap_err();
        assert!(
            matches!(&err, ImageError::TooLarge { path, cache: dir, limit }
                if *path == archive && dir == cache.dir() && *limit == len - 1),
            "{err}"
        );
        assert!(err.to_string().contains("oci.tar.gz"), "{err}");
        assert_clean(cache.dir());
        let cache = ImageCache::new(tmp.path().join("c3")).with_unpack_limit(len);
        let img = cache.import(&archive).unwrap();
        assert_eq!((img.format, img.digest), (ImageFormat::Oci, manifest));
        assert_clean_tmp(cache.dir());

        // Without a given limit: what the filesystem has free, less a margin.
        let cache = ImageCache::new(tmp.path().join("c4"));
        let fs = nix::sys::statvfs::statvfs(tmp.path()).unwrap();
        let free = wide(fs.blocks_available()) * wide(fs.fragment_size());
        let limit = cache.unpack_limit(tmp.path()).unwrap();
        assert!(
            limit + (64 << 20) <= free.max(64 << 20),
            "{limit} of {free}"
        );
    }

    /// Whatever is in front of an image archive's files (empty names, pax headers), and
    /// wherever it ends, a tarball is told the same plain and gzip-compressed.
    #[test]
    fn plain_and_gzip_tarballs_are_told_alike() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let layer = tar_of(&[E::File("f", 0o644, &[1; 3000])]);
        oci(&layout, &[(GZ_LAYER, layer.clone())]);
        let image = tar_dir(&layout, "");
        let unterminated = |mut t: Vec<u8>| {
            t.truncate(t.len() - 1024);
            t
        };
        let dots: Vec<E<'_>> = (0..200).map(|_| E::Dir("./", 0o755)).collect();
        let mut pax = tar::Builder::new(Vec::new());
        for _ in 0..200 {
            let h = header(EntryType::XGlobalHeader, "pax", "", 0o644, 10);
            pax.append(&h, &b"9 a=bcde\n\n"[..]).unwrap();
        }
        let pax = unterminated(pax.into_inner().unwrap());
        let behind = |front: Vec<u8>, rest: &[u8]| [unterminated(front), rest.to_vec()].concat();
        let truncated = image[..image.len() / 2].to_vec();
        let cases = [
            ("dots", behind(tar_of(&dots), &image)),
            ("pax", [pax.clone(), image.clone()].concat()),
            (
                "dots-root",
                behind(tar_of(&dots), &tar_of(&[E::Dir("etc/", 0o755)])),
            ),
            ("truncated", truncated),
            (
                "cut-in-last-entry",
                image[..image.len() - 1024 - 100].to_vec(),
            ),
        ];
        for (name, bytes) in cases {
            let mut told = Vec::new();
            for (suffix, bytes) in [("tar", bytes.clone()), ("tgz", gz(&bytes))] {
                let path = tmp.path().join(format!("{name}.{suffix}"));
                fs::write(&path, bytes).unwrap();
                let cache = ImageCache::new(tmp.path().join(format!("cache-{name}-{suffix}")));
                told.push(match cache.import(&path) {
                    Ok(img) if img.format == ImageFormat::RootTarball => "root".to_string(),
                    Ok(img) => format!("{:?} {}", img.format, img.digest),
                    Err(e) => format!("{e:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_string(),
                });
            }
            assert_eq!(told[0], told[1], "{name}: plain, then gzip");
        }
    }

    /// An image archive's index does not grow with hostile names.
    #[test]
    fn image_archive_names_are_bounded() {
        let gnu = |kind, size| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_size(size);
            h
        };
        let long = format!("blobs/sha256/{}", "a".repeat(MAX_NAME));
        for (what, bytes) in [
            ("name", {
                let mut b = tar::Builder::new(Vec::new());
                b.append_data(&mut gnu(EntryType::Regular, 1), &long, &b"x"[..])
                    .unwrap();
                b.into_inner().unwrap()
            }),
            ("link target", {
                let mut b = tar::Builder::new(Vec::new());
                b.append_link(&mut gnu(EntryType::Symlink, 0), "blobs/l", &long)
                    .unwrap();
                b.into_inner().unwrap()
            }),
        ] {
            let err = import_fails(&bytes);
            assert!(
                matches!(&err, ImageError::NotAnImage { reason, .. } if reason.contains("longer than 4096 bytes")),
                "{what}: {err}"
            );
        }
        // Names within `PATH_MAX`, but too many bytes of them.
        let mut b = tar::Builder::new(Vec::new());
        let base = "b".repeat(MAX_NAME - 100);
        for i in 0..MAX_NAME_BYTES / (MAX_NAME - 100) + 1 {
            let name = format!("blobs/{base}{i}");
            b.append_data(&mut gnu(EntryType::Directory, 0), &name, io::empty())
                .unwrap();
        }
        let err = import_fails(&b.into_inner().unwrap());
        assert!(
            matches!(&err, ImageError::NotAnImage { reason, .. } if reason.contains("names take more than")),
            "{err}"
        );
    }
}
