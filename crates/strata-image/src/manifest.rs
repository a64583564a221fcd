//! Manifests and indexes, OCI and Docker v2 schema 2, on oci-spec's types.
//!
//! oci-spec's `ImageManifest` and `ImageIndex` hold Docker media types as `MediaType::Other`, so
//! one type serves both formats; [`ManifestFormat`] picks the media types when strata builds a
//! manifest. Parsing checks what strata relies on (schema version 2, a manifest media type, sha256
//! digests, known layer types) and names the offending descriptor when something is off.

use std::collections::HashMap;

use crate::config::to_canonical_vec;
use crate::digest::{Digest, DigestError};
use crate::media::{self, LayerCompression};
use crate::oci::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

/// The manifest family of an image: OCI, or Docker v2 schema 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestFormat {
    Oci,
    Docker,
}

impl ManifestFormat {
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_MANIFEST,
            ManifestFormat::Docker => media::DOCKER_MANIFEST,
        }
    }

    pub fn index_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_INDEX,
            ManifestFormat::Docker => media::DOCKER_MANIFEST_LIST,
        }
    }

    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_CONFIG,
            ManifestFormat::Docker => media::DOCKER_CONFIG,
        }
    }

    pub fn layer_media_type(self, compression: LayerCompression) -> &'static str {
        match self {
            ManifestFormat::Oci => compression.oci_media_type(),
            ManifestFormat::Docker => compression.docker_media_type(),
        }
    }

    /// The format of a manifest or index media type.
    pub fn of_media_type(media_type: &str) -> Option<ManifestFormat> {
        match media_type {
            media::OCI_MANIFEST | media::OCI_INDEX => Some(ManifestFormat::Oci),
            media::DOCKER_MANIFEST | media::DOCKER_MANIFEST_LIST => Some(ManifestFormat::Docker),
            _ => None,
        }
    }
}

/// Why bytes are not a usable manifest or index.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid manifest: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported manifest schema version {found} (expected 2)")]
    SchemaVersion { found: u32 },
    #[error("unsupported manifest media type {media_type:?}")]
    NotAManifest { media_type: String },
    #[error("unsupported index media type {media_type:?}")]
    NotAnIndex { media_type: String },
    #[error("unknown layer media type {media_type:?} for layer {digest}")]
    UnknownLayerMediaType { digest: String, media_type: String },
    #[error("unsupported config media type {media_type:?} for config {digest}")]
    UnknownConfigMediaType { digest: String, media_type: String },
    #[error("descriptor digest: {0}")]
    Digest(#[from] DigestError),
}

/// A layer as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub compression: LayerCompression,
}

/// A descriptor of `media_type` for a blob.
pub fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor::new(MediaType::from(media_type), size, digest)
}

/// A manifest of `format` for a config and layers (bottom first).
pub fn build_manifest(
    format: ManifestFormat,
    config: Descriptor,
    layers: Vec<Descriptor>,
) -> ImageManifest {
    // Assembled from a parsed skeleton: oci-spec has no `Default` for manifests and its
    // builder's error path cannot trigger once config and layers are given.
    let mut manifest: ImageManifest = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "config": config,
        "layers": layers,
    }))
    .unwrap_or_else(|_| unreachable!("a manifest built from typed descriptors is valid"));
    manifest.set_media_type(Some(MediaType::from(format.manifest_media_type())));
    manifest
}

/// An index of `format` listing `manifests`.
pub fn build_index(format: ManifestFormat, manifests: Vec<Descriptor>) -> ImageIndex {
    let mut index = ImageIndex::default();
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::from(format.index_media_type())));
    index.set_manifests(manifests);
    index
}

/// Canonical JSON bytes of a manifest, index or descriptor (sorted keys, no whitespace).
pub fn to_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    to_canonical_vec(value)
}

/// The `mediaType` field of a manifest or index document, if any.
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Sniff {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Sniff>(bytes).ok()?.media_type
}

/// Parses a single-image manifest. `descriptor_media_type` is the type the referring
/// descriptor gave (used when the document itself has no `mediaType`, which OCI allows).
pub fn parse_manifest(
    bytes: &[u8],
    descriptor_media_type: Option<&str>,
) -> Result<ImageManifest, ManifestError> {
    let manifest: ImageManifest = serde_json::from_slice(bytes)?;
    if manifest.schema_version() != 2 {
        return Err(ManifestError::SchemaVersion {
            found: manifest.schema_version(),
        });
    }
    let media_type = manifest
        .media_type()
        .as_ref()
        .map(|m| m.to_string())
        .or(descriptor_media_type.map(str::to_string))
        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
    if !media::is_manifest(&media_type) {
        return Err(ManifestError::NotAManifest { media_type });
    }
    let config = manifest.config();
    let config_type = config.media_type().to_string();
    if !media::is_config(&config_type) {
        return Err(ManifestError::UnknownConfigMediaType {
            digest: config.digest().to_string(),
            media_type: config_type,
        });
    }
    layers(&manifest)?;
    Digest::try_from(config.digest())?;
    Ok(manifest)
}

/// Parses an index or Docker manifest list.
pub fn parse_index(
    bytes: &[u8],
    descriptor_media_type: Option<&str>,
) -> Result<ImageIndex, ManifestError> {
    let index: ImageIndex = serde_json::from_slice(bytes)?;
    if index.schema_version() != 2 {
        return Err(ManifestError::SchemaVersion {
            found: index.schema_version(),
        });
    }
    let media_type = index
        .media_type()
        .as_ref()
        .map(|m| m.to_string())
        .or(descriptor_media_type.map(str::to_string))
        .unwrap_or_else(|| media::OCI_INDEX.to_string());
    if !media::is_index(&media_type) {
        return Err(ManifestError::NotAnIndex { media_type });
    }
    Ok(index)
}

/// The config digest and size of a manifest.
pub fn config_of(manifest: &ImageManifest) -> Result<(Digest, u64), ManifestError> {
    let config = manifest.config();
    Ok((Digest::try_from(config.digest())?, config.size()))
}

/// The layers of a manifest, bottom first, with their compression; an unknown layer media type
/// is an error naming the layer.
pub fn layers(manifest: &ImageManifest) -> Result<Vec<LayerDescriptor>, ManifestError> {
    manifest
        .layers()
        .iter()
        .map(|l| {
            let media_type = l.media_type().to_string();
            let compression = LayerCompression::from_media_type(&media_type).map_err(|_| {
                ManifestError::UnknownLayerMediaType {
                    digest: l.digest().to_string(),
                    media_type: media_type.clone(),
                }
            })?;
            Ok(LayerDescriptor {
                digest: Digest::try_from(l.digest())?,
                size: l.size(),
                media_type,
                compression,
            })
        })
        .collect()
}

/// A descriptor's annotation.
pub fn annotation<'a>(descriptor: &'a Descriptor, key: &str) -> Option<&'a str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Sets (or adds) annotations on a descriptor.
pub fn annotate(descriptor: &mut Descriptor, entries: &[(&str, &str)]) {
    let mut annotations = descriptor.annotations().clone().unwrap_or_default();
    for (k, v) in entries {
        annotations.insert((*k).to_string(), (*v).to_string());
    }
    descriptor.set_annotations(Some(annotations));
}

/// The annotation keys image layouts use to name an image.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and Docker 25's) full image name annotation.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// This host's platform in OCI's words (`os`, `architecture`): what an index entry must say for
/// this machine to run it.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// The manifests of an index for `os`/`architecture` (and `variant` when given); entries
/// without a platform match nothing.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    os: &str,
    architecture: &str,
    variant: Option<&str>,
) -> Vec<&'a Descriptor> {
    index
        .manifests()
        .iter()
        .filter(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == os
                    && p.architecture().to_string() == architecture
                    && variant.is_none_or(|v| p.variant().as_deref() == Some(v))
            })
        })
        .collect()
}

/// Annotations map type, for callers building descriptors.
pub type Annotations = HashMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_MANIFEST: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1469,
      "digest": "sha256:c639f9afbf5f1c3e565bbbb4b12a0725d537c61a2d7cc0c37ea791c3710b5495"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 772788,
         "digest": "sha256:d220f7cc50e7d97833e02abfbca332f86dc8b89981bfcb9a40fbdbf443d5dbbf"
      }
   ]
}"#;

    #[test]
    fn docker_manifest_round_trips_through_oci_spec_types() {
        let m = parse_manifest(DOCKER_MANIFEST.as_bytes(), None).unwrap();
        assert_eq!(
            m.media_type().as_ref().map(|t| t.to_string()).as_deref(),
            Some(media::DOCKER_MANIFEST)
        );
        assert_eq!(m.config().media_type().to_string(), media::DOCKER_CONFIG);
        let l = layers(&m).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].compression, LayerCompression::Gzip);
        assert_eq!(l[0].media_type, media::DOCKER_LAYER_GZIP);
        let bytes = to_bytes(&m);
        let again = parse_manifest(&bytes, None).unwrap();
        assert_eq!(again, m);
        assert_eq!(to_bytes(&again), bytes);
        assert_eq!(
            sniff_media_type(&bytes).as_deref(),
            Some(media::DOCKER_MANIFEST)
        );
    }

    #[test]
    fn build_manifests_of_both_formats() {
        let config = Digest::of(b"config");
        let layer = Digest::of(b"layer");
        for format in [ManifestFormat::Oci, ManifestFormat::Docker] {
            let m = build_manifest(
                format,
                descriptor(format.config_media_type(), config, 6),
                vec![descriptor(
                    format.layer_media_type(LayerCompression::Gzip),
                    layer,
                    5,
                )],
            );
            let bytes = to_bytes(&m);
            let parsed = parse_manifest(&bytes, None).unwrap();
            assert_eq!(config_of(&parsed).unwrap(), (config, 6));
            assert_eq!(layers(&parsed).unwrap()[0].digest, layer);
            assert_eq!(
                ManifestFormat::of_media_type(&sniff_media_type(&bytes).unwrap()),
                Some(format)
            );
        }
        let oci = to_bytes(&build_manifest(
            ManifestFormat::Oci,
            descriptor(media::OCI_CONFIG, config, 6),
            vec![],
        ));
        assert_eq!(
            String::from_utf8(oci).unwrap(),
            format!(
                r#"{{"config":{{"digest":"{config}","mediaType":"application/vnd.oci.image.config.v1+json","size":6}},"layers":[],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
            )
        );
    }

    #[test]
    fn bad_manifests_name_the_problem() {
        let unknown_layer = DOCKER_MANIFEST.replace(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/x-bogus",
        );
        assert_eq!(
            parse_manifest(unknown_layer.as_bytes(), None)
                .unwrap_err()
                .to_string(),
            "unknown layer media type \"application/x-bogus\" for layer sha256:d220f7cc50e7d97833e02abfbca332f86dc8b89981bfcb9a40fbdbf443d5dbbf"
        );
        let v1 = DOCKER_MANIFEST.replace("\"schemaVersion\": 2", "\"schemaVersion\": 1");
        assert_eq!(
            parse_manifest(v1.as_bytes(), None).unwrap_err().to_string(),
            "unsupported manifest schema version 1 (expected 2)"
        );
        let list = DOCKER_MANIFEST.replace(media::DOCKER_MANIFEST, media::DOCKER_MANIFEST_LIST);
        assert!(matches!(
            parse_manifest(list.as_bytes(), None),
            Err(ManifestError::NotAManifest { .. })
        ));
        assert!(matches!(
            parse_manifest(b"{", None),
            Err(ManifestError::Json(_))
        ));
    }

    #[test]
    fn index_platform_selection() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":2,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":3,"digest":"sha256:5dc65ad32f67be7348344d8e7c6aafef00ab808e91ca036bca5305ede1aaf847","annotations":{"vnd.docker.reference.type":"attestation-manifest"},"platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        let parsed = parse_index(index.as_bytes(), None).unwrap();
        let amd64 = select_platform(&parsed, "linux", "amd64", None);
        assert_eq!(amd64.len(), 1);
        assert_eq!(amd64[0].size(), 2);
        assert_eq!(
            select_platform(&parsed, "linux", "arm64", Some("v8")).len(),
            1
        );
        assert!(select_platform(&parsed, "linux", "arm64", Some("v7")).is_empty());
        let mislabelled = index.replacen(media::OCI_INDEX, media::DOCKER_MANIFEST, 1);
        assert_eq!(
            parse_index(mislabelled.as_bytes(), None)
                .unwrap_err()
                .to_string(),
            "unsupported index media type \"application/vnd.docker.distribution.manifest.v2+json\""
        );
    }

    #[test]
    fn annotations() {
        let mut d = descriptor(media::OCI_MANIFEST, Digest::of(b""), 0);
        assert_eq!(annotation(&d, ANNOTATION_REF_NAME), None);
        annotate(
            &mut d,
            &[
                (ANNOTATION_REF_NAME, "latest"),
                (
                    ANNOTATION_CONTAINERD_NAME,
                    "docker.io/library/busybox:latest",
                ),
            ],
        );
        assert_eq!(annotation(&d, ANNOTATION_REF_NAME), Some("latest"));
        assert_eq!(
            annotation(&d, ANNOTATION_CONTAINERD_NAME),
            Some("docker.io/library/busybox:latest")
        );
    }
}
