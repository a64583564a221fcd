//! The store as the two ends of an image archive: a [`BlobSink`] for `load` (remembering what
//! it created, so a failed load can be undone) and a [`BlobSource`] for `save`.

use std::io::{self, Read};

use strata_image::Digest;
use strata_image::archive::{BlobSink, BlobSource, BoxError};

use crate::Store;
use crate::error::Result;

/// Streams blobs into the store; see [`Store::sink`].
#[derive(Debug)]
pub struct StoreSink<'s> {
    store: &'s Store,
    created: Vec<Digest>,
}

impl Store {
    /// A sink for [`strata_image::archive::read_archive`].
    pub fn sink(&self) -> StoreSink<'_> {
        StoreSink {
            store: self,
            created: Vec::new(),
        }
    }
}

impl StoreSink<'_> {
    /// The blobs this sink added to the store (not those it found already present).
    pub fn created(&self) -> &[Digest] {
        &self.created
    }

    /// Undoes the sink: removes the blobs it created unless something references them by now.
    pub fn discard(self) -> Result<()> {
        self.store.discard_blobs(&self.created)
    }
}

impl BlobSink for StoreSink<'_> {
    fn ingest(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<(Digest, u64)>,
    ) -> Result<(Digest, u64), BoxError> {
        if let Some((digest, size)) = expected
            && self.store.blob_size(&digest).ok() == Some(size)
        {
            // Already stored (and verified when it was): skip the write, but consume the stream
            // as the contract says.
            io::copy(reader, &mut io::sink())?;
            return Ok((digest, size));
        }
        let mut ingest = self.store.ingest()?;
        io::copy(reader, &mut ingest)?;
        let committed = ingest.commit_detailed(expected)?;
        if committed.created {
            self.created.push(committed.digest);
        }
        Ok((committed.digest, committed.size))
    }
}

impl BlobSource for Store {
    fn open_blob(&self, digest: &Digest) -> Result<(Box<dyn Read + '_>, u64), BoxError> {
        let size = self.blob_size(digest)?;
        let reader = Store::open_blob(self, digest)?;
        Ok((
            Box::new(io::BufReader::with_capacity(1 << 20, reader)),
            size,
        ))
    }
}
