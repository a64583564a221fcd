//! Resolving what one pass over an archive saw into images: docker's legacy layout (a Docker
//! v2s2 manifest is synthesized over the layer tars) or an OCI layout (plain, or inside Docker
//! 25+'s dual layout, whose `manifest.json` then only adds `RepoTags`).

use serde::Deserialize;

use super::read::Seen;
use super::{ArchiveError, BlobSink, LoadedImage, blob_path};
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::manifest::{self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ManifestFormat};
use crate::media::{self, LayerCompression};
use crate::oci::image::Descriptor;
use crate::reference::{Reference, is_tag};

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

pub(super) fn resolve(
    mut seen: Seen,
    sink: &mut dyn BlobSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
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
    let native = manifest::select_platform(&nested, "linux", manifest::host_platform().1, None)
        .into_iter()
        .find(present);
    native
        .or_else(|| nested.manifests().iter().find(present))
        .cloned()
        .ok_or(ArchiveError::NoManifestInIndex { path })
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
