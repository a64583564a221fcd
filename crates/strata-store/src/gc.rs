//! Garbage collection: remove blobs, snapshots and layer records that nothing reaches.
//!
//! Roots are the `index.json` entries, the build-cache records, and the extra roots other
//! users register under `roots/<name>` (a running container keeps its image's manifest, a
//! build keeps what it is working on). From a manifest (or image index) the walk reaches its
//! config and layers; from a config, its diff_ids and so the chain_ids of the snapshots.
//! GC holds `gc.lock` exclusively (waiting for every writer's lease) and the index lock.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_image::Digest;

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{list_dir, remove_all, write_atomic};
use crate::lock;

/// Content that must survive garbage collection on behalf of someone else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roots {
    /// Manifests (or image indexes): they keep their config, layers and snapshots.
    #[serde(default)]
    pub manifests: Vec<Digest>,
    /// Individual blobs.
    #[serde(default)]
    pub blobs: Vec<Digest>,
    /// Snapshots (their parents are kept too).
    #[serde(default)]
    pub chain_ids: Vec<Digest>,
}

/// Manifests, configs and indexes are small; anything bigger is a layer and never parsed.
const DOCUMENT_LIMIT: u64 = 16 << 20;

/// What the roots reach.
struct Reachable {
    blobs: HashSet<Digest>,
    chains: HashSet<Digest>,
    diff_ids: HashSet<Digest>,
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: Vec<Digest>,
    /// Bytes of blobs removed.
    pub bytes_freed: u64,
    pub snapshots_removed: Vec<Digest>,
    /// Snapshot directories and ingest files left behind by crashed processes.
    pub stale_removed: usize,
}

fn valid_root_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Store {
    fn root_path(&self, name: &str) -> Result<PathBuf> {
        if !valid_root_name(name) {
            return Err(StoreError::InvalidRootName(name.to_string()));
        }
        Ok(self.root.join("roots").join(name))
    }

    /// Registers (or replaces) the extra roots called `name`.
    pub fn set_roots(&self, name: &str, roots: &Roots) -> Result<()> {
        let path = self.root_path(name)?;
        let bytes = serde_json::to_vec(roots).map_err(|source| StoreError::Json {
            what: "roots",
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes)
    }

    /// Drops the extra roots called `name` (missing is fine).
    pub fn remove_roots(&self, name: &str) -> Result<()> {
        remove_all(&self.root_path(name)?)
    }

    /// Every registered set of extra roots, by name.
    pub fn roots(&self) -> Result<Vec<(String, Roots)>> {
        let mut out = Vec::new();
        for (name, path) in list_dir(&self.root.join("roots"))? {
            if !valid_root_name(&name) {
                continue;
            }
            let bytes = fs::read(&path).ctx("read", &path)?;
            let roots = serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                what: "roots",
                path,
                source,
            })?;
            out.push((name, roots));
        }
        Ok(out)
    }

    /// Removes everything unreachable. Waits for other processes writing to this store to
    /// finish (they hold a lease).
    pub fn gc(&self) -> Result<GcReport> {
        // Our own lease would deadlock the exclusive lock; drop it, new writes re-take it.
        drop(self.lease.lock().unwrap_or_else(|p| p.into_inner()).take());
        let gc = lock::exclusive(&self.root.join("gc.lock"))?;
        self.collect(gc)
    }

    /// Like [`Store::gc`], but returns `None` at once instead of waiting when another process
    /// holds a lease (is writing): for commands such as `rmi` that should not block on a build.
    pub fn gc_if_idle(&self) -> Result<Option<GcReport>> {
        drop(self.lease.lock().unwrap_or_else(|p| p.into_inner()).take());
        match lock::try_exclusive(&self.root.join("gc.lock"))? {
            Some(gc) => self.collect(gc).map(Some),
            None => Ok(None),
        }
    }

    fn collect(&self, _gc: lock::Guard) -> Result<GcReport> {
        let _index = self.lock_index()?;
        let Reachable {
            blobs,
            mut chains,
            diff_ids,
        } = self.reachable()?;

        let mut report = GcReport::default();
        for (digest, size) in self.blobs()? {
            if !blobs.contains(&digest) {
                remove_all(&self.blob_path(&digest))?;
                report.blobs_removed.push(digest);
                report.bytes_freed += size;
            }
        }

        let snapshots = self.snapshots()?;
        // A kept snapshot keeps its parents (they are its overlay lowers).
        let mut changed = true;
        while changed {
            changed = false;
            for s in &snapshots {
                if let Some(p) = s.parent.filter(|_| chains.contains(&s.chain_id)) {
                    changed |= chains.insert(p);
                }
            }
        }
        for s in &snapshots {
            if !chains.contains(&s.chain_id) {
                self.remove_snapshot_locked(s)?;
                report.snapshots_removed.push(s.chain_id);
            }
        }
        let kept: Vec<_> = snapshots
            .into_iter()
            .filter(|s| chains.contains(&s.chain_id))
            .collect();
        for dir in self.stale_snapshot_dirs(&kept)? {
            remove_all(&dir)?;
            report.stale_removed += 1;
        }
        for (_, path) in list_dir(&self.ingest_dir())? {
            let stale = File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
            if stale {
                remove_all(&path)?;
                report.stale_removed += 1;
            }
        }
        for (name, path) in list_dir(&self.root.join("layers"))? {
            if Digest::from_hex(&name).is_ok_and(|d| !diff_ids.contains(&d)) {
                remove_all(&path)?;
            }
        }
        Ok(report)
    }

    /// Everything the roots reach. Call with the index lock held.
    fn reachable(&self) -> Result<Reachable> {
        let mut manifests: Vec<Digest> = self.images()?.into_iter().map(|e| e.digest).collect();
        let mut blobs: HashSet<Digest> = HashSet::new();
        let mut chains: HashSet<Digest> = HashSet::new();
        let mut diff_ids: HashSet<Digest> = HashSet::new();
        for (_, roots) in self.roots()? {
            manifests.extend(roots.manifests);
            blobs.extend(roots.blobs);
            chains.extend(roots.chain_ids);
        }
        for (_, record) in self.cache_records()? {
            blobs.extend(record.blobs);
            chains.extend(record.chain_ids);
        }
        // Blobs a root names directly may themselves be manifests or configs.
        let mut queue: Vec<Digest> = manifests;
        queue.extend(blobs.iter().copied());
        while let Some(digest) = queue.pop() {
            blobs.insert(digest);
            // Only documents are worth parsing; never read a layer into memory.
            if self
                .blob_size(&digest)
                .map_or(true, |size| size > DOCUMENT_LIMIT)
            {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest) else {
                continue; // missing or altered: nothing more is reachable through it
            };
            let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue; // not a document
            };
            let children = |field: &str| {
                doc.get(field)
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(descriptor_digest)
                    .collect::<Vec<_>>()
            };
            for child in children("manifests") {
                if !blobs.contains(&child) {
                    queue.push(child);
                }
            }
            blobs.extend(children("layers"));
            if let Some(child) = doc.get("config").and_then(descriptor_digest) {
                blobs.insert(child);
                if let Some(ids) = self.config_diff_ids(&child) {
                    chains.extend(strata_image::chain_id(&ids));
                    diff_ids.extend(ids);
                }
            }
        }
        Ok(Reachable {
            blobs,
            chains,
            diff_ids,
        })
    }

    /// Removes `blobs` that nothing reaches: the undo of a failed operation (a load whose
    /// archive turned out bad) for the blobs it created, so the store is as before.
    pub fn discard_blobs(&self, blobs: &[Digest]) -> Result<()> {
        let _index = self.lock_index()?;
        let reachable = self.reachable()?;
        for digest in blobs {
            if !reachable.blobs.contains(digest) {
                remove_all(&self.blob_path(digest))?;
            }
        }
        Ok(())
    }

    /// The diff_ids of a config blob, if it is one.
    fn config_diff_ids(&self, config: &Digest) -> Option<Vec<Digest>> {
        let bytes = self.read_blob(config).ok()?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        doc.get("rootfs")?
            .get("diff_ids")?
            .as_array()?
            .iter()
            .map(|v| v.as_str()?.parse().ok())
            .collect()
    }
}

fn descriptor_digest(d: &serde_json::Value) -> Option<Digest> {
    d.get("digest")?.as_str()?.parse().ok()
}
