//! Image archives: `docker save` / `docker load` tars and OCI archives, streamed.
//!
//! Reading ([`read_archive`]) accepts docker's legacy layout (`manifest.json` + `<id>.json` +
//! `<layer>/layer.tar`), Docker 25+'s dual layout (an OCI image layout plus `manifest.json`),
//! plain OCI archives (`index.json` + `blobs/`), and gzip-compressed archives of any of them.
//! A tar can only be read once and `manifest.json` may come last, so every regular file is
//! streamed into a [`BlobSink`] as it passes (layers never sit in memory) and the images are
//! resolved at the end from what was seen; files nothing references are left for the store's
//! garbage collection.
//!
//! Writing ([`write_docker_archive`]) emits the dual layout docker, podman and skopeo all load,
//! deterministically (fixed entry order, mtime 0, uid/gid 0, modes 0644/0755, canonical JSON),
//! so save → load → save reproduces the same bytes. Blobs are streamed from a [`BlobSource`].

mod read;
mod resolve;
mod write;

use std::collections::BTreeMap;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::config::ConfigError;
use crate::digest::Digest;
use crate::manifest::ManifestError;
use crate::reference::{Reference, ReferenceError};

pub use read::read_archive;
pub use write::{SaveImage, write_docker_archive};

/// An error from a [`BlobSink`] or [`BlobSource`] implementation (the store's own typed error,
/// boxed so this crate stays store-agnostic; callers may downcast it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a loaded archive's blobs go (the store implements it).
///
/// Lifecycle per blob: `ingest` reads `reader` to its end, verifies size and digest against
/// `expected` when given, and only then makes the blob visible; on error nothing is visible.
pub trait BlobSink {
    fn ingest(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<(Digest, u64)>,
    ) -> Result<(Digest, u64), BoxError>;
}

/// Where a saved archive's blobs come from (the store implements it).
pub trait BlobSource {
    /// Opens blob `digest`; returns a reader of its bytes and its size.
    fn open_blob(&self, digest: &Digest) -> Result<(Box<dyn Read + '_>, u64), BoxError>;
}

/// One image found in an archive, its blobs already in the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The names the archive gives it, normalized (`RepoTags`, `io.containerd.image.name`, or a
    /// full reference in `org.opencontainers.image.ref.name`).
    pub refs: Vec<Reference>,
    /// `org.opencontainers.image.ref.name` values that are only a tag (`1.35`, `latest`): an
    /// OCI archive made by skopeo or umoci names images this way, and only the caller knows
    /// which repository they belong to.
    pub bare_tags: Vec<String>,
    /// The manifest exactly as stored (for the legacy layout: the Docker v2s2 manifest strata
    /// synthesized, already ingested into the sink).
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    /// The config digest: docker's IMAGE ID.
    pub config_digest: Digest,
}

/// Why an archive could not be read or written. One line each, naming the file or digest.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive is truncated: {path} ends after {read} of {expected} bytes")]
    TruncatedEntry {
        path: String,
        read: u64,
        expected: u64,
    },
    #[error("archive is truncated or corrupt: {source}")]
    Truncated { source: io::Error },
    #[error("reading archive: {source}")]
    Read { source: io::Error },
    #[error("not a tar archive (plain or gzip-compressed): {source}")]
    NotAnArchive { source: io::Error },
    #[error("not an image archive: neither manifest.json (docker save) nor index.json (OCI) found")]
    MissingManifest,
    #[error("{path} is missing from the archive (referenced by {referenced_by})")]
    MissingFile { path: String, referenced_by: String },
    #[error("blob {path}: digest mismatch: expected {expected}, found {actual}")]
    DigestMismatch {
        path: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: size mismatch: {referenced_by} says {expected} bytes, found {actual}")]
    SizeMismatch {
        path: String,
        referenced_by: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {path}: diff_id mismatch: the config lists {expected}, the layer is {actual}")]
    DiffIdMismatch {
        path: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{path}: the manifest lists {layers} layers but the config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        path: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Manifest { path: String, source: ManifestError },
    #[error("{path}: {source}")]
    Config { path: String, source: ConfigError },
    #[error("{path}: {source}")]
    Reference {
        path: String,
        source: ReferenceError,
    },
    #[error("{path}: unknown media type {media_type:?}")]
    UnknownMediaType { path: String, media_type: String },
    #[error("{path}: {size} bytes is too large for {what} (limit {limit})")]
    TooLarge {
        path: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("unsafe path {path:?} in archive")]
    UnsafePath { path: String },
    #[error("{path}: too many levels of links")]
    LinkLoop { path: String },
    #[error("{path}: index lists no manifest for any platform present in the archive")]
    NoManifestInIndex { path: String },
    #[error("storing {path}: {source}")]
    Sink { path: String, source: BoxError },
    #[error("reading blob {digest}: {source}")]
    Source { digest: Digest, source: BoxError },
    #[error("writing archive: {source}")]
    Write { source: io::Error },
}

/// Blobs in memory: a [`BlobSink`] and [`BlobSource`] for tests and small tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryBlobs {
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

/// Errors of [`MemoryBlobs`].
#[derive(Debug, thiserror::Error)]
pub enum MemoryBlobError {
    #[error(
        "blob {expected} ({expected_size} bytes) does not match its content {actual} ({actual_size} bytes)"
    )]
    Mismatch {
        expected: Digest,
        expected_size: u64,
        actual: Digest,
        actual_size: u64,
    },
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("reading blob: {0}")]
    Io(#[from] io::Error),
}

impl BlobSink for MemoryBlobs {
    fn ingest(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<(Digest, u64)>,
    ) -> Result<(Digest, u64), BoxError> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(MemoryBlobError::Io)?;
        let digest = Digest::of(&bytes);
        let size = bytes.len() as u64;
        if let Some((expected, expected_size)) = expected
            && (expected != digest || expected_size != size)
        {
            return Err(MemoryBlobError::Mismatch {
                expected,
                expected_size,
                actual: digest,
                actual_size: size,
            }
            .into());
        }
        self.blobs.insert(digest, bytes);
        Ok((digest, size))
    }
}

impl BlobSource for MemoryBlobs {
    fn open_blob(&self, digest: &Digest) -> Result<(Box<dyn Read + '_>, u64), BoxError> {
        let bytes = self
            .blobs
            .get(digest)
            .ok_or(MemoryBlobError::NotFound(*digest))?;
        Ok((Box::new(&bytes[..]), bytes.len() as u64))
    }
}

/// A reader that hashes and counts what passes through and remembers the first error, so a
/// failure inside a sink can be told apart from a truncated or corrupt archive.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    error: Option<io::Error>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            error: None,
        }
    }

    fn finish(self) -> (Digest, u64, Option<io::Error>) {
        (
            Digest::from_bytes(self.hasher.finalize().into()),
            self.count,
            self.error,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted && self.error.is_none() {
                    self.error = Some(io::Error::new(e.kind(), e.to_string()));
                }
                Err(e)
            }
        }
    }
}

/// `blobs/sha256/<hex>`: the archive path of a blob in an OCI layout.
fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Classifies an io error from the archive stream.
fn stream_error(e: io::Error) -> ArchiveError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ArchiveError::Truncated { source: e }
    } else {
        ArchiveError::Read { source: e }
    }
}
