//! Reading image archives in one pass: stream every file into the sink, resolve at the end.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use serde::Deserialize;

use super::{ArchiveError, BlobSink, HashingReader, LoadedImage, blob_path, stream_error};
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::manifest::{self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ManifestFormat};
use crate::media::{self, LayerCompression};
use crate::oci::image::Descriptor;
use crate::reference::{Reference, is_tag};

/// JSON documents (configs, manifests, indexes) are kept in memory up to this size.
const JSON_LIMIT: u64 = 16 << 20;
/// How many links may chain (docker's dedup symlinks chain at most once; 40 as the kernel).
const MAX_LINKS: usize = 40;

/// A regular file seen in the archive.
#[derive(Debug)]
struct FileInfo {
    digest: Digest,
    size: u64,
    /// The content, for JSON documents and docker's metadata files.
    bytes: Option<Vec<u8>>,
    /// Whether the sink has the content.
    ingested: bool,
    /// Compression detected from the first bytes.
    compression: LayerCompression,
}

/// Everything the single pass saw.
#[derive(Debug, Default)]
struct Seen {
    files: HashMap<String, FileInfo>,
    /// Symlinks (resolved relative to their directory) and hardlinks: path → target path.
    links: HashMap<String, String>,
}

/// Reads an image archive (see the module docs for the layouts), streaming every blob into
/// `sink`, and returns the images it names.
pub fn read_archive(
    reader: impl Read,
    sink: &mut dyn BlobSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let head = buffered.fill_buf().map_err(stream_error)?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let seen = scan(stream, sink)?;
    resolve(seen, sink)
}

fn scan(stream: impl Read, sink: &mut dyn BlobSink) -> Result<Seen, ArchiveError> {
    let mut archive = tar::Archive::new(stream);
    let mut seen = Seen::default();
    let mut first = true;
    for entry in archive.entries().map_err(stream_error)? {
        let mut entry = entry.map_err(|e| {
            // A first header that does not parse means this was never a tar.
            if first && e.kind() != io::ErrorKind::UnexpectedEof {
                ArchiveError::NotAnArchive { source: e }
            } else {
                stream_error(e)
            }
        })?;
        first = false;
        let raw_path = entry.path_bytes().into_owned();
        let path = normalize_path(&String::from_utf8_lossy(&raw_path))?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name_bytes() else {
                continue;
            };
            let target = String::from_utf8_lossy(&target).into_owned();
            let resolved = if kind.is_symlink() && !target.starts_with('/') {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                normalize_path(&format!("{dir}/{target}"))?
            } else {
                normalize_path(&target)?
            };
            seen.links.insert(path, resolved);
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.header().size().map_err(stream_error)?;
            let info = take_file(&path, &mut entry, size, sink)?;
            seen.files.insert(path, info);
        }
    }
    Ok(seen)
}

/// Streams one regular file into the sink (or memory, for docker's metadata files).
fn take_file(
    path: &str,
    entry: &mut dyn Read,
    size: u64,
    sink: &mut dyn BlobSink,
) -> Result<FileInfo, ArchiveError> {
    let mut head = vec![0u8; size.min(512) as usize];
    let got = read_full(entry, &mut head).map_err(stream_error)?;
    head.truncate(got);
    let expected = blob_digest_of_path(path);
    let compression = LayerCompression::detect(&head);
    let metadata = is_docker_metadata(path);

    if metadata || (looks_like_json(&head) && size <= JSON_LIMIT) {
        if size > JSON_LIMIT {
            return Err(ArchiveError::TooLarge {
                path: path.to_string(),
                what: "a metadata file",
                size,
                limit: JSON_LIMIT,
            });
        }
        let mut bytes = head;
        entry.read_to_end(&mut bytes).map_err(stream_error)?;
        if bytes.len() as u64 != size {
            return Err(ArchiveError::TruncatedEntry {
                path: path.to_string(),
                read: bytes.len() as u64,
                expected: size,
            });
        }
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ArchiveError::DigestMismatch {
                path: path.to_string(),
                expected,
                actual: digest,
            });
        }
        let mut info = FileInfo {
            digest,
            size,
            bytes: Some(bytes),
            ingested: false,
            compression,
        };
        if !metadata {
            ingest_in_memory(path, &mut info, sink)?;
        }
        return Ok(info);
    }

    let mut hashing = HashingReader::new(io::Cursor::new(head).chain(entry));
    let result = sink.ingest(&mut hashing, expected.map(|d| (d, size)));
    // Whatever the sink left unread still has to be hashed (and skipped in the tar).
    let drained = io::copy(&mut hashing, &mut io::sink());
    let (digest, read, stream_failure) = hashing.finish();
    if let Some(e) = stream_failure {
        return Err(stream_error(e));
    }
    drained.map_err(stream_error)?;
    if read != size {
        return Err(ArchiveError::TruncatedEntry {
            path: path.to_string(),
            read,
            expected: size,
        });
    }
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(ArchiveError::DigestMismatch {
            path: path.to_string(),
            expected,
            actual: digest,
        });
    }
    result.map_err(|source| ArchiveError::Sink {
        path: path.to_string(),
        source,
    })?;
    Ok(FileInfo {
        digest,
        size,
        bytes: None,
        ingested: true,
        compression,
    })
}

fn ingest_in_memory(
    path: &str,
    info: &mut FileInfo,
    sink: &mut dyn BlobSink,
) -> Result<(), ArchiveError> {
    if info.ingested {
        return Ok(());
    }
    let bytes = info.bytes.as_deref().unwrap_or_default();
    sink.ingest(&mut &bytes[..], Some((info.digest, info.size)))
        .map_err(|source| ArchiveError::Sink {
            path: path.to_string(),
            source,
        })?;
    info.ingested = true;
    Ok(())
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A JSON document starts with `{` or `[`; a tar whose first name starts with `{` is told
/// apart by its `ustar` magic.
fn looks_like_json(head: &[u8]) -> bool {
    let first = head.iter().find(|c| !c.is_ascii_whitespace());
    matches!(first, Some(b'{' | b'[')) && !(head.len() >= 262 && &head[257..262] == b"ustar")
}

/// docker's bookkeeping files, which are not blobs of any image.
fn is_docker_metadata(path: &str) -> bool {
    match path.rsplit_once('/') {
        None => matches!(
            path,
            "manifest.json" | "repositories" | "index.json" | "oci-layout"
        ),
        Some((dir, name)) => !dir.contains('/') && matches!(name, "json" | "VERSION"),
    }
}

/// The digest an OCI layout path promises: `blobs/sha256/<hex>`.
fn blob_digest_of_path(path: &str) -> Option<Digest> {
    Digest::from_hex(path.strip_prefix("blobs/sha256/")?).ok()
}

/// `./a/b`, `/a//b/` → `a/b`; `..` that would leave the archive root is refused.
fn normalize_path(raw: &str) -> Result<String, ArchiveError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ArchiveError::UnsafePath {
                        path: raw.to_string(),
                    });
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl Seen {
    /// The file at `path`, following links.
    fn file(&self, path: &str, referenced_by: &str) -> Result<(&str, &FileInfo), ArchiveError> {
        let mut current = path;
        for _ in 0..MAX_LINKS {
            if let Some((key, info)) = self.files.get_key_value(current) {
                return Ok((key.as_str(), info));
            }
            match self.links.get(current) {
                Some(target) => current = target,
                None => {
                    return Err(ArchiveError::MissingFile {
                        path: path.to_string(),
                        referenced_by: referenced_by.to_string(),
                    });
                }
            }
        }
        Err(ArchiveError::LinkLoop {
            path: path.to_string(),
        })
    }

    fn bytes(&self, path: &str, referenced_by: &str) -> Result<&[u8], ArchiveError> {
        let (key, info) = self.file(path, referenced_by)?;
        info.bytes.as_deref().ok_or_else(|| ArchiveError::TooLarge {
            path: key.to_string(),
            what: "a JSON document",
            size: info.size,
            limit: JSON_LIMIT,
        })
    }

    fn ensure_ingested(
        &mut self,
        path: &str,
        referenced_by: &str,
        sink: &mut dyn BlobSink,
    ) -> Result<(), ArchiveError> {
        let key = self.file(path, referenced_by)?.0.to_string();
        if let Some(info) = self.files.get_mut(&key) {
            ingest_in_memory(&key, info, sink)?;
        }
        Ok(())
    }
}

/// One `manifest.json` entry of `docker save`.
#[derive(Debug, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn resolve(mut seen: Seen, sink: &mut dyn BlobSink) -> Result<Vec<LoadedImage>, ArchiveError> {
    let docker_manifest: Option<Vec<DockerManifestEntry>> = match seen.files.get("manifest.json") {
        Some(_) => Some(parse_json(&seen, "manifest.json")?),
        None => None,
    };
    if seen.files.contains_key("index.json") {
        let mut images = read_oci_layout(&mut seen, sink)?;
        // Docker 25+: manifest.json names the same images (by config) with their RepoTags.
        for entry in docker_manifest.iter().flatten() {
            let config_digest = seen.file(&entry.config, "manifest.json")?.1.digest;
            let refs = parse_repo_tags(entry)?;
            for image in images
                .iter_mut()
                .filter(|i| i.config_digest == config_digest)
            {
                for r in &refs {
                    if !image.refs.contains(r) {
                        image.refs.push(r.clone());
                    }
                }
            }
        }
        return Ok(images);
    }
    match docker_manifest {
        Some(entries) => entries
            .iter()
            .map(|entry| read_legacy_image(&mut seen, entry, sink))
            .collect(),
        None => Err(ArchiveError::MissingManifest),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(seen: &Seen, path: &str) -> Result<T, ArchiveError> {
    serde_json::from_slice(seen.bytes(path, "the archive layout")?).map_err(|source| {
        ArchiveError::Json {
            path: path.to_string(),
            source,
        }
    })
}

fn parse_repo_tags(entry: &DockerManifestEntry) -> Result<Vec<Reference>, ArchiveError> {
    entry
        .repo_tags
        .iter()
        .flatten()
        .map(|tag| {
            Reference::parse(tag).map_err(|source| ArchiveError::Reference {
                path: "manifest.json".to_string(),
                source,
            })
        })
        .collect()
}

fn parse_config(seen: &Seen, path: &str) -> Result<ImageConfig, ArchiveError> {
    ImageConfig::from_slice(seen.bytes(path, "manifest")?).map_err(|source| ArchiveError::Config {
        path: path.to_string(),
        source,
    })
}

fn diff_ids(config: &ImageConfig, path: &str) -> Result<Vec<Digest>, ArchiveError> {
    config.diff_ids().map_err(|source| ArchiveError::Config {
        path: path.to_string(),
        source,
    })
}

/// The legacy layout: synthesize a Docker v2s2 manifest over the uncompressed layer tars.
fn read_legacy_image(
    seen: &mut Seen,
    entry: &DockerManifestEntry,
    sink: &mut dyn BlobSink,
) -> Result<LoadedImage, ArchiveError> {
    let config = parse_config(seen, &entry.config)?;
    let diff_ids = diff_ids(&config, &entry.config)?;
    seen.ensure_ingested(&entry.config, "manifest.json", sink)?;
    let config_info = seen.file(&entry.config, "manifest.json")?.1;
    let config_descriptor =
        manifest::descriptor(media::DOCKER_CONFIG, config_info.digest, config_info.size);
    let config_digest = config_info.digest;
    if entry.layers.len() != diff_ids.len() {
        return Err(ArchiveError::LayerCountMismatch {
            path: entry.config.clone(),
            layers: entry.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (layer_path, diff_id) in entry.layers.iter().zip(&diff_ids) {
        seen.ensure_ingested(layer_path, "manifest.json", sink)?;
        let (key, info) = seen.file(layer_path, "manifest.json")?;
        // Only an uncompressed layer's digest is its diff_id; a compressed one is verified when
        // it is unpacked.
        if info.compression == LayerCompression::None && info.digest != *diff_id {
            return Err(ArchiveError::DiffIdMismatch {
                path: key.to_string(),
                expected: *diff_id,
                actual: info.digest,
            });
        }
        layers.push(manifest::descriptor(
            info.compression.docker_media_type(),
            info.digest,
            info.size,
        ));
    }
    let built = manifest::build_manifest(ManifestFormat::Docker, config_descriptor, layers);
    let bytes = manifest::to_bytes(&built);
    let digest = Digest::of(&bytes);
    sink.ingest(&mut &bytes[..], Some((digest, bytes.len() as u64)))
        .map_err(|source| ArchiveError::Sink {
            path: "manifest.json".to_string(),
            source,
        })?;
    Ok(LoadedImage {
        refs: parse_repo_tags(entry)?,
        bare_tags: Vec::new(),
        manifest: bytes,
        manifest_digest: digest,
        manifest_media_type: media::DOCKER_MANIFEST.to_string(),
        config_digest,
    })
}

/// The OCI layout (plain, or inside Docker 25+'s dual layout).
fn read_oci_layout(
    seen: &mut Seen,
    sink: &mut dyn BlobSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let index_bytes = seen.bytes("index.json", "the OCI layout")?;
    let index = manifest::parse_index(index_bytes, Some(media::OCI_INDEX)).map_err(|source| {
        ArchiveError::Manifest {
            path: "index.json".to_string(),
            source,
        }
    })?;
    let mut images: Vec<LoadedImage> = Vec::new();
    for descriptor in index.manifests() {
        let (refs, bare_tags) = names_of(descriptor)?;
        let manifest_descriptor = pick_manifest(seen, descriptor)?;
        let image = read_oci_image(seen, &manifest_descriptor, sink)?;
        match images
            .iter_mut()
            .find(|i| i.manifest_digest == image.manifest_digest)
        {
            Some(existing) => {
                for r in refs {
                    if !existing.refs.contains(&r) {
                        existing.refs.push(r);
                    }
                }
                for t in bare_tags {
                    if !existing.bare_tags.contains(&t) {
                        existing.bare_tags.push(t);
                    }
                }
            }
            None => images.push(LoadedImage {
                refs,
                bare_tags,
                ..image
            }),
        }
    }
    Ok(images)
}

/// The names an index entry gives its image: containerd's full name first, then
/// `org.opencontainers.image.ref.name` when it is a full reference, else a bare tag.
fn names_of(descriptor: &Descriptor) -> Result<(Vec<Reference>, Vec<String>), ArchiveError> {
    let mut refs = Vec::new();
    let mut bare = Vec::new();
    let fail = |source| ArchiveError::Reference {
        path: "index.json".to_string(),
        source,
    };
    if let Some(name) = manifest::annotation(descriptor, ANNOTATION_CONTAINERD_NAME) {
        refs.push(Reference::parse(name).map_err(fail)?);
    }
    if let Some(name) = manifest::annotation(descriptor, ANNOTATION_REF_NAME) {
        if name.contains(['/', ':', '@']) {
            let r = Reference::parse(name).map_err(fail)?;
            if !refs.contains(&r) {
                refs.push(r);
            }
        } else if refs.is_empty() && is_tag(name) {
            bare.push(name.to_string());
        }
    }
    Ok((refs, bare))
}

/// An index entry's manifest: itself, or for a nested index the manifest present in the
/// archive for this machine's platform (else the first one present).
fn pick_manifest(seen: &Seen, descriptor: &Descriptor) -> Result<Descriptor, ArchiveError> {
    let media_type = descriptor.media_type().to_string();
    if !media::is_index(&media_type) {
        return Ok(descriptor.clone());
    }
    let digest =
        Digest::try_from(descriptor.digest()).map_err(|source| ArchiveError::Manifest {
            path: "index.json".to_string(),
            source: source.into(),
        })?;
    let path = blob_path(&digest);
    let nested = manifest::parse_index(seen.bytes(&path, "index.json")?, Some(&media_type))
        .map_err(|source| ArchiveError::Manifest {
            path: path.clone(),
            source,
        })?;
    let present = |d: &&Descriptor| {
        Digest::try_from(d.digest()).is_ok_and(|d| seen.files.contains_key(&blob_path(&d)))
            && media::is_manifest(d.media_type().as_ref())
    };
    let native = manifest::select_platform(&nested, "linux", host_architecture(), None)
        .into_iter()
        .find(present);
    native
        .or_else(|| nested.manifests().iter().find(present))
        .cloned()
        .ok_or(ArchiveError::NoManifestInIndex { path })
}

fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn read_oci_image(
    seen: &mut Seen,
    descriptor: &Descriptor,
    sink: &mut dyn BlobSink,
) -> Result<LoadedImage, ArchiveError> {
    let manifest_digest =
        Digest::try_from(descriptor.digest()).map_err(|source| ArchiveError::Manifest {
            path: "index.json".to_string(),
            source: source.into(),
        })?;
    let manifest_path = blob_path(&manifest_digest);
    let descriptor_type = descriptor.media_type().to_string();
    check_size(seen, &manifest_path, "index.json", descriptor.size())?;
    let bytes = seen.bytes(&manifest_path, "index.json")?.to_vec();
    let parsed =
        manifest::parse_manifest(&bytes, Some(&descriptor_type)).map_err(
            |source| match source {
                manifest::ManifestError::UnknownLayerMediaType { media_type, .. } => {
                    ArchiveError::UnknownMediaType {
                        path: manifest_path.clone(),
                        media_type,
                    }
                }
                source => ArchiveError::Manifest {
                    path: manifest_path.clone(),
                    source,
                },
            },
        )?;
    let media_type = manifest::sniff_media_type(&bytes).unwrap_or(descriptor_type);
    seen.ensure_ingested(&manifest_path, "index.json", sink)?;

    let manifest_error = |source| ArchiveError::Manifest {
        path: manifest_path.clone(),
        source,
    };
    let (config_digest, config_size) = manifest::config_of(&parsed).map_err(manifest_error)?;
    let config_path = blob_path(&config_digest);
    check_size(seen, &config_path, &manifest_path, config_size)?;
    let config = parse_config(seen, &config_path)?;
    let diff_ids = diff_ids(&config, &config_path)?;
    seen.ensure_ingested(&config_path, &manifest_path, sink)?;

    let layers = manifest::layers(&parsed).map_err(manifest_error)?;
    if layers.len() != diff_ids.len() {
        return Err(ArchiveError::LayerCountMismatch {
            path: manifest_path,
            layers: layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let path = blob_path(&layer.digest);
        check_size(seen, &path, &manifest_path, layer.size)?;
        seen.ensure_ingested(&path, &manifest_path, sink)?;
        if layer.compression == LayerCompression::None && layer.digest != *diff_id {
            return Err(ArchiveError::DiffIdMismatch {
                path,
                expected: *diff_id,
                actual: layer.digest,
            });
        }
    }
    Ok(LoadedImage {
        refs: Vec::new(),
        bare_tags: Vec::new(),
        manifest: bytes,
        manifest_digest,
        manifest_media_type: media_type,
        config_digest,
    })
}

fn check_size(
    seen: &Seen,
    path: &str,
    referenced_by: &str,
    expected: u64,
) -> Result<(), ArchiveError> {
    let (key, info) = seen.file(path, referenced_by)?;
    if info.size != expected {
        return Err(ArchiveError::SizeMismatch {
            path: key.to_string(),
            referenced_by: referenced_by.to_string(),
            expected,
            actual: info.size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_inside_the_archive() {
        for (raw, expected) in [
            ("manifest.json", "manifest.json"),
            ("./manifest.json", "manifest.json"),
            ("/blobs//sha256/abc", "blobs/sha256/abc"),
            ("a/b/../c", "a/c"),
            ("a/./b/", "a/b"),
        ] {
            assert_eq!(normalize_path(raw).unwrap(), expected);
        }
        for bad in ["../x", "a/../../x"] {
            assert!(matches!(
                normalize_path(bad),
                Err(ArchiveError::UnsafePath { .. })
            ));
        }
    }

    #[test]
    fn metadata_files() {
        assert!(is_docker_metadata("manifest.json"));
        assert!(is_docker_metadata("repositories"));
        assert!(is_docker_metadata("0123/json"));
        assert!(is_docker_metadata("0123/VERSION"));
        assert!(!is_docker_metadata("0123/layer.tar"));
        assert!(!is_docker_metadata("blobs/sha256/json"));
        assert!(!is_docker_metadata("abc.json"));
    }

    #[test]
    fn json_sniffing() {
        assert!(looks_like_json(b"{\"a\":1}"));
        assert!(looks_like_json(b"\n [1]"));
        assert!(!looks_like_json(b"\x1f\x8b"));
        let mut tar_named_brace = vec![0u8; 512];
        tar_named_brace[0] = b'{';
        tar_named_brace[257..262].copy_from_slice(b"ustar");
        assert!(!looks_like_json(&tar_named_brace));
    }
}
