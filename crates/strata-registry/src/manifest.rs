//! What a registry returns for `GET /v2/<name>/manifests/<ref>`: an image manifest or an
//! index (manifest list), told apart by media type, and the choice of one platform's manifest
//! from an index the way docker chooses it. Pure: bytes in, decisions out.

use std::fmt;
use std::str::FromStr;

use strata_image::Digest;
use strata_image::media::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use strata_image::oci::image::{Descriptor, ImageIndex, ImageManifest};

use crate::error::{RegistryError, Result};

/// The `Accept` header of a manifest request: every manifest and index type strata reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest strata accepts (as containerd and the distribution registry do).
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// A manifest as fetched: its exact bytes (the digest covers them), media type and digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// A parsed manifest or index.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

#[derive(serde::Deserialize)]
struct MediaTypeProbe {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// The effective media type: the `Content-Type` a registry sent unless it is missing or
/// generic, then the document's own `mediaType` (or its shape, for OCI documents without one).
pub fn effective_media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    let header = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
    match header {
        Some(h) if is_manifest_type(&h) || h.contains("schema1") || h.contains("prettyjws") => h,
        _ => match serde_json::from_slice::<MediaTypeProbe>(bytes) {
            Ok(MediaTypeProbe {
                media_type: Some(m),
                ..
            }) => m,
            Ok(MediaTypeProbe {
                manifests: Some(_), ..
            }) => OCI_INDEX.to_string(),
            _ => OCI_MANIFEST.to_string(),
        },
    }
}

fn is_manifest_type(media_type: &str) -> bool {
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    ]
    .contains(&media_type)
}

impl RawManifest {
    /// Parses the bytes according to the media type; `reference` names it in errors.
    pub fn parse(&self, reference: &str) -> Result<Manifest> {
        let malformed = |source| RegistryError::MalformedManifest {
            reference: reference.to_string(),
            media_type: self.media_type.clone(),
            source,
        };
        match self.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let manifest: ImageManifest =
                    serde_json::from_slice(&self.bytes).map_err(malformed)?;
                Ok(Manifest::Image(Box::new(manifest)))
            }
            OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(Manifest::Index(Box::new(
                serde_json::from_slice(&self.bytes).map_err(malformed)?,
            ))),
            other => Err(RegistryError::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: other.to_string(),
            }),
        }
    }
}

/// The digest of a descriptor as strata's [`Digest`], or an error naming the manifest.
pub fn descriptor_digest(descriptor: &Descriptor, reference: &str) -> Result<Digest> {
    Digest::try_from(descriptor.digest()).map_err(|_| RegistryError::InvalidDescriptorDigest {
        reference: reference.to_string(),
        digest: descriptor.digest().to_string(),
    })
}

/// An `os/architecture[/variant]` platform, normalized as docker normalizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform images are pulled for by default: strata runs linux/amd64 containers.
    pub fn default_linux() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// Normalizes architecture aliases (`x86_64`, `aarch64`, `armhf`…) and fills in the
    /// default variant docker assumes (`arm64` → `v8`, `arm` → `v7`).
    pub fn normalized(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, implied_variant) = match architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), None),
            "aarch64" | "arm64" => ("arm64".to_string(), None),
            "armhf" => ("arm".to_string(), Some("v7")),
            "armel" => ("arm".to_string(), Some("v6")),
            "i386" | "i686" | "386" => ("386".to_string(), None),
            other => (other.to_string(), None),
        };
        let mut variant = variant
            .filter(|v| !v.is_empty())
            .map(str::to_ascii_lowercase)
            .or(implied_variant.map(Into::into));
        variant = match (architecture.as_str(), variant.as_deref()) {
            ("arm64", None | Some("8")) => Some("v8".into()),
            ("arm", None | Some("7")) => Some("v7".into()),
            ("arm", Some(v @ ("5" | "6"))) => Some(format!("v{v}")),
            ("amd64", Some("v1")) => None,
            _ => variant,
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && match (&self.variant, &candidate.variant) {
                (Some(want), Some(have)) => want == have,
                // An unspecified variant accepts any (amd64 `v2`/`v3` images included).
                (None, _) => true,
                (Some(_), None) => false,
            }
    }
}

impl FromStr for Platform {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(RegistryError::InvalidPlatform(s.to_string()));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::normalized(os, arch, None)),
            [os, arch, variant] => Ok(Platform::normalized(os, arch, Some(variant))),
            _ => Err(RegistryError::InvalidPlatform(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn descriptor_platform(descriptor: &Descriptor) -> Option<Platform> {
    let p = descriptor.platform().as_ref()?;
    Some(Platform::normalized(
        &p.os().to_string(),
        &p.architecture().to_string(),
        p.variant().as_deref(),
    ))
}

/// Picks the manifest for `wanted` from an index: the first exact match, where an entry with
/// no variant is preferred when none was asked for. Attestation manifests (`unknown/unknown`)
/// never match.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
    reference: &str,
) -> Result<&'a Descriptor> {
    let candidates: Vec<(&Descriptor, Platform)> = index
        .manifests()
        .iter()
        .filter_map(|d| descriptor_platform(d).map(|p| (d, p)))
        .collect();
    let exact = candidates.iter().find(|(_, p)| p == wanted);
    let compatible = candidates.iter().find(|(_, p)| wanted.matches(p));
    if let Some((descriptor, _)) = exact.or(compatible) {
        return Ok(descriptor);
    }
    let available = candidates
        .iter()
        .map(|(_, p)| p.to_string())
        .collect::<Vec<_>>();
    Err(RegistryError::NoMatchingPlatform {
        reference: reference.to_string(),
        platform: wanted.to_string(),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut platform = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": format!("sha256:{:064x}", i + 1),
                    "size": 100,
                    "platform": platform,
                })
            })
            .collect();
        let doc =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        serde_json::from_value(doc).expect("valid index")
    }

    fn pick(idx: &ImageIndex, wanted: &str) -> Result<usize> {
        let platform: Platform = wanted.parse()?;
        let d = select_platform(idx, &platform, "test")?;
        let digest = descriptor_digest(d, "test")?;
        Ok(usize::from_str_radix(&digest.hex(), 16).unwrap_or(0))
    }

    #[test]
    fn platform_selection() {
        let multi = index(&[
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
            ("unknown", "unknown", None),
            ("windows", "amd64", None),
        ]);
        let cases = [
            ("linux/amd64", 4),
            ("linux/x86_64", 4),
            ("linux/arm64", 3),
            ("linux/arm64/v8", 3),
            ("linux/aarch64", 3),
            ("linux/arm", 2),
            ("linux/arm/v7", 2),
            ("linux/arm/v6", 1),
            ("windows/amd64", 6),
        ];
        for (wanted, expected) in cases {
            assert_eq!(pick(&multi, wanted).expect(wanted), expected, "{wanted}");
        }
    }

    #[test]
    fn missing_platform_lists_what_exists() {
        let multi = index(&[("linux", "arm64", None), ("linux", "amd64", None)]);
        let err = pick(&multi, "linux/s390x").expect_err("no s390x");
        assert_eq!(
            err.to_string(),
            "test: no manifest for platform linux/s390x (available: linux/arm64/v8, linux/amd64)"
        );
        let only_arm = index(&[("linux", "arm64", None)]);
        assert!(pick(&only_arm, "linux/amd64").is_err());
    }

    #[test]
    fn invalid_platforms() {
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn media_type_from_header_or_body() {
        let cases = [
            (Some(DOCKER_MANIFEST), br#"{}"#.as_slice(), DOCKER_MANIFEST),
            (
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b"{}",
                OCI_INDEX,
            ),
            (
                Some("application/json"),
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}"#,
                DOCKER_MANIFEST_LIST,
            ),
            (None, br#"{"schemaVersion":2,"manifests":[]}"#, OCI_INDEX),
            (None, br#"{"schemaVersion":2,"layers":[]}"#, OCI_MANIFEST),
        ];
        for (header, body, expected) in cases {
            assert_eq!(effective_media_type(header, body), expected, "{header:?}");
        }
    }

    #[test]
    fn schema1_is_refused_by_name() {
        let raw = RawManifest {
            bytes: b"{}".to_vec(),
            media_type: "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
            digest: Digest::of(b"{}"),
        };
        let err = raw.parse("x:1").expect_err("schema1");
        assert!(err.to_string().contains("unsupported media type"), "{err}");
    }

    #[test]
    fn malformed_json_is_a_precise_error() {
        let raw = RawManifest {
            bytes: b"{\"layers\": 3".to_vec(),
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(b""),
        };
        let err = raw.parse("x:1").expect_err("truncated json");
        assert!(
            err.to_string()
                .starts_with("manifest x:1: malformed application/vnd.oci.image.manifest.v1+json"),
            "{err}"
        );
    }
}
