//! Snapshots: unpacked layers kept as overlay diff directories, `snapshots/<n>/fs`, each
//! recorded under its chain_id in `snapshots/records/<chain_id hex>`.
//!
//! Lifecycle: [`Store::prepare_snapshot`] allocates a fresh numeric directory (mkdir is the
//! atomic allocation, so no lock is needed) and flocks `snapshots/<n>/preparing`; the caller
//! fills `fs` (unpacking a layer, or using it as an overlay upperdir with `work` as workdir);
//! then either [`Store::commit_snapshot`] publishes it under its chain_id, or dropping the
//! [`PreparedSnapshot`] removes it. A directory without a record whose `preparing` lock is free
//! was left by a crash, and [`Store::gc`] removes it. Short numeric names keep overlay mount
//! options short.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_image::Digest;

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{ensure_dir, list_dir, remove_all, write_atomic};

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The numeric directory name under `snapshots/`.
    pub id: u64,
    /// The unpacked layer (`snapshots/<id>/fs`): an overlay lowerdir.
    #[serde(skip)]
    pub dir: PathBuf,
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
}

/// A snapshot being filled; commit it or drop it (which removes it).
#[derive(Debug)]
pub struct PreparedSnapshot {
    pub id: u64,
    /// Fill this directory (or mount it as an overlay upperdir).
    pub dir: PathBuf,
    /// An empty directory on the same filesystem, for overlay's workdir.
    pub work_dir: PathBuf,
    base: PathBuf,
    lock: Option<File>,
}

impl Drop for PreparedSnapshot {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = remove_all(&self.base);
        }
    }
}

impl Store {
    fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    fn record_path(&self, chain_id: &Digest) -> PathBuf {
        self.snapshots_dir().join("records").join(chain_id.hex())
    }

    /// Allocates a new, empty snapshot directory.
    pub fn prepare_snapshot(&self) -> Result<PreparedSnapshot> {
        self.hold_lease()?;
        let dir = self.snapshots_dir();
        let mut next = list_dir(&dir)?
            .iter()
            .filter_map(|(name, _)| name.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        let base = loop {
            let candidate = dir.join(next.to_string());
            match fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                // Another process took this number first: try the next one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(e).ctx("create snapshot directory", candidate),
            }
        };
        let lock_path = base.join("preparing");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .ctx("create", &lock_path)?;
        lock.lock().ctx("lock", &lock_path)?;
        let prepared = PreparedSnapshot {
            id: next,
            dir: base.join("fs"),
            work_dir: base.join("work"),
            base,
            lock: Some(lock),
        };
        ensure_dir(&prepared.dir)?;
        ensure_dir(&prepared.work_dir)?;
        Ok(prepared)
    }

    /// Publishes a prepared snapshot as `chain_id`. Idempotent: if `chain_id` is already
    /// committed (by us or by a concurrent process), the prepared one is discarded and the
    /// existing snapshot returned.
    pub fn commit_snapshot(
        &self,
        mut prepared: PreparedSnapshot,
        chain_id: Digest,
        diff_id: Digest,
        parent: Option<Digest>,
    ) -> Result<Snapshot> {
        let _guard = self.lock_index()?;
        if let Some(existing) = self.snapshot(&chain_id)? {
            return Ok(existing); // `prepared` is removed when dropped
        }
        remove_all(&prepared.work_dir)?;
        let snapshot = Snapshot {
            id: prepared.id,
            dir: prepared.dir.clone(),
            chain_id,
            diff_id,
            parent,
        };
        let bytes = serde_json::to_vec(&snapshot).map_err(|source| StoreError::Json {
            what: "snapshot record",
            path: self.record_path(&chain_id),
            source,
        })?;
        write_atomic(&self.record_path(&chain_id), &bytes)?;
        // Committed: the directory now belongs to the record, not to this handle.
        prepared.lock = None;
        remove_all(&prepared.base.join("preparing"))?;
        Ok(snapshot)
    }

    /// The committed snapshot for `chain_id`, if any.
    pub fn snapshot(&self, chain_id: &Digest) -> Result<Option<Snapshot>> {
        let path = self.record_path(chain_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", path),
        };
        let mut snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
                what: "snapshot record",
                path: path.clone(),
                source,
            })?;
        snapshot.dir = self
            .snapshots_dir()
            .join(snapshot.id.to_string())
            .join("fs");
        if !snapshot.dir.is_dir() {
            return Ok(None);
        }
        Ok(Some(snapshot))
    }

    /// Every committed snapshot.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        for (name, _) in list_dir(&self.snapshots_dir().join("records"))? {
            let Ok(chain_id) = Digest::from_hex(&name) else {
                continue;
            };
            if let Some(s) = self.snapshot(&chain_id)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The overlay lowerdirs for a chain of layers (chain ids bottom first), top first; `None`
    /// if any layer is not unpacked yet.
    pub fn lower_dirs(&self, chain_ids: &[Digest]) -> Result<Option<Vec<PathBuf>>> {
        let mut dirs = Vec::with_capacity(chain_ids.len());
        for chain_id in chain_ids.iter().rev() {
            match self.snapshot(chain_id)? {
                Some(s) => dirs.push(s.dir),
                None => return Ok(None),
            }
        }
        Ok(Some(dirs))
    }

    /// Removes a committed snapshot. Refused while another snapshot names it as parent.
    pub fn remove_snapshot(&self, chain_id: &Digest) -> Result<()> {
        let _guard = self.lock_index()?;
        let snapshot = self
            .snapshot(chain_id)?
            .ok_or(StoreError::SnapshotNotFound(*chain_id))?;
        if let Some(child) = self
            .snapshots()?
            .into_iter()
            .find(|s| s.parent == Some(*chain_id))
        {
            return Err(StoreError::SnapshotHasChildren {
                chain_id: *chain_id,
                child: child.chain_id,
            });
        }
        self.remove_snapshot_locked(&snapshot)
    }

    /// Record first, then the directory: a crash in between leaves an orphan directory that
    /// GC removes, never a record pointing at a half-deleted tree.
    pub(crate) fn remove_snapshot_locked(&self, snapshot: &Snapshot) -> Result<()> {
        remove_all(&self.record_path(&snapshot.chain_id))?;
        remove_all(&self.snapshots_dir().join(snapshot.id.to_string()))
    }

    /// Snapshot directories with no record whose preparer is gone (crashed).
    pub(crate) fn stale_snapshot_dirs(&self, committed: &[Snapshot]) -> Result<Vec<PathBuf>> {
        let mut stale = Vec::new();
        for (name, path) in list_dir(&self.snapshots_dir())? {
            let Ok(id) = name.parse::<u64>() else {
                continue;
            };
            if committed.iter().any(|s| s.id == id) {
                continue;
            }
            let lock_path = path.join("preparing");
            let live = match File::open(&lock_path) {
                Ok(f) => f.try_lock().is_err(),
                // No lock file and no record: removal was interrupted, or the commit's record
                // write was: either way nothing owns it.
                Err(_) => false,
            };
            if !live {
                stale.push(path);
            }
        }
        Ok(stale)
    }
}
