//! Push: a stored image → its blobs in the target repository (skipping what the registry has,
//! mounting what another repository of the same registry has, uploading the rest, several at
//! a time) → its manifest, under the target tag.
//!
//! Layers built by strata are stored uncompressed (their digest is their diff_id, as docker
//! keeps them); they are gzip-compressed on the way out, on every core, streaming into the
//! store so the digest is computed while compressing, and the compressed variant is
//! remembered by the store ([`Store::compress_layer`], the record `strata build --output`
//! uses too) so pushing again neither recompresses nor uploads. Pulled layers
//! are already compressed and go out as they are, so pushing a pulled image unchanged keeps its
//! manifest byte for byte (same digest).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};
use strata_image::Digest;
use strata_image::manifest::ManifestFormat;
use strata_image::media::LayerCompression;
use strata_image::oci::image::{Descriptor, ImageManifest, MediaType};
use strata_image::reference::Reference;
use strata_store::{CompressedVariant, Image, Store};

use crate::error::{RegistryError, Result};
use crate::events::{BlobStatus, Event, EventSink};
use crate::manifest::RawManifest;
use crate::metadata::Metadata;
use crate::registry::{MountOutcome, Registry, Repo};

/// The gzip level for layers stored uncompressed. BuildKit and docker compress with Go's
/// `compress/gzip` at its default level (6); strata keeps the same default, so a pushed layer
/// has the size a docker user expects, and is faster than them by compressing on every core.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 6;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Convert the manifest to this format; `None` keeps the image's own.
    pub format: Option<ManifestFormat>,
    /// Blobs uploaded at the same time (docker's default is 5).
    pub max_concurrent_uploads: usize,
    /// gzip level for uncompressed layers (see [`DEFAULT_COMPRESSION_LEVEL`]).
    pub compression_level: u32,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            format: None,
            max_concurrent_uploads: 5,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        }
    }
}

/// The outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The tag (or digest) the manifest was put under.
    pub tag: String,
    /// The digest of the pushed manifest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    pub media_type: String,
}

/// Pushes the stored `image` to `target` (which must name a tag).
pub async fn push<R: Registry>(
    registry: &R,
    store: &Arc<Store>,
    image: &Image,
    target: &Reference,
    options: &PushOptions,
    events: EventSink<'_>,
) -> Result<Pushed> {
    let tag = match (target.tag(), target.digest()) {
        (Some(tag), None) => tag.to_string(),
        _ => return Err(RegistryError::PushNeedsTag(target.to_string())),
    };
    let repo = Repo::new(target.registry(), target.repository());
    let manifest = &image.manifest;
    let original_media_type =
        media_type_string(manifest.media_type().as_ref(), &image.manifest_bytes);
    let format = options
        .format
        .or_else(|| ManifestFormat::of_media_type(&original_media_type))
        .unwrap_or(ManifestFormat::Oci);
    let metadata = Metadata::new(store);

    // The config first, then the layers, in manifest order (`buffered` keeps the order).
    let config = manifest.config().clone();
    let jobs = std::iter::once((config, true))
        .chain(manifest.layers().iter().cloned().map(|l| (l, false)));
    let job = Job {
        registry,
        store,
        metadata: &metadata,
        repo: &repo,
        format,
        options,
        events,
    };
    let pushed: Vec<Descriptor> =
        futures_util::stream::iter(jobs.map(|(descriptor, is_config)| {
            let job = &job;
            async move { job.push_blob(&descriptor, is_config).await }
        }))
        .buffered(options.max_concurrent_uploads.max(1))
        .try_collect()
        .await?;

    let (config, layers) = match pushed.split_first() {
        Some((config, layers)) => (config.clone(), layers.to_vec()),
        None => return Err(RegistryError::Task("no config descriptor".into())),
    };
    let unchanged = &config == manifest.config()
        && layers.as_slice() == manifest.layers().as_slice()
        && original_media_type == format.manifest_media_type();
    let raw = if unchanged {
        RawManifest {
            bytes: image.manifest_bytes.clone(),
            media_type: original_media_type,
            digest: image.manifest_digest,
        }
    } else {
        let mut converted: ImageManifest = manifest.clone();
        converted.set_media_type(Some(MediaType::from(format.manifest_media_type())));
        converted.set_config(config);
        converted.set_layers(layers);
        let bytes = serde_json::to_vec(&converted)
            .map_err(|e| RegistryError::Task(format!("serializing manifest: {e}")))?;
        let digest = Digest::of(&bytes);
        RawManifest {
            bytes,
            media_type: format.manifest_media_type().to_string(),
            digest,
        }
    };
    registry.put_manifest(&repo, &tag, &raw).await?;
    // Keep the pushed manifest so a later pull of it finds everything local.
    store.put_blob(&raw.bytes)?;
    metadata.add_source(&raw.digest, &repo)?;
    Ok(Pushed {
        tag,
        digest: raw.digest,
        size: raw.bytes.len() as u64,
        media_type: raw.media_type,
    })
}

fn media_type_string(media_type: Option<&MediaType>, bytes: &[u8]) -> String {
    match media_type {
        Some(m) => m.to_string(),
        None => crate::manifest::effective_media_type(None, bytes),
    }
}

fn descriptor_digest(descriptor: &Descriptor) -> Result<Digest> {
    crate::manifest::descriptor_digest(descriptor, "stored image")
}

fn with_media_type(
    descriptor: &Descriptor,
    media_type: &str,
    digest: Digest,
    size: u64,
) -> Descriptor {
    let mut out = descriptor.clone();
    out.set_media_type(MediaType::from(media_type));
    out.set_digest(digest.into());
    out.set_size(size);
    out
}

/// What every blob of one push shares.
struct Job<'a, R> {
    registry: &'a R,
    store: &'a Arc<Store>,
    metadata: &'a Metadata,
    repo: &'a Repo,
    format: ManifestFormat,
    options: &'a PushOptions,
    events: EventSink<'a>,
}

impl<R: Registry> Job<'_, R> {
    fn report(&self, shown: Digest, is_config: bool, status: BlobStatus) {
        (self.events)(Event::Blob {
            digest: shown,
            is_config,
            status,
        });
    }

    /// Makes one blob of the image present in the target repository; returns the descriptor
    /// it has in the pushed manifest. Compressed layers and the config go as they are (media
    /// type in the target format). An uncompressed layer goes as its gzip variant: when a
    /// previous push made one, the registry is asked for it first (like docker, which keeps the
    /// diff_id → compressed digest mapping), and it is compressed again only if it must be
    /// uploaded and is no longer in the store.
    async fn push_blob(&self, descriptor: &Descriptor, is_config: bool) -> Result<Descriptor> {
        let local = descriptor_digest(descriptor)?;
        self.report(local, is_config, BlobStatus::Waiting);
        let media_type = descriptor.media_type().to_string();
        let compression = if is_config {
            None
        } else {
            Some(LayerCompression::from_media_type(&media_type).map_err(|_| {
                RegistryError::UnsupportedMediaType {
                    reference: local.to_string(),
                    media_type: media_type.clone(),
                }
            })?)
        };
        let as_is = match compression {
            None => Some(self.format.config_media_type()),
            Some(LayerCompression::None) => None,
            Some(compressed) => Some(self.format.layer_media_type(compressed)),
        };
        if let Some(media_type) = as_is {
            let out = with_media_type(descriptor, media_type, local, descriptor.size());
            if !self.skip_or_mount(local, local, is_config).await? {
                self.upload(local, local, descriptor.size(), is_config)
                    .await?;
            }
            return Ok(out);
        }
        let gzip = self.format.layer_media_type(LayerCompression::Gzip);
        let level = self.options.compression_level as i32;
        if let Some(known) = self
            .store
            .compressed_variant(&local, LayerCompression::Gzip, level)?
        {
            let out = with_media_type(descriptor, gzip, known.digest, known.size);
            if self.skip_or_mount(local, known.digest, false).await? {
                return Ok(out);
            }
            if self.store.has_blob(&known.digest) {
                self.upload(local, known.digest, known.size, false).await?;
                return Ok(out);
            }
        }
        self.report(local, false, BlobStatus::Preparing);
        let variant = compress_layer(self.store, local, level).await?;
        if !self.skip_or_mount(local, variant.digest, false).await? {
            self.upload(local, variant.digest, variant.size, false)
                .await?;
        }
        Ok(with_media_type(
            descriptor,
            gzip,
            variant.digest,
            variant.size,
        ))
    }

    /// True when `digest` needs no upload: the repository has it, or another repository of
    /// the registry known to have it lets it be mounted (a 202 means: upload after all).
    async fn skip_or_mount(&self, shown: Digest, digest: Digest, is_config: bool) -> Result<bool> {
        if self.registry.blob_exists(self.repo, &digest).await? {
            self.report(shown, is_config, BlobStatus::LayerExists);
            self.metadata.add_source(&digest, self.repo)?;
            return Ok(true);
        }
        let candidates = self.metadata.sources(&digest).into_iter().filter(|source| {
            source.registry == self.repo.registry && source.repository != self.repo.repository
        });
        for source in candidates {
            if self
                .registry
                .mount_blob(self.repo, &digest, &source.repository)
                .await?
                == MountOutcome::Mounted
            {
                self.report(
                    shown,
                    is_config,
                    BlobStatus::Mounted {
                        from: source.repository.clone(),
                    },
                );
                self.metadata.add_source(&digest, self.repo)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Uploads the stored blob `digest`, reporting progress as docker does.
    async fn upload(
        &self,
        shown: Digest,
        digest: Digest,
        size: u64,
        is_config: bool,
    ) -> Result<()> {
        let path: PathBuf = self.store.blob_path(&digest);
        let sent = Arc::new(AtomicU64::new(0));
        let upload = self
            .registry
            .upload_blob(self.repo, &digest, size, &path, Arc::clone(&sent));
        tokio::pin!(upload);
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        let result = loop {
            tokio::select! {
                result = &mut upload => break result,
                _ = ticker.tick() => {
                    let current = sent.load(Ordering::Relaxed).min(size);
                    self.report(shown, is_config, BlobStatus::Pushing { current, total: size });
                }
            }
        };
        result?;
        self.report(shown, is_config, BlobStatus::Pushed);
        self.metadata.add_source(&digest, self.repo)
    }
}

/// The gzip variant of the stored blob `diff_id`, made (on every core, from a blocking thread)
/// and remembered by the store unless it already has it.
async fn compress_layer(
    store: &Arc<Store>,
    diff_id: Digest,
    level: i32,
) -> Result<CompressedVariant> {
    let store = Arc::clone(store);
    let variant = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        store.compress_layer(&diff_id, LayerCompression::Gzip, level, threads)
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))??;
    Ok(variant)
}
