//! Layer compression: detection by media type or magic bytes, streaming decompression and compression.
//!
//! Layers are stored uncompressed locally (docker's own store does the same) and compressed only when an
//! image leaves the machine, so `compress` is the exporter's hot loop: it digests the uncompressed input
//! (the diff_id) and the compressed output (the blob digest) in the same pass. zstd uses libzstd's worker
//! threads and gzip a pigz-style block-parallel deflate ([`crate::pgzip`]); neither output depends on the
//! thread count; `examples/layer_bench.rs` measures both.

use std::io::{self, BufReader, Read, Write};

use strata_image::{Digest, Sha256Writer};

/// How a layer blob is compressed: strata-image's type (media types, magic-byte detection), re-exported
/// under the name this crate's API uses.
pub use strata_image::LayerCompression as Compression;

/// The default level of `compression`: gzip 6 as `gzip` and Go's default, zstd 3 as the zstd CLI's.
pub fn default_level(compression: Compression) -> i32 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 6,
        Compression::Zstd => 3,
    }
}

/// A reader of the uncompressed stream of `reader`, whose compression is detected from its first bytes.
///
/// Media types lie in practice (docker once labeled uncompressed layers `tar.gzip`), so the bytes decide.
pub fn decompressed<'a, R: Read + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    // A pipe may deliver fewer bytes per read than asked for; loop until the magic is complete or EOF.
    while n < magic.len() {
        match reader.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::detect(&magic[..n]);
    let prefixed = io::Cursor::new(magic).take(n as u64).chain(reader);
    decompressed_as(prefixed, compression)
}

/// A reader of the uncompressed stream of `reader`, compressed as `compression` says.
pub fn decompressed_as<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(BufReader::with_capacity(128 * 1024, reader)),
        // Multi-member gzip streams are valid (pigz, concatenated blobs), hence MultiGzDecoder.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// The result of [`compress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressed {
    /// sha256 of the compressed output: the blob digest.
    pub digest: Digest,
    /// Bytes written: the blob size.
    pub size: u64,
    /// sha256 of the uncompressed input: the diff_id.
    pub diff_id: Digest,
    /// Bytes read.
    pub uncompressed_size: u64,
}

/// Compresses `reader` into `out` as `compression` at `level`, digesting input and output on the way.
///
/// `Compression::None` copies. zstd uses libzstd's worker threads (the output stays one standard
/// frame) and gzip compresses 128 KiB blocks in parallel (one standard gzip member within ~2% of
/// the single-stream size); for both the output is the same for any `threads`, so the digest of
/// a compressed layer does not depend on the machine that made it.
pub fn compress<R: Read, W: Write>(
    mut reader: R,
    out: W,
    compression: Compression,
    level: i32,
    threads: u32,
) -> io::Result<Compressed> {
    let mut input = Sha256Writer::new(io::sink());
    let output = Sha256Writer::new(out);
    let output = match compression {
        Compression::None => {
            let mut tee = Tee {
                a: &mut input,
                b: output,
            };
            io::copy(&mut reader, &mut tee)?;
            tee.b
        }
        // Always the block-parallel stream, even on one thread: its bytes depend only on the
        // input and the level, so a layer's compressed digest is the same on every machine.
        Compression::Gzip => {
            let mut output = output;
            let mut tee = TeeReader {
                inner: reader,
                hasher: &mut input,
            };
            crate::pgzip::compress(
                &mut tee,
                &mut output,
                level.clamp(0, 9) as u32,
                threads.max(1) as usize,
            )?;
            output
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(output, level)?;
            // libzstd's multithreaded frames are the same for any number of workers >= 1 (and
            // differ from its single-threaded ones): always at least one worker, for the same
            // reason as gzip above.
            encoder.multithread(threads.max(1))?;
            // The content size is unknown for a stream; a checksum lets readers detect corruption.
            encoder.include_checksum(true)?;
            let mut tee = Tee {
                a: &mut input,
                b: encoder,
            };
            io::copy(&mut reader, &mut tee)?;
            tee.b.finish()?
        }
    };
    let (diff_id, uncompressed_size, _) = input.finish();
    let (digest, size, mut out) = output.finish();
    out.flush()?;
    Ok(Compressed {
        digest,
        size,
        diff_id,
        uncompressed_size,
    })
}

/// Writes everything to both `a` (a hasher) and `b`.
struct Tee<'a, A, B> {
    a: &'a mut A,
    b: B,
}

impl<A: Write, B: Write> Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.b.write(buf)?;
        self.a.write_all(&buf[..n])?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.b.flush()
    }
}

/// Hashes everything read through it (the diff_id side of [`compress`]).
struct TeeReader<'a, R, H> {
    inner: R,
    hasher: &'a mut H,
}

impl<R: Read, H: Write> Read for TeeReader<'_, R, H> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_does_not_depend_on_the_thread_count() {
        // Compressible but not trivial: several blocks of varied text.
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("{i} {}\n", i.wrapping_mul(2_654_435_761) % 1000).into_bytes())
            .collect();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let outputs: Vec<Compressed> = [1, 2, 3]
                .iter()
                .map(|threads| {
                    compress(&data[..], io::sink(), compression, 3, *threads).expect("compress")
                })
                .collect();
            assert!(
                outputs.windows(2).all(|w| w[0] == w[1]),
                "{compression:?}: {outputs:?}"
            );
        }
    }
}
