//! Content-addressed blobs: `blobs/sha256/<hex>`, written through an ingest file.
//!
//! An [`Ingest`] is a file under `ingest/` on the same filesystem, hashed while it is written.
//! `commit` fsyncs it, checks size and digest against what the caller expected, and renames it
//! to its content address; a blob is therefore either absent or complete and correct. Committing
//! content that is already present is a no-op (the ingest file is dropped), so commits are
//! idempotent and two writers of the same blob never conflict. While an ingest is open its file
//! is flock'ed, which is how [`crate::Store::gc`] tells a live ingest from one a crash left
//! behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use strata_image::{Digest, Sha256Writer};

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{sync_dir, unique_name};

/// The outcome of [`Ingest::commit_detailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub digest: Digest,
    pub size: u64,
    /// Whether the blob was new (false when identical content was already stored).
    pub created: bool,
}

/// A blob being written; `commit` publishes it, dropping it discards it.
#[derive(Debug)]
pub struct Ingest<'s> {
    store: &'s Store,
    path: PathBuf,
    writer: Option<Sha256Writer<BufWriter<File>>>,
}

impl Store {
    /// Starts writing a blob. The content becomes visible only through [`Ingest::commit`].
    pub fn ingest(&self) -> Result<Ingest<'_>> {
        self.hold_lease()?;
        let path = self.ingest_dir().join(unique_name(""));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create ingest file", &path)?;
        // Held until the ingest is committed or dropped: an unlocked ingest file is stale.
        file.lock().ctx("lock ingest file", &path)?;
        Ok(Ingest {
            store: self,
            path,
            writer: Some(Sha256Writer::new(BufWriter::with_capacity(1 << 20, file))),
        })
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut ingest = self.ingest()?;
        ingest.write_all(bytes).ctx("write", &ingest.path)?;
        ingest.commit(Some((digest, bytes.len() as u64)))?;
        Ok(digest)
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobNotFound(*digest)),
            Err(e) => Err(e).ctx("stat blob", path),
        }
    }

    /// Opens a blob for streaming. The reader checks the digest when it reaches the end and
    /// fails the final read with `InvalidData` if the content was altered on disk.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader<File>> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(file) => Ok(VerifyingReader::new(file, *digest)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobNotFound(*digest)),
            Err(e) => Err(e).ctx("open blob", path),
        }
    }

    /// Reads a whole blob into memory, verifying its digest (for manifests and configs).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobNotFound(*digest));
            }
            Err(e) => return Err(e).ctx("read blob", path),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Every blob present, with its size.
    pub fn blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for (name, path) in crate::fsutil::list_dir(&dir)? {
            // Foreign files in the layout are tolerated, not ours to judge.
            let Ok(digest) = Digest::from_hex(&name) else {
                continue;
            };
            let size = fs::symlink_metadata(&path).ctx("stat blob", &path)?.len();
            out.push((digest, size));
        }
        Ok(out)
    }

    pub(crate) fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }
}

impl Ingest<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.written())
    }

    /// Verifies and publishes the blob. With `expected`, a different size or digest is an error
    /// and nothing is published. Returns the digest and size of what was written.
    pub fn commit(self, expected: Option<(Digest, u64)>) -> Result<(Digest, u64)> {
        self.commit_detailed(expected).map(|c| (c.digest, c.size))
    }

    /// [`Ingest::commit`], also telling whether this commit created the blob (so a failed
    /// larger operation can undo exactly what it added, see [`Store::discard_blobs`]).
    pub fn commit_detailed(mut self, expected: Option<(Digest, u64)>) -> Result<Committed> {
        let Some(writer) = self.writer.take() else {
            unreachable!("an ingest is committed at most once: commit takes self")
        };
        let (digest, size, buffered) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("write", &self.path)?;
        if let Some((expected_digest, expected_size)) = expected {
            if size != expected_size {
                return Err(StoreError::SizeMismatch {
                    digest: expected_digest,
                    expected: expected_size,
                    actual: size,
                });
            }
            if digest != expected_digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected_digest,
                    actual: digest,
                });
            }
        }
        let target = self.store.blob_path(&digest);
        if target.is_file() {
            // Already present: content addressing makes the existing file identical.
            return Ok(Committed {
                digest,
                size,
                created: false,
            });
        }
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .ctx("chmod", &self.path)?;
        file.sync_all().ctx("sync", &self.path)?;
        fs::rename(&self.path, &target).ctx("rename into place", &target)?;
        let dir = target.parent().unwrap_or(Path::new("."));
        sync_dir(dir)?;
        Ok(Committed {
            digest,
            size,
            created: true,
        })
    }
}

impl Write for Ingest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("ingest already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Ingest<'_> {
    fn drop(&mut self) {
        // Committed ingests were renamed away; anything else is discarded.
        let _ = fs::remove_file(&self.path);
    }
}

/// A reader that hashes what passes through and fails at end of stream on a digest mismatch.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    checked: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            checked: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.checked {
            self.checked = true;
            let actual = Digest::from_bytes(self.hasher.clone().finalize().into());
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    StoreError::DigestMismatch {
                        expected: self.expected,
                        actual,
                    },
                ));
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
