//! An in-memory [`Registry`]: the fake that pull/push logic is tested against, and a way for
//! other crates' tests to serve images without a network.
//!
//! It behaves like a distribution registry (blobs per repository, manifests by tag and by
//! digest, mounts only between repositories that hold the blob) and can be told to lie:
//! [`MemoryRegistry::put_blob_raw`] stores arbitrary bytes under any digest. Every operation
//! is recorded in [`MemoryRegistry::log`] so tests can assert what was (not) transferred.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use strata_image::Digest;

use crate::error::{RegistryError, Result};
use crate::manifest::{MANIFEST_LIMIT, RawManifest, effective_media_type};
use crate::registry::{Blob, ByteCounter, MountOutcome, Registry, Repo};

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    GetManifest {
        repo: String,
        reference: String,
    },
    GetBlob {
        repo: String,
        digest: Digest,
    },
    HeadBlob {
        repo: String,
        digest: Digest,
    },
    Mount {
        repo: String,
        digest: Digest,
        from: String,
        mounted: bool,
    },
    Upload {
        repo: String,
        digest: Digest,
    },
    PutManifest {
        repo: String,
        reference: String,
    },
}

#[derive(Debug, Default)]
struct State {
    blobs: HashMap<String, HashMap<Digest, Bytes>>,
    manifests: HashMap<String, HashMap<String, RawManifest>>,
    log: Vec<Operation>,
}

/// A registry held in memory. Repositories are keyed by `registry/repository`.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    state: Mutex<State>,
}

impl MemoryRegistry {
    pub fn new() -> MemoryRegistry {
        MemoryRegistry::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `bytes` under `digest` in `repo`, whether or not they match: a lying registry.
    pub fn put_blob_raw(&self, repo: &Repo, digest: Digest, bytes: impl Into<Bytes>) {
        self.lock()
            .blobs
            .entry(repo.to_string())
            .or_default()
            .insert(digest, bytes.into());
    }

    /// Stores `bytes` as a blob of `repo` under their digest; returns the digest.
    pub fn put_blob(&self, repo: &Repo, bytes: impl Into<Bytes>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        self.put_blob_raw(repo, digest, bytes);
        digest
    }

    /// Stores a manifest under `tag` (and its digest); returns the digest.
    pub fn put_manifest_bytes(
        &self,
        repo: &Repo,
        tag: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Digest {
        let digest = Digest::of(&bytes);
        let raw = RawManifest {
            bytes,
            media_type: media_type.to_string(),
            digest,
        };
        let mut state = self.lock();
        let manifests = state.manifests.entry(repo.to_string()).or_default();
        manifests.insert(digest.to_string(), raw.clone());
        manifests.insert(tag.to_string(), raw);
        digest
    }

    /// Everything done so far, in order.
    pub fn log(&self) -> Vec<Operation> {
        self.lock().log.clone()
    }

    /// Whether `repo` holds `digest`.
    pub fn has_blob(&self, repo: &Repo, digest: &Digest) -> bool {
        self.lock()
            .blobs
            .get(&repo.to_string())
            .is_some_and(|b| b.contains_key(digest))
    }

    fn record(&self, op: Operation) {
        self.lock().log.push(op);
    }

    fn not_found(repo: &Repo, what: String) -> RegistryError {
        RegistryError::NotFound {
            registry: repo.registry.clone(),
            reference: what,
            errors: vec![],
        }
    }
}

impl Registry for MemoryRegistry {
    async fn manifest(&self, repo: &Repo, reference: &str) -> Result<RawManifest> {
        self.record(Operation::GetManifest {
            repo: repo.to_string(),
            reference: reference.to_string(),
        });
        let raw = self
            .lock()
            .manifests
            .get(&repo.to_string())
            .and_then(|m| m.get(reference))
            .cloned()
            .ok_or_else(|| Self::not_found(repo, format!("{repo}:{reference}")))?;
        if raw.bytes.len() as u64 > MANIFEST_LIMIT {
            return Err(RegistryError::ManifestTooLarge {
                reference: format!("{repo}:{reference}"),
                limit: MANIFEST_LIMIT,
            });
        }
        // Verify as the HTTP client does: the content must hash to what was asked for.
        let digest = Digest::of(&raw.bytes);
        if let Ok(expected) = reference.parse::<Digest>()
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                expected,
                found: digest,
            });
        }
        let media_type = effective_media_type(Some(&raw.media_type), &raw.bytes);
        Ok(RawManifest {
            bytes: raw.bytes,
            media_type,
            digest,
        })
    }

    async fn blob(&self, repo: &Repo, digest: &Digest) -> Result<Blob> {
        self.record(Operation::GetBlob {
            repo: repo.to_string(),
            digest: *digest,
        });
        let bytes = self
            .lock()
            .blobs
            .get(&repo.to_string())
            .and_then(|b| b.get(digest))
            .cloned()
            .ok_or_else(|| Self::not_found(repo, format!("{repo}@{digest}")))?;
        // Served in small chunks, like a network would.
        let chunks: Vec<Result<Bytes>> =
            bytes.chunks(4096).map(|c| Ok(bytes.slice_ref(c))).collect();
        Ok(Blob {
            announced_size: Some(bytes.len() as u64),
            stream: Box::pin(futures_util::stream::iter(chunks)),
        })
    }

    async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<bool> {
        self.record(Operation::HeadBlob {
            repo: repo.to_string(),
            digest: *digest,
        });
        Ok(self.has_blob(repo, digest))
    }

    async fn mount_blob(&self, repo: &Repo, digest: &Digest, from: &str) -> Result<MountOutcome> {
        let source = Repo::new(repo.registry.clone(), from);
        let bytes = self
            .lock()
            .blobs
            .get(&source.to_string())
            .and_then(|b| b.get(digest))
            .cloned();
        let mounted = bytes.is_some();
        if let Some(bytes) = bytes {
            self.put_blob_raw(repo, *digest, bytes);
        }
        self.record(Operation::Mount {
            repo: repo.to_string(),
            digest: *digest,
            from: from.to_string(),
            mounted,
        });
        Ok(if mounted {
            MountOutcome::Mounted
        } else {
            MountOutcome::Declined
        })
    }

    async fn upload_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        path: &Path,
        sent: ByteCounter,
    ) -> Result<()> {
        self.record(Operation::Upload {
            repo: repo.to_string(),
            digest: *digest,
        });
        let bytes = std::fs::read(path).map_err(|source| RegistryError::BlobIo {
            digest: *digest,
            source,
        })?;
        // A registry refuses content that does not match the digest it is pushed under.
        let found = Digest::of(&bytes);
        if found != *digest {
            return Err(RegistryError::DigestMismatch {
                what: "uploaded blob",
                expected: *digest,
                found,
            });
        }
        if bytes.len() as u64 != size {
            return Err(RegistryError::SizeMismatch {
                what: "uploaded blob",
                digest: *digest,
                expected: size,
                found: bytes.len() as u64,
            });
        }
        sent.fetch_add(size, Ordering::Relaxed);
        self.put_blob_raw(repo, *digest, bytes);
        Ok(())
    }

    async fn put_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<()> {
        self.record(Operation::PutManifest {
            repo: repo.to_string(),
            reference: reference.to_string(),
        });
        self.put_manifest_bytes(
            repo,
            reference,
            &manifest.media_type,
            manifest.bytes.clone(),
        );
        Ok(())
    }
}
