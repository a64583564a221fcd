//! Writing docker's dual archive layout (OCI image layout + `manifest.json` + `repositories`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use serde_json::json;

use super::{ArchiveError, BlobSource, HashingReader, blob_path};
use crate::config::canonical_json;
use crate::digest::Digest;
use crate::manifest::{self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use crate::media;
use crate::reference::Reference;

/// Manifests and configs are read whole; anything larger is not one.
const JSON_LIMIT: u64 = 16 << 20;

/// One image to save: its manifest and the names to give it (tags; digests are dropped, as
/// `docker save` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    pub manifest_digest: Digest,
    pub refs: Vec<Reference>,
}

struct Prepared {
    manifest_digest: Digest,
    manifest_size: u64,
    manifest_media_type: String,
    config_digest: Digest,
    layers: Vec<Digest>,
    tags: BTreeSet<Reference>,
}

/// Writes `images` as a docker-loadable archive: `blobs/sha256/*` (sorted by digest), then
/// `index.json`, `manifest.json`, `oci-layout` and `repositories`. Output depends only on the
/// set of images and tags, never on argument order or time. Blobs stream from `source` and are
/// verified as they pass.
pub fn write_docker_archive(
    out: impl Write,
    images: &[SaveImage],
    source: &dyn BlobSource,
) -> Result<(), ArchiveError> {
    // Merge duplicates and order by manifest digest: the archive is a function of the set.
    let mut wanted: BTreeMap<Digest, BTreeSet<Reference>> = BTreeMap::new();
    for image in images {
        let tags = wanted.entry(image.manifest_digest).or_default();
        tags.extend(image.refs.iter().filter_map(Reference::without_digest));
    }
    let mut prepared = Vec::with_capacity(wanted.len());
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for (manifest_digest, tags) in wanted {
        let bytes = read_small(source, &manifest_digest)?;
        let path = blob_path(&manifest_digest);
        let media_type =
            manifest::sniff_media_type(&bytes).unwrap_or_else(|| media::OCI_MANIFEST.to_string());
        let parsed = manifest::parse_manifest(&bytes, Some(&media_type)).map_err(|source| {
            ArchiveError::Manifest {
                path: path.clone(),
                source,
            }
        })?;
        let manifest_error = |source| ArchiveError::Manifest {
            path: path.clone(),
            source,
        };
        let (config_digest, config_size) = manifest::config_of(&parsed).map_err(manifest_error)?;
        let layers = manifest::layers(&parsed).map_err(manifest_error)?;
        blobs.insert(manifest_digest, bytes.len() as u64);
        blobs.insert(config_digest, config_size);
        for layer in &layers {
            blobs.insert(layer.digest, layer.size);
        }
        prepared.push(Prepared {
            manifest_digest,
            manifest_size: bytes.len() as u64,
            manifest_media_type: media_type,
            config_digest,
            layers: layers.iter().map(|l| l.digest).collect(),
            tags,
        });
    }

    let mut tar = tar::Builder::new(out);
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;
    for (digest, size) in &blobs {
        append_blob(&mut tar, source, digest, *size)?;
    }
    append_file(&mut tar, "index.json", &index_json(&prepared))?;
    append_file(&mut tar, "manifest.json", &manifest_json(&prepared))?;
    append_file(
        &mut tar,
        "oci-layout",
        &canonical_json(&json!({"imageLayoutVersion": "1.0.0"})),
    )?;
    if let Some(repositories) = repositories_json(&prepared) {
        append_file(&mut tar, "repositories", &repositories)?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|source| ArchiveError::Write { source })
}

/// `index.json`: one manifest descriptor per tag (named as Docker 25 names them), or one
/// unnamed descriptor for an untagged image.
fn index_json(images: &[Prepared]) -> Vec<u8> {
    let mut manifests = Vec::new();
    for image in images {
        let descriptor = manifest::descriptor(
            &image.manifest_media_type,
            image.manifest_digest,
            image.manifest_size,
        );
        if image.tags.is_empty() {
            manifests.push(descriptor.clone());
        }
        for tag in &image.tags {
            let mut named = descriptor.clone();
            manifest::annotate(
                &mut named,
                &[
                    (ANNOTATION_CONTAINERD_NAME, &tag.to_string()),
                    (ANNOTATION_REF_NAME, tag.tag().unwrap_or_default()),
                ],
            );
            manifests.push(named);
        }
    }
    manifest::to_bytes(&manifest::build_index(
        manifest::ManifestFormat::Oci,
        manifests,
    ))
}

/// `manifest.json`, read by every docker version's loader: familiar `RepoTags` (null when
/// untagged, as docker writes it) and blob paths.
fn manifest_json(images: &[Prepared]) -> Vec<u8> {
    let entries: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            let tags: Vec<String> = image.tags.iter().map(Reference::familiar).collect();
            json!({
                "Config": blob_path(&image.config_digest),
                "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
                "Layers": image.layers.iter().map(blob_path).collect::<Vec<_>>(),
            })
        })
        .collect();
    canonical_json(&serde_json::Value::Array(entries))
}

/// `repositories`: `{familiar name: {tag: top layer}}`, for loaders predating manifest.json.
fn repositories_json(images: &[Prepared]) -> Option<Vec<u8>> {
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let Some(top) = image.layers.last() else {
            continue;
        };
        for tag in &image.tags {
            if let Some(t) = tag.tag() {
                repos
                    .entry(tag.familiar_name())
                    .or_default()
                    .insert(t.to_string(), top.hex());
            }
        }
    }
    if repos.is_empty() {
        return None;
    }
    serde_json::to_value(repos).ok().map(|v| canonical_json(&v))
}

fn header(
    path: &str,
    size: u64,
    mode: u32,
    kind: tar::EntryType,
) -> Result<tar::Header, ArchiveError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .map_err(|source| ArchiveError::Write { source })?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h.set_cksum();
    Ok(h)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<(), ArchiveError> {
    let h = header(path, 0, 0o755, tar::EntryType::Directory)?;
    tar.append(&h, io::empty())
        .map_err(|source| ArchiveError::Write { source })
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), ArchiveError> {
    let h = header(path, bytes.len() as u64, 0o644, tar::EntryType::Regular)?;
    tar.append(&h, bytes)
        .map_err(|source| ArchiveError::Write { source })
}

/// Streams one blob into the archive, verifying its size up front and its digest as it passes.
fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    source: &dyn BlobSource,
    digest: &Digest,
    expected_size: u64,
) -> Result<(), ArchiveError> {
    let path = blob_path(digest);
    let (reader, size) = source
        .open_blob(digest)
        .map_err(|source| ArchiveError::Source {
            digest: *digest,
            source,
        })?;
    if size != expected_size {
        return Err(ArchiveError::SizeMismatch {
            path,
            referenced_by: "its manifest".to_string(),
            expected: expected_size,
            actual: size,
        });
    }
    let h = header(&path, size, 0o644, tar::EntryType::Regular)?;
    // Never pad past what the header promised: a short or long blob is an error, not a
    // silently corrupt archive.
    let mut hashing = HashingReader::new(reader.take(size));
    let appended = tar.append(&h, &mut hashing);
    let (actual, read, failure) = hashing.finish();
    // A failing read of the blob surfaces through `append`; report it as the source's.
    if let Some(source) = failure {
        return Err(ArchiveError::Source {
            digest: *digest,
            source: source.into(),
        });
    }
    appended.map_err(|source| ArchiveError::Write { source })?;
    if read != size {
        return Err(ArchiveError::SizeMismatch {
            path,
            referenced_by: "the blob store".to_string(),
            expected: size,
            actual: read,
        });
    }
    if actual != *digest {
        return Err(ArchiveError::DigestMismatch {
            path,
            expected: *digest,
            actual,
        });
    }
    Ok(())
}

/// Reads a manifest or config whole, verifying its digest.
fn read_small(source: &dyn BlobSource, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
    let (reader, size) = source
        .open_blob(digest)
        .map_err(|source| ArchiveError::Source {
            digest: *digest,
            source,
        })?;
    if size > JSON_LIMIT {
        return Err(ArchiveError::TooLarge {
            path: blob_path(digest),
            what: "a manifest",
            size,
            limit: JSON_LIMIT,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    reader
        .take(JSON_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ArchiveError::Source {
            digest: *digest,
            source: source.into(),
        })?;
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(ArchiveError::DigestMismatch {
            path: blob_path(digest),
            expected: *digest,
            actual,
        });
    }
    Ok(bytes)
}
