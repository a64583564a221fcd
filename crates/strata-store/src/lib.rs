//! The strata store: a directory that is at the same time a valid OCI image layout and strata's
//! working state.
//!
//! ```text
//! ROOT/oci-layout, ROOT/index.json   the OCI layout: one manifest entry per tag, annotated with
//!                                    `org.opencontainers.image.ref.name` = the full reference
//! ROOT/blobs/sha256/<hex>            content-addressed blobs (ingest → verify → rename)
//! ROOT/ingest/                       blobs being written (flock'ed while alive)
//! ROOT/snapshots/<n>/fs              unpacked layers (overlay diffs), short numeric n
//! ROOT/snapshots/records/<chain_id>  which n holds which chain_id
//! ROOT/cache/<key>                   build-cache records (payload opaque to the store)
//! ROOT/roots/<name>                  extra GC roots registered by other users of the content
//! ROOT/layers/<diff_id>              per-layer facts computed once (unpacked size)
//! ROOT/variants/<diff_id>/<c>-<level> compressed variants of uncompressed layers (push, --output)
//! ROOT/index.lock, ROOT/gc.lock      the locks
//! ```
//!
//! Concurrency: every read-modify-write of `index.json` and of the records happens under an
//! exclusive flock of `index.lock`, and files are replaced by atomic rename, so readers never
//! lock and two processes never lose each other's updates. Writers of new content hold a shared
//! *lease* (`gc.lock`, taken automatically on the first ingest or prepare) and [`Store::gc`]
//! takes it exclusively, so garbage collection never deletes content another process has
//! written but not yet tagged.

mod archive;
mod blobs;
mod cache;
mod error;
mod fsutil;
mod gc;
mod images;
mod layers;
mod lock;
mod resolve;
mod snapshots;
mod unpack;
mod variants;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use archive::StoreSink;
pub use blobs::{Committed, Ingest, VerifyingReader};
pub use cache::CacheRecord;
pub use error::{Result, StoreError};
pub use gc::{GcReport, Roots};
pub use images::{Image, ImageEntry, PutImage, REF_NAME_ANNOTATION, TagOutcome};
pub use layers::LayerInfo;
pub use resolve::{Query, classify};
pub use snapshots::{PreparedSnapshot, Snapshot};
pub use variants::CompressedVariant;

use error::IoContext;
use fsutil::{ensure_dir, write_atomic};

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// An open store. Cheap to keep around; every method re-reads what it needs from disk, so
/// several `Store`s (in one or many processes) can share a root.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// The shared `gc.lock` flock held while this process may have unreferenced content.
    lease: Mutex<Option<File>>,
}

impl Store {
    /// Opens the store at `root`, creating an empty layout when the directory is missing or empty.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        ensure_dir(&root)?;
        let store = Store {
            root,
            lease: Mutex::new(None),
        };
        let layout = store.root.join("oci-layout");
        if !layout.is_file() || !store.index_path().is_file() {
            let _guard = store.lock_index()?;
            if !layout.is_file() {
                write_atomic(&layout, OCI_LAYOUT.as_bytes())?;
            }
            if !store.index_path().is_file() {
                write_atomic(&store.index_path(), EMPTY_INDEX.as_bytes())?;
            }
        }
        let text = std::fs::read_to_string(&layout).ctx("read", &layout)?;
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_owned));
        if version.as_deref() != Some("1.0.0") {
            return Err(StoreError::NotAStore {
                path: store.root.clone(),
                reason: format!("oci-layout is {text:?}, expected imageLayoutVersion 1.0.0"),
            });
        }
        for dir in [
            "blobs/sha256",
            "ingest",
            "snapshots/records",
            "cache",
            "roots",
            "layers",
        ] {
            ensure_dir(&store.root.join(dir))?;
        }
        // Created up front so the set of files only changes with content.
        for lock in ["index.lock", "gc.lock"] {
            lock::touch(&store.root.join(lock))?;
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Takes the shared GC lease once per `Store`: new content written from now on is safe from
    /// a concurrent [`Store::gc`] until this `Store` is dropped.
    fn hold_lease(&self) -> Result<()> {
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        if lease.is_none() {
            *lease = Some(lock::shared(&self.root.join("gc.lock"))?);
        }
        Ok(())
    }

    fn lock_index(&self) -> Result<lock::Guard> {
        lock::exclusive(&self.root.join("index.lock"))
    }
}
