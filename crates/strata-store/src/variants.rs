//! Compressed variants of uncompressed layers: which blob a layer became when it was compressed
//! with a given compression and level, so the next push or `--output` of the same layer reuses
//! that blob instead of compressing again.
//!
//! Layers built locally are stored uncompressed (their blob digest is their diff_id); they are
//! compressed only when an image leaves the machine. One small record per (source blob,
//! compression, level) under `ROOT/variants/<source hex>/<compression>-<level>`, written by
//! atomic rename. A record outlives the compressed bytes (garbage collection may remove them):
//! a registry may still have the blob, and callers that need the bytes check
//! [`Store::has_blob`]. Compressing the same input at the same level gives the same bytes
//! (strata's compressors are deterministic), so a record never goes stale.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_image::{Digest, LayerCompression};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::fsutil::{ensure_dir, read_json_record, write_json_record};

/// One remembered compression of an uncompressed layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedVariant {
    /// The stored blob it was made from: for a layer built locally, the uncompressed layer,
    /// whose digest is its diff_id; for a pulled layer exported in another compression, the
    /// stored compressed blob.
    pub source: Digest,
    /// How it was compressed.
    pub compression: LayerCompression,
    /// At which level.
    pub level: i32,
    /// The compressed blob's digest.
    pub digest: Digest,
    /// The compressed blob's size in bytes.
    pub size: u64,
}

impl Store {
    fn variant_path(&self, source: &Digest, compression: LayerCompression, level: i32) -> PathBuf {
        self.root
            .join("variants")
            .join(source.hex())
            .join(format!("{}-{level}", compression.name()))
    }

    /// The variant of `source` compressed as `compression` at `level`, if one was recorded.
    pub fn compressed_variant(
        &self,
        source: &Digest,
        compression: LayerCompression,
        level: i32,
    ) -> Result<Option<CompressedVariant>> {
        read_json_record(
            self.variant_path(source, compression, level),
            "compressed variant record",
        )
    }

    /// The blob of `source` compressed as `compression` at `level`: the remembered variant when
    /// its blob is still stored, otherwise compressed now (streaming from the stored blob into a
    /// new one on `threads` threads, digested on the way) and remembered. The stored blob may be
    /// compressed itself (a pulled layer): it is decompressed first, so the result is always
    /// exactly `compression`.
    pub fn compress_layer(
        &self,
        source: &Digest,
        compression: LayerCompression,
        level: i32,
        threads: u32,
    ) -> Result<CompressedVariant> {
        if let Some(known) = self.compressed_variant(source, compression, level)?
            && self.has_blob(&known.digest)
        {
            return Ok(known);
        }
        let path = self.blob_path(source);
        let io = |error| StoreError::Io {
            op: "compress layer",
            path: path.clone(),
            source: error,
        };
        let reader = strata_layer::decompressed(self.open_blob(source)?).map_err(io)?;
        let mut ingest = self.ingest()?;
        let compressed =
            strata_layer::compress(reader, &mut ingest, compression, level, threads).map_err(io)?;
        let (digest, size) = ingest.commit(Some((compressed.digest, compressed.size)))?;
        let variant = CompressedVariant {
            source: *source,
            compression,
            level,
            digest,
            size,
        };
        self.set_compressed_variant(&variant)?;
        Ok(variant)
    }

    /// Records a compressed variant (idempotent: the bytes are a function of the key).
    pub fn set_compressed_variant(&self, variant: &CompressedVariant) -> Result<()> {
        let path = self.variant_path(&variant.source, variant.compression, variant.level);
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        write_json_record(path, "compressed variant record", variant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_keyed_by_compression_and_level() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let diff_id = Digest::of(b"tar");
        let gzip6 = CompressedVariant {
            source: diff_id,
            compression: LayerCompression::Gzip,
            level: 6,
            digest: Digest::of(b"gzip 6"),
            size: 6,
        };
        assert_eq!(
            store
                .compressed_variant(&diff_id, LayerCompression::Gzip, 6)
                .expect("read"),
            None
        );
        store.set_compressed_variant(&gzip6).expect("write");
        let cases = [
            (LayerCompression::Gzip, 6, Some(gzip6)),
            (LayerCompression::Gzip, 1, None),
            (LayerCompression::Zstd, 6, None),
        ];
        for (compression, level, expected) in cases {
            assert_eq!(
                store
                    .compressed_variant(&diff_id, compression, level)
                    .expect("read"),
                expected,
                "{compression:?} {level}"
            );
        }
    }

    #[test]
    fn compress_layer_compresses_once_then_reuses_the_remembered_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let tar: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let diff_id = store.put_blob(&tar).expect("put");
        for compression in [LayerCompression::Gzip, LayerCompression::Zstd] {
            let first = store
                .compress_layer(&diff_id, compression, 3, 2)
                .expect("compress");
            assert!(store.has_blob(&first.digest));
            assert_eq!(
                store
                    .compressed_variant(&diff_id, compression, 3)
                    .expect("read"),
                Some(first)
            );
            // Compressing is deterministic, so equal output cannot tell reuse from work; a
            // record naming another stored blob can: it is returned as is.
            let marker = store.put_blob(b"remembered").expect("put");
            let remembered = CompressedVariant {
                level: 4,
                digest: marker,
                size: 10,
                ..first
            };
            store.set_compressed_variant(&remembered).expect("record");
            assert_eq!(
                store
                    .compress_layer(&diff_id, compression, 4, 2)
                    .expect("reuse"),
                remembered
            );
            // A record whose blob was collected is compressed again.
            let gone = CompressedVariant {
                level: 5,
                digest: Digest::of(b"collected"),
                ..first
            };
            store.set_compressed_variant(&gone).expect("record");
            let redone = store
                .compress_layer(&diff_id, compression, 5, 2)
                .expect("redo");
            assert_ne!(redone.digest, gone.digest);
            assert!(store.has_blob(&redone.digest));
            let blob = store.blob_path(&first.digest);
            let mut plain = Vec::new();
            std::io::Read::read_to_end(
                &mut strata_layer::decompressed(std::fs::File::open(&blob).expect("open"))
                    .expect("decoder"),
                &mut plain,
            )
            .expect("decompress");
            assert_eq!(plain, tar, "{compression:?}");
        }
    }
}
