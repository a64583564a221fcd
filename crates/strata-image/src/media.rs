//! Media types of the OCI image spec and of Docker's image manifest v2 schema 2, and the
//! compression a layer media type implies.
//!
//! Loading accepts every layer type either spec defines, including the deprecated OCI
//! `nondistributable` variants and Docker's foreign layers; strata never emits those. A media
//! type that is not a layer is a typed error, never a guess.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Deprecated OCI nondistributable layers: accepted, never emitted.
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The empty descriptor's type (artifacts).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The `oci-layout` file's type.
pub const OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";

/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (what `docker save`'s legacy layout holds).
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign (Windows base) gzip layer, fetched from its `urls`.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker zstd layer (moby accepts it; rarely seen).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// How a layer blob is compressed (serialized as `none`, `gzip`, `zstd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

/// A media type where a layer was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown layer media type {media_type:?}")]
pub struct UnknownMediaType {
    pub media_type: String,
}

impl LayerCompression {
    /// The name BuildKit's `compression=` option uses (`uncompressed` for none).
    pub fn name(self) -> &'static str {
        match self {
            LayerCompression::None => "uncompressed",
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }

    /// The compression of a layer of `media_type`.
    pub fn from_media_type(media_type: &str) -> Result<LayerCompression, UnknownMediaType> {
        match media_type {
            OCI_LAYER | OCI_LAYER_NONDISTRIBUTABLE | DOCKER_LAYER => Ok(LayerCompression::None),
            OCI_LAYER_GZIP
            | OCI_LAYER_NONDISTRIBUTABLE_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER_GZIP => Ok(LayerCompression::Gzip),
            OCI_LAYER_ZSTD | OCI_LAYER_NONDISTRIBUTABLE_ZSTD | DOCKER_LAYER_ZSTD => {
                Ok(LayerCompression::Zstd)
            }
            other => Err(UnknownMediaType {
                media_type: other.to_string(),
            }),
        }
    }

    /// The OCI layer media type strata emits for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            LayerCompression::None => OCI_LAYER,
            LayerCompression::Gzip => OCI_LAYER_GZIP,
            LayerCompression::Zstd => OCI_LAYER_ZSTD,
        }
    }

    /// The Docker v2s2 layer media type for this compression.
    pub fn docker_media_type(self) -> &'static str {
        match self {
            LayerCompression::None => DOCKER_LAYER,
            LayerCompression::Gzip => DOCKER_LAYER_GZIP,
            LayerCompression::Zstd => DOCKER_LAYER_ZSTD,
        }
    }

    /// Detects the compression of a stream from its first bytes (gzip `1f 8b`, zstd
    /// `28 b5 2f fd`); anything else is taken as an uncompressed tar.
    pub fn detect(magic: &[u8]) -> LayerCompression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            LayerCompression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            LayerCompression::Zstd
        } else {
            LayerCompression::None
        }
    }
}

/// Whether `media_type` is a layer (of any compression, distributable or not).
pub fn is_layer(media_type: &str) -> bool {
    LayerCompression::from_media_type(media_type).is_ok()
}

/// Whether `media_type` is a single-image manifest (OCI or Docker v2s2).
pub fn is_manifest(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

/// Whether `media_type` is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Whether `media_type` is an image config (OCI or Docker).
pub fn is_config(media_type: &str) -> bool {
    matches!(media_type, OCI_CONFIG | DOCKER_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_compression_from_media_type() {
        let table = [
            (OCI_LAYER, LayerCompression::None),
            (OCI_LAYER_GZIP, LayerCompression::Gzip),
            (OCI_LAYER_ZSTD, LayerCompression::Zstd),
            (OCI_LAYER_NONDISTRIBUTABLE, LayerCompression::None),
            (OCI_LAYER_NONDISTRIBUTABLE_GZIP, LayerCompression::Gzip),
            (OCI_LAYER_NONDISTRIBUTABLE_ZSTD, LayerCompression::Zstd),
            (DOCKER_LAYER, LayerCompression::None),
            (DOCKER_LAYER_GZIP, LayerCompression::Gzip),
            (DOCKER_FOREIGN_LAYER_GZIP, LayerCompression::Gzip),
            (DOCKER_LAYER_ZSTD, LayerCompression::Zstd),
        ];
        for (media_type, compression) in table {
            assert_eq!(
                LayerCompression::from_media_type(media_type),
                Ok(compression),
                "{media_type}"
            );
            assert!(is_layer(media_type));
        }
    }

    #[test]
    fn unknown_media_types_are_typed_errors() {
        for media_type in [
            "",
            OCI_MANIFEST,
            OCI_CONFIG,
            DOCKER_CONFIG,
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "application/octet-stream",
        ] {
            let err = LayerCompression::from_media_type(media_type).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("unknown layer media type {media_type:?}")
            );
        }
    }

    #[test]
    fn emitted_media_types_round_trip() {
        for c in [
            LayerCompression::None,
            LayerCompression::Gzip,
            LayerCompression::Zstd,
        ] {
            assert_eq!(LayerCompression::from_media_type(c.oci_media_type()), Ok(c));
            assert_eq!(
                LayerCompression::from_media_type(c.docker_media_type()),
                Ok(c)
            );
        }
    }

    #[test]
    fn detects_compression_by_magic() {
        assert_eq!(
            LayerCompression::detect(&[0x1f, 0x8b, 8]),
            LayerCompression::Gzip
        );
        assert_eq!(
            LayerCompression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            LayerCompression::Zstd
        );
        assert_eq!(LayerCompression::detect(b"etc/\0"), LayerCompression::None);
        assert_eq!(LayerCompression::detect(&[]), LayerCompression::None);
    }

    #[test]
    fn kinds() {
        assert!(is_manifest(OCI_MANIFEST) && is_manifest(DOCKER_MANIFEST));
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(is_config(OCI_CONFIG) && is_config(DOCKER_CONFIG));
        assert!(!is_manifest(OCI_INDEX) && !is_layer(OCI_INDEX));
    }
}
