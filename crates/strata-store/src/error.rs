//! The store's error type: every variant names the path, digest or query it is about.

use std::io;
use std::path::PathBuf;

use strata_image::Digest;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unpack layer {layer}: {source}")]
    Unpack {
        layer: Digest,
        #[source]
        source: strata_layer::ApplyError,
    },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a strata store: {reason}", path.display())]
    NotAStore { path: PathBuf, reason: String },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    #[error("invalid {what} {}: {source}", path.display())]
    Json {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid digest {value:?} in {}: {source}", path.display())]
    BadDigest {
        value: String,
        path: PathBuf,
        #[source]
        source: strata_image::DigestError,
    },
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("{query:?} is ambiguous: it is a prefix of {} image ids ({})", candidates.len(), short_list(candidates))]
    AmbiguousId {
        query: String,
        candidates: Vec<Digest>,
    },
    #[error("invalid reference {query:?}: {reason}")]
    InvalidReference { query: String, reason: String },
    #[error("manifest {digest} has media type {media_type:?}, which is not an image manifest")]
    NotAnImageManifest { digest: Digest, media_type: String },
    #[error("image config {digest}: {source}")]
    Config {
        digest: Digest,
        #[source]
        source: strata_image::config::ConfigError,
    },
    #[error("snapshot {0} does not exist")]
    SnapshotNotFound(Digest),
    #[error("snapshot {chain_id} is the parent of snapshot {child}; remove the child first")]
    SnapshotHasChildren { chain_id: Digest, child: Digest },
    #[error("invalid root name {0:?}: use letters, digits, '.', '_' and '-'")]
    InvalidRootName(String),
}

fn short_list(candidates: &[Digest]) -> String {
    candidates
        .iter()
        .map(|d| d.short())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shorthand for the store's results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches the operation and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
