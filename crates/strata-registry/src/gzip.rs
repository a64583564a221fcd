//! gzip on every core, the way pigz does it: the input is cut into fixed blocks, each block is
//! deflated on its own thread with the previous 32 KiB as preset dictionary and ends with a
//! sync flush, and the raw deflate streams are concatenated into ONE gzip member (header,
//! blocks, combined CRC-32, size). Any gzip reader decodes it as a normal stream; the output is
//! deterministic for a given input, level and block size.
//!
//! Pushing a layer that strata stores uncompressed is bound by compression; with this it
//! scales with the cores instead of using one.

use std::io::{self, Read, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes per independently deflated block.
const BLOCK: usize = 1024 * 1024;
/// Deflate's window: what a block may refer back to in the previous one.
const WINDOW: usize = 32 * 1024;

/// One gzip header: no name, no mtime (so the output only depends on the input), OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Compresses `input` to `output` as a single gzip member using `threads` threads.
pub fn compress(
    mut input: impl Read,
    mut output: impl Write,
    level: u32,
    threads: usize,
) -> io::Result<()> {
    let threads = threads.max(1);
    output.write_all(&HEADER)?;
    let mut crc = Crc::new();
    let mut total: u64 = 0;
    let mut dictionary: Vec<u8> = Vec::new();
    let mut next = read_block(&mut input)?;
    loop {
        // A batch of up to `threads` blocks; the last block of the input is the one after
        // which nothing follows.
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(threads);
        let mut finished = false;
        while batch.len() < threads {
            let block = next;
            next = read_block(&mut input)?;
            let dict = std::mem::take(&mut dictionary);
            dictionary = block[block.len().saturating_sub(WINDOW)..].to_vec();
            if block.len() < WINDOW && !dict.is_empty() {
                // A short block: the window reaches back into the previous block too.
                let mut joined = dict[dict.len().saturating_sub(WINDOW - block.len())..].to_vec();
                joined.extend_from_slice(&block);
                dictionary = joined;
            }
            batch.push((dict, block));
            if next.is_empty() {
                finished = true;
                break;
            }
        }
        let last_index = batch.len() - 1;
        let results: Vec<io::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .enumerate()
                .map(|(i, (dict, block))| {
                    let last = finished && i == last_index;
                    scope.spawn(move || deflate_block(dict, block, level, last))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))
                })
                .collect()
        });
        for ((_, block), compressed) in batch.iter().zip(results) {
            output.write_all(&compressed?)?;
            let mut block_crc = Crc::new();
            block_crc.update(block);
            crc.combine(&block_crc);
            total += block.len() as u64;
        }
        if finished {
            break;
        }
    }
    output.write_all(&crc.sum().to_le_bytes())?;
    // ISIZE is the input size modulo 2^32 (RFC 1952).
    output.write_all(&((total & 0xffff_ffff) as u32).to_le_bytes())?;
    output.flush()
}

/// Reads up to one block; empty only at the end of the input.
fn read_block(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(BLOCK);
    input.take(BLOCK as u64).read_to_end(&mut block)?;
    Ok(block)
}

/// Raw deflate of one block: primed with `dictionary`, ended by a sync flush (byte aligned,
/// so the next block's stream can follow) or, for the last block, by the final block marker.
fn deflate_block(dictionary: &[u8], block: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut deflate = Compress::new(Compression::new(level.min(9)), false);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(block.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&block[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = deflate.total_in() as usize == block.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete once all input is in and deflate left output room.
            Status::Ok | Status::BufError if !last && done_input && out.len() < out.capacity() => {
                return Ok(out);
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    /// Pseudo-random but compressible input of `len` bytes.
    fn sample(len: usize) -> Vec<u8> {
        let mut state: u32 = 0x1234_5678;
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if i % 7 == 0 {
                    (state >> 24) as u8
                } else {
                    b"layer tar bytes "[i % 16]
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_at_every_size_boundary() {
        for len in [
            0,
            1,
            WINDOW - 1,
            WINDOW,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + WINDOW / 2,
            5 * BLOCK,
        ] {
            let input = sample(len);
            for threads in [1, 2, 3] {
                let mut out = Vec::new();
                compress(input.as_slice(), &mut out, 6, threads).expect("compress");
                assert_eq!(gunzip(&out), input, "len {len}, threads {threads}");
            }
        }
    }

    #[test]
    fn deterministic_and_independent_of_threads() {
        let input = sample(3 * BLOCK + 17);
        let mut one = Vec::new();
        let mut two = Vec::new();
        compress(input.as_slice(), &mut one, 6, 1).expect("compress");
        compress(input.as_slice(), &mut two, 6, 2).expect("compress");
        assert_eq!(one, two);
        // Close to what a single stream achieves: the dictionary carries context across blocks.
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&input).expect("gzip");
        let single = single.finish().expect("finish");
        assert!(
            one.len() <= single.len() + single.len() / 50,
            "{} vs {}",
            one.len(),
            single.len()
        );
    }
}
