//! Pull: reference → manifest (through an index when there is one, choosing the platform) →
//! config and layers streamed into the store's ingest, several at a time, each verified
//! against its descriptor before it is committed → manifest stored → tag.
//!
//! Nothing is published that was not verified: blobs are committed only with the size and
//! digest their descriptor names, and the manifest (and the tag) only after every blob it
//! references is in the store. A registry that lies (wrong digest, wrong size, truncated or
//! endless body) gets an error naming the blob, the image is not tagged, and the blobs the
//! failed pull had already committed are removed again (unless the store references them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt as _;
use strata_image::oci::image::{Descriptor, ImageManifest, MediaType};
use strata_image::reference::Reference;
use strata_image::{Digest, media};
use strata_store::{Store, StoreError};

use crate::error::{RegistryError, Result};
use crate::events::{BlobStatus, Event, EventSink};
use crate::manifest::{Manifest, Platform, RawManifest, descriptor_digest, select_platform};
use crate::metadata::Metadata;
use crate::registry::{Registry, Repo};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Which manifest to take from an index.
    pub platform: Platform,
    /// Blobs downloaded at the same time (docker's default is 3).
    pub max_concurrent_downloads: usize,
    /// Download attempts per blob when the connection fails mid-body.
    pub attempts: u32,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::default_linux(),
            max_concurrent_downloads: 3,
            attempts: 3,
        }
    }
}

/// The outcome of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The name the image was tagged under in the store (the full reference).
    pub name: String,
    /// What the reference resolved to in the registry (an index or a manifest): the digest
    /// docker prints after a pull.
    pub digest: Digest,
    /// The platform manifest stored and tagged.
    pub manifest_digest: Digest,
    /// The config digest: the IMAGE ID.
    pub config_digest: Digest,
    /// False when the store already had this exact image under this name ("Image is up to
    /// date").
    pub updated: bool,
}

/// Pulls `reference` into `store` and tags it there under its full name. Blobs already in the
/// store are not downloaded.
pub async fn pull<R: Registry>(
    registry: &R,
    store: &Arc<Store>,
    reference: &Reference,
    options: &PullOptions,
    events: EventSink<'_>,
) -> Result<Pulled> {
    let repo = Repo::new(reference.registry(), reference.repository());
    let shown = reference.to_string();
    let wanted = match reference.digest() {
        Some(digest) => digest.to_string(),
        None => reference.tag().unwrap_or("latest").to_string(),
    };
    let top = registry.manifest(&repo, &wanted).await?;
    events(Event::Resolved { digest: top.digest });
    let (raw, manifest) = match top.parse(&shown)? {
        Manifest::Image(manifest) => (top.clone(), *manifest),
        Manifest::Index(index) => {
            let chosen = select_platform(&index, &options.platform, &shown)?;
            let digest = descriptor_digest(chosen, &shown)?;
            let raw = registry.manifest(&repo, &digest.to_string()).await?;
            if raw.bytes.len() as u64 != chosen.size() {
                return Err(RegistryError::SizeMismatch {
                    what: "manifest",
                    digest,
                    expected: chosen.size(),
                    found: raw.bytes.len() as u64,
                });
            }
            match raw.parse(&format!("{}@{digest}", reference.name()))? {
                Manifest::Image(manifest) => (raw, *manifest),
                Manifest::Index(_) => {
                    return Err(RegistryError::UnsupportedMediaType {
                        reference: format!("{}@{digest}", reference.name()),
                        media_type: "nested image index".into(),
                    });
                }
            }
        }
    };

    let config = manifest.config();
    let config_digest = descriptor_digest(config, &shown)?;
    // An artifact (Helm chart, signature…) is not an image: refuse it before downloading.
    let unsupported = |media_type: String| RegistryError::UnsupportedMediaType {
        reference: shown.clone(),
        media_type,
    };
    if !media::is_config(config.media_type().as_ref()) {
        return Err(unsupported(config.media_type().to_string()));
    }
    let mut blobs = vec![(config_digest, config.size(), true)];
    for layer in manifest.layers() {
        if !media::is_layer(layer.media_type().as_ref()) {
            return Err(unsupported(layer.media_type().to_string()));
        }
        blobs.push((descriptor_digest(layer, &shown)?, layer.size(), false));
    }
    fetch_blobs(registry, store, &repo, &blobs, options, events).await?;

    // Every referenced blob is in: the manifest can be published and named.
    let metadata = Metadata::new(store);
    let manifest_digest = put_manifest(store, &raw)?;
    for (digest, _, _) in &blobs {
        metadata.add_source(digest, &repo)?;
    }
    metadata.add_source(&manifest_digest, &repo)?;

    let name = shown;
    let before = store
        .images()?
        .into_iter()
        .find(|e| e.name.as_deref() == Some(name.as_str()))
        .map(|e| e.digest);
    let descriptor = manifest_descriptor(&raw, &manifest)?;
    store.tag(&name, descriptor)?;
    Ok(Pulled {
        name,
        digest: top.digest,
        manifest_digest,
        config_digest,
        updated: before != Some(manifest_digest),
    })
}

fn put_manifest(store: &Store, raw: &RawManifest) -> Result<Digest> {
    let digest = store.put_blob(&raw.bytes)?;
    Ok(digest)
}

/// The index.json descriptor for a stored manifest, carrying its platform when the config
/// says it (as OCI layouts written by other tools do).
fn manifest_descriptor(raw: &RawManifest, _manifest: &ImageManifest) -> Result<Descriptor> {
    Ok(Descriptor::new(
        MediaType::from(raw.media_type.as_str()),
        raw.bytes.len() as u64,
        raw.digest,
    ))
}

async fn fetch_blobs<R: Registry>(
    registry: &R,
    store: &Arc<Store>,
    repo: &Repo,
    blobs: &[(Digest, u64, bool)],
    options: &PullOptions,
    events: EventSink<'_>,
) -> Result<()> {
    // Everything present: an up-to-date image, about which docker says nothing per layer.
    if blobs.iter().all(|(digest, _, _)| store.has_blob(digest)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    for &(digest, size, is_config) in blobs {
        if store.has_blob(&digest) {
            events(Event::Blob {
                digest,
                is_config,
                status: BlobStatus::AlreadyExists,
            });
        } else if !missing.iter().any(|(d, _, _)| *d == digest) {
            events(Event::Blob {
                digest,
                is_config,
                status: BlobStatus::Waiting,
            });
            missing.push((digest, size, is_config));
        }
    }
    // On the first failure the others stop at their next chunk; every download is awaited so
    // that no ingest file outlives the pull.
    let cancelled = AtomicBool::new(false);
    let fetched: Vec<Digest> = missing.iter().map(|(digest, _, _)| *digest).collect();
    let results: Vec<Result<()>> = futures_util::stream::iter(missing.into_iter().map(|blob| {
        let cancelled = &cancelled;
        async move {
            let mut attempt = 1;
            loop {
                if cancelled.load(Ordering::Relaxed) {
                    return Ok(());
                }
                match fetch_blob(registry, store, repo, blob, cancelled, events).await {
                    Err(e) if e.is_transient() && attempt < options.attempts => {
                        tracing::warn!(digest = %blob.0, attempt, error = %e, "download failed, retrying");
                        attempt += 1;
                    }
                    Err(e) => {
                        cancelled.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    Ok(()) => return Ok(()),
                }
            }
        }
    }))
    .buffer_unordered(options.max_concurrent_downloads.max(1))
    .collect()
    .await;
    if let Err(error) = results.into_iter().collect::<Result<Vec<()>>>() {
        // Undo: the blobs this pull committed (verified, but of an image that will not be
        // tagged) go again, unless something in the store references them.
        let committed: Vec<Digest> = fetched.into_iter().filter(|d| store.has_blob(d)).collect();
        if let Err(e) = store.discard_blobs(&committed) {
            tracing::warn!(error = %e, "cannot remove the blobs of a failed pull");
        }
        return Err(error);
    }
    Ok(())
}

enum Chunk {
    Data(Bytes),
    End,
}

/// Streams one blob into a store ingest on a blocking thread (writing and hashing are
/// blocking work) and commits it only if size and digest match the descriptor.
async fn fetch_blob<R: Registry>(
    registry: &R,
    store: &Arc<Store>,
    repo: &Repo,
    (digest, size, is_config): (Digest, u64, bool),
    cancelled: &AtomicBool,
    events: EventSink<'_>,
) -> Result<()> {
    let what = if is_config { "config" } else { "layer" };
    let mut blob = registry.blob(repo, &digest).await?;
    if let Some(announced) = blob.announced_size
        && announced != size
    {
        return Err(RegistryError::SizeMismatch {
            what,
            digest,
            expected: size,
            found: announced,
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let writer_store = Arc::clone(store);
    let writer = tokio::task::spawn_blocking(move || -> std::result::Result<(), StoreError> {
        use std::io::Write as _;
        let mut ingest = writer_store.ingest()?;
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Chunk::Data(bytes) => {
                    ingest.write_all(&bytes).map_err(|source| StoreError::Io {
                        op: "write ingest for",
                        path: writer_store.blob_path(&digest),
                        source,
                    })?
                }
                Chunk::End => {
                    ingest.commit(Some((digest, size)))?;
                    return Ok(());
                }
            }
        }
        // The download was abandoned: dropping the ingest discards it.
        Ok(())
    });

    let mut received = 0u64;
    let mut last_report = 0u64;
    let download = async {
        while let Some(chunk) = blob.stream.next().await {
            if cancelled.load(Ordering::Relaxed) {
                // Another blob failed: stop without committing (the writer discards).
                return Ok(false);
            }
            let chunk = chunk?;
            received += chunk.len() as u64;
            if received > size {
                return Err(RegistryError::SizeMismatch {
                    what,
                    digest,
                    expected: size,
                    found: received,
                });
            }
            if tx.send(Chunk::Data(chunk)).await.is_err() {
                // The writer stopped (an I/O error): its result says why.
                return Ok(false);
            }
            if received - last_report >= 256 * 1024 || received == size {
                last_report = received;
                events(Event::Blob {
                    digest,
                    is_config,
                    status: BlobStatus::Downloading {
                        current: received,
                        total: size,
                    },
                });
            }
        }
        if received != size {
            return Err(RegistryError::SizeMismatch {
                what,
                digest,
                expected: size,
                found: received,
            });
        }
        events(Event::Blob {
            digest,
            is_config,
            status: BlobStatus::Verifying,
        });
        Ok(tx.send(Chunk::End).await.is_ok())
    };
    let downloaded = download.await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?;
    let completed = downloaded?;
    match written {
        Ok(()) => {}
        Err(StoreError::DigestMismatch { expected, actual }) => {
            return Err(RegistryError::DigestMismatch {
                what,
                expected,
                found: actual,
            });
        }
        Err(StoreError::SizeMismatch {
            expected, actual, ..
        }) => {
            return Err(RegistryError::SizeMismatch {
                what,
                digest,
                expected,
                found: actual,
            });
        }
        Err(e) => return Err(e.into()),
    }
    if completed {
        events(Event::Blob {
            digest,
            is_config,
            status: BlobStatus::PullComplete,
        });
    }
    Ok(())
}
