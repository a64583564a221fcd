//! Opening the store a command works on, and the facts about stored images that several image
//! commands share (resolution, layer sizes as docker counts them).

use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use strata_image::{Digest, Reference, Sha256Writer};
use strata_store::{Image, LayerInfo, Store};

use crate::commands::Global;

/// `--root`/`STRATA_ROOT`, else `/var/lib/strata` for root and `$XDG_DATA_HOME/strata`
/// (default `~/.local/share/strata`) for everyone else.
pub fn root(global: &Global) -> anyhow::Result<PathBuf> {
    if let Some(root) = &global.root {
        return Ok(root.clone());
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/lib/strata"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(data).join("strata"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/strata")),
        None => bail!(
            "cannot choose a store directory: HOME is not set\nhint: pass --root DIR or set STRATA_ROOT"
        ),
    }
}

/// Opens (creating if needed) the store for this invocation.
pub fn open(global: &Global) -> anyhow::Result<Store> {
    let root = root(global)?;
    Store::open(&root).with_context(|| format!("cannot open the store at {}", root.display()))
}

/// docker's normalization of a reference (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize(name: &str) -> Option<String> {
    Reference::parse(name).ok().map(|r| r.to_string())
}

/// The familiar form of a stored full reference (`busybox:1.35`); foreign names pass through.
pub fn familiar(name: &str) -> String {
    Reference::parse(name).map_or_else(|_| name.to_string(), |r| r.familiar())
}

/// Finds an image by reference, full id or unique id prefix, as docker does.
pub fn resolve(store: &Store, query: &str) -> anyhow::Result<Image> {
    Ok(store.resolve(query)?)
}

/// The raw config JSON (to show fields verbatim).
pub fn config_json(image: &Image) -> anyhow::Result<serde_json::Value> {
    serde_json::from_slice(&image.config_bytes)
        .with_context(|| format!("image config {}", image.config_digest))
}

/// Per-layer sizes (bottom first) as docker counts them, computed once per layer and then
/// remembered by the store.
pub fn layer_sizes(store: &Store, image: &Image) -> anyhow::Result<Vec<(Digest, u64)>> {
    let diff_ids = image.config.diff_ids()?;
    let layers = image.manifest.layers();
    if layers.len() != diff_ids.len() {
        bail!(
            "image {}: the manifest has {} layers but the config lists {} diff_ids",
            image.config_digest.short(),
            layers.len(),
            diff_ids.len()
        );
    }
    let mut out = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        if let Some(info) = store.layer_info(&diff_id)? {
            out.push((diff_id, info.size));
            continue;
        }
        let digest = Digest::try_from(layer.digest())?;
        let blob = store.open_blob(&digest)?;
        let scan = scan_layer(blob, &digest.to_string())?;
        if scan.diff_id != diff_id {
            bail!(
                "layer {digest}: its uncompressed content is {} but the image config says {diff_id}",
                scan.diff_id
            );
        }
        store.set_layer_info(&LayerInfo {
            diff_id,
            size: scan.size,
        })?;
        out.push((diff_id, scan.size));
    }
    Ok(out)
}

/// What reading a layer through once tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerScan {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Sum of regular file sizes and symlink target lengths: docker's layer size (hardlinks are
    /// size-0 entries in a tar, so they count once, as docker's inode-aware walk counts them).
    pub size: u64,
}

/// What docker counts of one layer tar entry toward the layer's size: a regular file's size,
/// a symlink's target length, nothing for anything else (hardlinks included).
pub fn docker_entry_size<R: Read>(entry: &tar::Entry<'_, R>) -> u64 {
    match entry.header().entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            entry.size()
        }
        tar::EntryType::Symlink => entry.link_name_bytes().map_or(0, |l| l.len() as u64),
        _ => 0,
    }
}

/// Reads a (possibly compressed) layer, checking that every entry stays inside the layer root,
/// and measures it. `what` names the layer in errors.
pub fn scan_layer(reader: impl Read, what: &str) -> anyhow::Result<LayerScan> {
    let plain = strata_layer::decompressed(reader)
        .with_context(|| format!("layer {what}: cannot read its compression header"))?;
    let hashing = HashingReader {
        inner: plain,
        hash: Sha256Writer::new(io::sink()),
    };
    let mut archive = tar::Archive::new(hashing);
    let mut size = 0u64;
    for entry in archive
        .entries()
        .with_context(|| format!("layer {what}: not a tar archive"))?
    {
        let entry = entry.with_context(|| format!("layer {what}: truncated or corrupt tar"))?;
        let name = entry.path_bytes();
        if let Err(e) = strata_layer::name::classify(&name) {
            bail!(
                "layer {what}: entry {:?} is not allowed: {}",
                String::from_utf8_lossy(&name),
                match e {
                    strata_layer::name::NameError::Escapes => "it escapes the layer root",
                    strata_layer::name::NameError::InvalidWhiteout => "it is an invalid whiteout",
                }
            );
        }
        size += docker_entry_size(&entry);
    }
    // The diff_id covers the whole stream, including the end-of-archive blocks.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink())
        .with_context(|| format!("layer {what}: truncated or corrupt data"))?;
    let (diff_id, _, _) = rest.hash.finish();
    Ok(LayerScan { diff_id, size })
}

struct HashingReader<R> {
    inner: R,
    hash: Sha256Writer<io::Sink>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// One image as `images`, `system df` and `image prune` see it: every `index.json` entry with
/// the same IMAGE ID (config digest) is the same image to docker, so they are merged.
#[derive(Debug)]
pub struct Summary {
    pub image: Image,
    /// Manifest (or index) digests of every entry of this image.
    pub entries: Vec<Digest>,
    /// Full references with a tag (`docker.io/library/busybox:1.35`), sorted.
    pub repo_tags: Vec<String>,
    /// Full references by digest (`docker.io/library/busybox@sha256:…`), sorted.
    pub repo_digests: Vec<String>,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// Sum of the layer sizes, as docker's SIZE.
    pub size: u64,
    pub layers: Vec<(Digest, u64)>,
}

/// Every image, newest first (docker's order), merged by IMAGE ID.
pub fn summaries(store: &Store) -> anyhow::Result<Vec<Summary>> {
    let mut out: Vec<Summary> = Vec::new();
    for entry in store.images()? {
        let image = store
            .image(&entry.digest)
            .with_context(|| format!("index.json entry {}", entry.digest))?;
        let index = match out
            .iter()
            .position(|s| s.image.config_digest == image.config_digest)
        {
            Some(i) => i,
            None => {
                let config = &image.config;
                let created = config
                    .oci
                    .created()
                    .as_deref()
                    .and_then(strata_image::config::parse_time);
                let layers = layer_sizes(store, &image)?;
                out.push(Summary {
                    size: layers.iter().map(|(_, s)| s).sum(),
                    layers,
                    created,
                    image,
                    entries: Vec::new(),
                    repo_tags: Vec::new(),
                    repo_digests: Vec::new(),
                });
                out.len() - 1
            }
        };
        let summary = &mut out[index];
        if !summary.entries.contains(&entry.digest) {
            summary.entries.push(entry.digest);
        }
        if let Some(name) = entry.name {
            if name.contains('@') {
                summary.repo_digests.push(name);
            } else {
                summary.repo_tags.push(name);
            }
        }
    }
    for s in &mut out {
        s.repo_tags.sort();
        s.repo_tags.dedup();
        s.repo_digests.sort();
        s.repo_digests.dedup();
    }
    out.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.image.config_digest.cmp(&b.image.config_digest))
    });
    Ok(out)
}

/// The OCI twin of a Docker v2 schema 2 manifest: the same config and layers (so the same
/// IMAGE ID and diff_ids) under OCI media types. skopeo and umoci only read OCI manifests from
/// an OCI layout's `index.json`, and the store must stay one. `None` when already OCI.
pub fn oci_manifest(bytes: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    use strata_image::media;
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).context("invalid manifest")?;
    if doc.get("mediaType").and_then(|m| m.as_str()) != Some(media::DOCKER_MANIFEST) {
        return Ok(None);
    }
    doc["mediaType"] = media::OCI_MANIFEST.into();
    if let Some(config) = doc.get_mut("config") {
        config["mediaType"] = media::OCI_CONFIG.into();
    }
    if let Some(layers) = doc.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for layer in layers {
            let docker = layer
                .get("mediaType")
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            let oci = match docker {
                media::DOCKER_FOREIGN_LAYER_GZIP => media::OCI_LAYER_NONDISTRIBUTABLE_GZIP,
                other => strata_image::LayerCompression::from_media_type(other)
                    .map_err(|e| anyhow::anyhow!("unknown layer media type {:?}", e.media_type))?
                    .oci_media_type(),
            };
            layer["mediaType"] = oci.into();
        }
    }
    Ok(Some(strata_image::config::canonical_json(&doc)))
}
