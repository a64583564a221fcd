//! Build-cache records: a cache key digest → a JSON payload the build engine defines, plus the
//! blobs and snapshots the payload depends on, so garbage collection keeps them.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_image::Digest;

use crate::Store;
use crate::error::Result;
use crate::fsutil::{list_dir, read_json_record, remove_all, write_json_record};

/// One build-cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Opaque to the store.
    pub payload: serde_json::Value,
    /// Blobs (layers, configs) the payload refers to: kept alive by this record.
    #[serde(default)]
    pub blobs: Vec<Digest>,
    /// Snapshots the payload refers to: kept alive by this record.
    #[serde(default)]
    pub chain_ids: Vec<Digest>,
    pub created: DateTime<Utc>,
}

impl Store {
    fn cache_path(&self, key: &Digest) -> PathBuf {
        self.root.join("cache").join(key.hex())
    }

    /// The record stored under `key`, if any.
    pub fn cache_get(&self, key: &Digest) -> Result<Option<CacheRecord>> {
        read_json_record(self.cache_path(key), "cache record")
    }

    /// Stores (or replaces) the record for `key`, atomically.
    pub fn cache_put(&self, key: &Digest, record: &CacheRecord) -> Result<()> {
        write_json_record(self.cache_path(key), "cache record", record)
    }

    /// Every cache record with its key.
    pub fn cache_records(&self) -> Result<Vec<(Digest, CacheRecord)>> {
        let mut out = Vec::new();
        for (name, _) in list_dir(&self.root.join("cache"))? {
            let Ok(key) = Digest::from_hex(&name) else {
                continue; // temporary files of an atomic write in progress
            };
            if let Some(record) = self.cache_get(&key)? {
                out.push((key, record));
            }
        }
        Ok(out)
    }

    /// Removes the records `remove` selects; returns how many. Run [`Store::gc`] afterwards to
    /// free what only they kept alive.
    pub fn cache_prune(&self, remove: impl Fn(&Digest, &CacheRecord) -> bool) -> Result<usize> {
        let _guard = self.lock_index()?;
        let mut removed = 0;
        for (key, record) in self.cache_records()? {
            if remove(&key, &record) {
                remove_all(&self.cache_path(&key))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
