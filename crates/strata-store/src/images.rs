//! The image index: `index.json` entries, one per tag, plus unnamed entries for untagged
//! ("dangling") images that must survive garbage collection.
//!
//! Tag names are the full normalized reference (`docker.io/library/busybox:1.35`); the store
//! treats them as opaque strings and leaves normalization to `strata_image::reference`.
//! Every change is a read-modify-write of `index.json` under the index lock, published by
//! atomic rename.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use strata_image::manifest::{ManifestFormat, build_manifest, descriptor, to_bytes};
use strata_image::oci::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use strata_image::{Digest, ImageConfig};

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::write_atomic;

/// The annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// One entry of `index.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    /// The full reference, or `None` for an untagged image.
    pub name: Option<String>,
    /// The manifest (or image index) digest.
    pub digest: Digest,
    pub descriptor: Descriptor,
}

/// An image manifest with its config, as stored.
#[derive(Debug, Clone)]
pub struct Image {
    /// The `index.json` entry's descriptor (without its name): what a new tag should point at.
    /// For a multi-platform entry it describes the image index, not `manifest_digest`.
    pub descriptor: Descriptor,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    /// The IMAGE ID, as docker shows it.
    pub config_digest: Digest,
    /// The config, parsed (docker's extensions kept).
    pub config: ImageConfig,
    /// The config exactly as stored (its digest is the IMAGE ID).
    pub config_bytes: Vec<u8>,
    /// Every tag of `index.json` that points at this manifest, sorted.
    pub names: Vec<String>,
}

/// What [`Store::tag`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOutcome {
    /// The manifest the name pointed at before, when it pointed elsewhere. If nothing else
    /// names it, it stays in the index as an untagged image, as docker keeps a dangling image.
    pub previous: Option<Digest>,
}

/// What [`Store::put_image`] wrote.
#[derive(Debug, Clone)]
pub struct PutImage {
    /// The config's digest: docker's IMAGE ID.
    pub config_digest: Digest,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest's descriptor, as the `index.json` entries point at it.
    pub manifest: Descriptor,
}

impl Store {
    /// Every `index.json` entry, tagged ones sorted by name first.
    pub fn images(&self) -> Result<Vec<ImageEntry>> {
        let index = read_index(&self.index_path())?;
        entries(&index, &self.index_path())
    }

    /// Points `name` (a full reference) at the manifest `descriptor`.
    pub fn tag(&self, name: &str, descriptor: Descriptor) -> Result<TagOutcome> {
        let digest = descriptor_digest(&descriptor, &self.index_path())?;
        self.update_index(|list| Ok(set_tag(list, name, &descriptor, digest)))
    }

    /// Removes the tag `name`; returns the descriptor it pointed at, if it existed.
    /// The image itself stays until garbage collection if nothing else names it.
    pub fn untag(&self, name: &str) -> Result<Option<Descriptor>> {
        self.update_index(|list| {
            let before = list.len();
            let mut removed = None;
            list.retain(|d| {
                if entry_name(d) == Some(name) {
                    removed = Some(d.clone());
                    false
                } else {
                    true
                }
            });
            debug_assert!(list.len() + usize::from(removed.is_some()) == before);
            Ok(removed)
        })
    }

    /// Writes an OCI image made here (build, commit, import): the config blob, a manifest over
    /// `layers`, and its `index.json` entries, one per name in `names` (full references), or one
    /// untagged entry when `names` is empty.
    pub fn put_image(
        &self,
        config_bytes: &[u8],
        layers: Vec<Descriptor>,
        names: &[String],
    ) -> Result<PutImage> {
        let format = ManifestFormat::Oci;
        let config_digest = self.put_blob(config_bytes)?;
        let config = descriptor(
            format.config_media_type(),
            config_digest,
            config_bytes.len() as u64,
        );
        let manifest_bytes = to_bytes(&build_manifest(format, config, layers));
        let manifest_digest = self.put_blob(&manifest_bytes)?;
        let manifest = descriptor(
            format.manifest_media_type(),
            manifest_digest,
            manifest_bytes.len() as u64,
        );
        if names.is_empty() {
            self.add_untagged(manifest.clone())?;
        }
        for name in names {
            self.tag(name, manifest.clone())?;
        }
        Ok(PutImage {
            config_digest,
            manifest_digest,
            manifest,
        })
    }

    /// Records an image without a name (docker's `<none>`), unless some entry already has it.
    pub fn add_untagged(&self, descriptor: Descriptor) -> Result<()> {
        let digest = descriptor_digest(&descriptor, &self.index_path())?;
        let path = self.index_path();
        self.update_index(|list| {
            for d in list.iter() {
                if descriptor_digest(d, &path)? == digest {
                    return Ok(());
                }
            }
            list.push(without_name(&descriptor));
            Ok(())
        })
    }

    /// Removes every entry (tagged or not) for the manifest `digest`; returns the removed names.
    pub fn remove_image(&self, digest: &Digest) -> Result<Vec<Option<String>>> {
        let path = self.index_path();
        self.update_index(|list| {
            let mut removed = Vec::new();
            let mut kept = Vec::with_capacity(list.len());
            for d in list.drain(..) {
                if descriptor_digest(&d, &path)? == *digest {
                    removed.push(entry_name(&d).map(str::to_owned));
                } else {
                    kept.push(d);
                }
            }
            *list = kept;
            Ok(removed)
        })
    }

    /// Loads the image an index entry points at. An image index entry resolves to its manifest
    /// for this host's platform.
    pub fn image(&self, digest: &Digest) -> Result<Image> {
        let entries = self.images()?;
        self.load_image(digest, &entries)
    }

    pub(crate) fn load_image(&self, digest: &Digest, entries: &[ImageEntry]) -> Result<Image> {
        let mut manifest_digest = *digest;
        let mut manifest_bytes = self.read_blob(&manifest_digest)?;
        let mut kind = media_type_of(&manifest_bytes);
        let descriptor = match entries.iter().find(|e| e.digest == *digest) {
            Some(e) => without_name(&e.descriptor),
            None => Descriptor::new(
                MediaType::from(kind.as_str()),
                manifest_bytes.len() as u64,
                *digest,
            ),
        };
        if is_index(&kind) {
            let path = self.blob_path(&manifest_digest);
            let index: ImageIndex =
                serde_json::from_slice(&manifest_bytes).map_err(|source| StoreError::Json {
                    what: "image index",
                    path: path.clone(),
                    source,
                })?;
            let (os, arch) = strata_image::manifest::host_platform();
            let chosen = strata_image::manifest::select_platform(&index, os, arch, None)
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NotAnImageManifest {
                    digest: manifest_digest,
                    media_type: format!("{kind} without a {arch} entry"),
                })?;
            manifest_digest = descriptor_digest(chosen, &path)?;
            manifest_bytes = self.read_blob(&manifest_digest)?;
            kind = media_type_of(&manifest_bytes);
        }
        if is_index(&kind) {
            return Err(StoreError::NotAnImageManifest {
                digest: manifest_digest,
                media_type: kind,
            });
        }
        let path = self.blob_path(&manifest_digest);
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|source| StoreError::Json {
                what: "image manifest",
                path: path.clone(),
                source,
            })?;
        let config_digest = descriptor_digest(manifest.config(), &path)?;
        let config_bytes = self.read_blob(&config_digest)?;
        let config =
            ImageConfig::from_slice(&config_bytes).map_err(|source| StoreError::Config {
                digest: config_digest,
                source,
            })?;
        let mut names: Vec<String> = entries
            .iter()
            .filter(|e| e.digest == *digest)
            .filter_map(|e| e.name.clone())
            .collect();
        names.sort();
        names.dedup();
        Ok(Image {
            descriptor,
            manifest_digest,
            manifest,
            manifest_bytes,
            config_digest,
            config,
            config_bytes,
            names,
        })
    }

    /// Runs `change` on the manifest list of `index.json` under the index lock and publishes
    /// the result atomically when it changed.
    fn update_index<T>(&self, change: impl FnOnce(&mut Vec<Descriptor>) -> Result<T>) -> Result<T> {
        let _guard = self.lock_index()?;
        let path = self.index_path();
        let mut index = read_index(&path)?;
        let before = index.manifests().clone();
        let mut list = before.clone();
        let out = change(&mut list)?;
        // Compared in the order it would be written: re-tagging an image with the tag it
        // already has moves its entry around but changes nothing, and writes nothing.
        sort_entries(&mut list);
        if list != before {
            index.set_manifests(list);
            let bytes = serde_json::to_vec(&index).map_err(|source| StoreError::Json {
                what: "index",
                path: path.clone(),
                source,
            })?;
            write_atomic(&path, &bytes)?;
        }
        Ok(out)
    }
}

fn read_index(path: &Path) -> Result<ImageIndex> {
    let bytes = fs::read(path).ctx("read", path)?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        what: "index",
        path: path.to_path_buf(),
        source,
    })
}

fn entries(index: &ImageIndex, path: &Path) -> Result<Vec<ImageEntry>> {
    let mut out = Vec::with_capacity(index.manifests().len());
    for d in index.manifests() {
        out.push(ImageEntry {
            name: entry_name(d).map(str::to_owned),
            digest: descriptor_digest(d, path)?,
            descriptor: d.clone(),
        });
    }
    Ok(out)
}

pub(crate) fn descriptor_digest(d: &Descriptor, path: &Path) -> Result<Digest> {
    let value = d.digest().to_string();
    value.parse().map_err(|source| StoreError::BadDigest {
        value,
        path: path.to_path_buf(),
        source,
    })
}

fn entry_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()?
        .get(REF_NAME_ANNOTATION)
        .map(String::as_str)
}

fn with_name(d: &Descriptor, name: &str) -> Descriptor {
    let mut d = d.clone();
    let mut annotations = d.annotations().clone().unwrap_or_default();
    annotations.insert(REF_NAME_ANNOTATION.to_string(), name.to_string());
    d.set_annotations(Some(annotations));
    d
}

fn without_name(d: &Descriptor) -> Descriptor {
    let mut d = d.clone();
    let annotations: HashMap<String, String> = d
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != REF_NAME_ANNOTATION)
        .collect();
    d.set_annotations((!annotations.is_empty()).then_some(annotations));
    d
}

/// Moves `name` to `descriptor`, keeping a displaced manifest as an untagged entry and dropping
/// the untagged entry of the newly named one. Pure: a function of the list.
fn set_tag(
    list: &mut Vec<Descriptor>,
    name: &str,
    descriptor: &Descriptor,
    digest: Digest,
) -> TagOutcome {
    let target = digest.to_string();
    let previous = list.iter().find(|d| entry_name(d) == Some(name)).cloned();
    list.retain(|d| entry_name(d) != Some(name));
    list.retain(|d| !(entry_name(d).is_none() && d.digest().to_string() == target));
    let mut outcome = TagOutcome { previous: None };
    if let Some(old) = previous.filter(|p| p.digest().to_string() != target) {
        outcome.previous = old.digest().to_string().parse().ok();
        let old_digest = old.digest().to_string();
        if !list.iter().any(|d| d.digest().to_string() == old_digest) {
            // Keep the old image reachable, as docker keeps a dangling `<none>` image.
            list.push(without_name(&old));
        }
    }
    list.push(with_name(descriptor, name));
    outcome
}

fn sort_entries(list: &mut [Descriptor]) {
    list.sort_by(|a, b| {
        let key = |d: &Descriptor| {
            (
                entry_name(d).is_none(),
                entry_name(d).map(str::to_owned),
                d.digest().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
}

fn media_type_of(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => MediaType::ImageIndex.to_string(),
        _ => MediaType::ImageManifest.to_string(),
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}
