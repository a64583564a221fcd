//! Helpers shared by the archive tests: tar building, a hashing-only sink, a directory store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use strata_image::Digest;
use strata_image::Sha256Writer;
use strata_image::archive::{BlobSink, BlobSource, BoxError};

pub fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("STRATA_FIXTURES").unwrap_or_else(|_| "/var/cache/strata-fixtures".into()),
    )
}

/// An in-memory tar under construction.
pub struct Tar(tar::Builder<Vec<u8>>);

impl Default for Tar {
    fn default() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
}

impl Tar {
    pub fn file(mut self, path: &str, bytes: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        self.0.append_data(&mut h, path, bytes).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(tar::EntryType::Symlink);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn dir(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        self.0.append_data(&mut h, path, io::empty()).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Tars a directory tree (an OCI layout) into `out`.
pub fn tar_dir(dir: &Path, out: impl Write) {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap().flush().unwrap();
}

/// A sink that only hashes and counts: for multi-hundred-megabyte fixtures.
#[derive(Debug, Default)]
pub struct HashSink {
    pub blobs: BTreeMap<Digest, u64>,
}

impl BlobSink for HashSink {
    fn ingest(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<(Digest, u64)>,
    ) -> Result<(Digest, u64), BoxError> {
        let mut w = Sha256Writer::new(io::sink());
        io::copy(reader, &mut w)?;
        let (digest, size, _) = w.finish();
        if let Some(e) = expected
            && e != (digest, size)
        {
            return Err(format!(
                "expected {} ({} bytes), got {digest} ({size} bytes)",
                e.0, e.1
            )
            .into());
        }
        self.blobs.insert(digest, size);
        Ok((digest, size))
    }
}

/// Blobs as files `<dir>/<hex>`: ingest → verify → rename, like the real store.
#[derive(Debug)]
pub struct DirBlobs {
    pub dir: PathBuf,
}

impl BlobSink for DirBlobs {
    fn ingest(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<(Digest, u64)>,
    ) -> Result<(Digest, u64), BoxError> {
        let tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        let mut w = Sha256Writer::new(io::BufWriter::new(tmp));
        io::copy(reader, &mut w)?;
        let (digest, size, buffered) = w.finish();
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        if let Some(e) = expected
            && e != (digest, size)
        {
            return Err(format!("expected {} ({} bytes), got {digest}", e.0, e.1).into());
        }
        tmp.persist(self.dir.join(digest.hex()))?;
        Ok((digest, size))
    }
}

impl BlobSource for DirBlobs {
    fn open_blob(&self, digest: &Digest) -> Result<(Box<dyn Read + '_>, u64), BoxError> {
        let f = fs::File::open(self.dir.join(digest.hex()))?;
        let size = f.metadata()?.len();
        Ok((Box::new(io::BufReader::new(f)), size))
    }
}

/// Peak resident set size of this process, in bytes (VmHWM).
pub fn peak_rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}
