//! Build cache keys and records.
//!
//! A key is a sha256 over a small, explicit recipe, so a cache hit means "this step would
//! produce the same layer":
//!
//! | step | key inputs |
//! | --- | --- |
//! | stage base | `image` + manifest digest, `scratch`, or the key of the stage it builds on |
//! | RUN | parent key, argv after SHELL wrapping, the environment the process sees (image env + ENV + ARGs in scope), working directory, USER, network mode, mounts |
//! | COPY/ADD | parent key, instruction, destination after WORKDIR, `--chown`/`--chmod`/flags, and the content checksum of the sources (names, types, modes, owners, sizes, link targets, file contents: never mtimes), or for `--from` the key of the source stage or image plus the source paths |
//! | WORKDIR | parent key, the directory, USER (the directory is created for that user) |
//!
//! The parent key is the key of the previous *filesystem* step (or the stage base), so
//! metadata-only instructions (LABEL, CMD, ...) never invalidate later steps unless they change
//! what a step sees (ENV, WORKDIR, USER and SHELL are part of the RUN recipe). Records live in
//! the store (`cache/<key>`) and name the layer blob and snapshot they point at, so garbage
//! collection keeps them alive and a hit costs two file reads.

use crate::solve::layer::Layer;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_image::Digest;
use strata_store::{CacheRecord, Store};

/// Builds a key from labelled parts.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    hasher: Sha256,
}

impl KeyBuilder {
    /// A key of kind `kind` (`run`, `copy`, ...) on top of `parent`.
    pub fn new(kind: &str, parent: &Digest) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"strata-build-cache-v1\0");
        hasher.update(kind.as_bytes());
        hasher.update([0]);
        hasher.update(parent.as_bytes());
        Self { hasher }
    }

    /// Adds a named string field (length-prefixed, so fields never run together).
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.hasher.update(name.as_bytes());
        self.hasher.update([0]);
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value.as_bytes());
        self
    }

    /// Adds a list of strings.
    pub fn list(mut self, name: &str, values: &[String]) -> Self {
        self = self.field(name, &values.len().to_string());
        for v in values {
            self = self.field("", v);
        }
        self
    }

    /// The key.
    pub fn finish(self) -> Digest {
        Digest::from_bytes(self.hasher.finalize().into())
    }
}

/// The key of a stage's starting point.
pub fn base_key(kind: &str, id: &str) -> Digest {
    KeyBuilder::new("base", &Digest::of(b""))
        .field(kind, id)
        .finish()
}

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepResult {
    /// A layer.
    Layer(Layer),
    /// The step changed nothing on the filesystem.
    Empty,
}

/// Looks up `key`; a record whose layer blob or snapshot has gone (pruned) is a miss.
pub fn lookup(store: &Store, key: &Digest) -> Option<(StepResult, chrono::DateTime<chrono::Utc>)> {
    let record = store.cache_get(key).ok()??;
    let created = record.created;
    let result: StepResult = serde_json::from_value(record.payload).ok()?;
    if let StepResult::Layer(layer) = &result {
        if !store.has_blob(&layer.blob) {
            return None;
        }
        // A pruned snapshot makes the record useless.
        store.snapshot(&layer.chain_id).ok()??;
    }
    Some((result, created))
}

/// Records the result of a step under `key`.
pub fn record(
    store: &Store,
    key: &Digest,
    result: &StepResult,
    created: chrono::DateTime<chrono::Utc>,
) -> Result<(), strata_store::StoreError> {
    let (blobs, chain_ids) = match result {
        StepResult::Layer(layer) => (vec![layer.blob], vec![layer.chain_id]),
        StepResult::Empty => (Vec::new(), Vec::new()),
    };
    let payload = serde_json::to_value(result).unwrap_or(serde_json::Value::Null);
    store.cache_put(
        key,
        &CacheRecord {
            payload,
            blobs,
            chain_ids,
            created,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_never_run_together() {
        let p = Digest::of(b"p");
        let a = KeyBuilder::new("run", &p)
            .field("x", "ab")
            .field("y", "c")
            .finish();
        let b = KeyBuilder::new("run", &p)
            .field("x", "a")
            .field("y", "bc")
            .finish();
        assert_ne!(a, b);
        let c = KeyBuilder::new("run", &Digest::of(b"q"))
            .field("x", "ab")
            .field("y", "c")
            .finish();
        assert_ne!(a, c, "the parent is part of the key");
        assert_eq!(
            a,
            KeyBuilder::new("run", &p)
                .field("x", "ab")
                .field("y", "c")
                .finish()
        );
    }
}
