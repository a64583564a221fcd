//! Block-parallel gzip, as pigz does it: the input is cut into fixed blocks, each compressed on its own
//! thread as raw deflate primed with the previous 32 KiB of input (so the ratio stays close to a
//! single stream) and ended with a sync flush (so blocks concatenate at byte boundaries); the writer
//! joins them in order, combines the per-block CRC-32s and ends the stream with an empty final block.
//!
//! The output is one ordinary gzip member that any decoder reads, and it depends only on the input and
//! the level, never on the number of threads, so a layer's compressed digest is reproducible.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Crc, FlushCompress};

/// Input bytes per block (pigz's default).
const BLOCK: usize = 128 * 1024;
/// Deflate's window: how much preceding input primes each block.
const WINDOW: usize = 32 * 1024;

type Job = (u64, Arc<Vec<u8>>, Arc<Vec<u8>>);
type Done = (u64, io::Result<(Vec<u8>, Crc)>);

/// Compresses `reader` into `out` as one gzip member using `threads` worker threads.
///
/// The calling thread reads and writes (so neither needs to be `Send`); at most two blocks per worker
/// are in flight, which bounds memory to a few MiB whatever the input size.
pub(crate) fn compress<R: Read, W: Write>(
    mut reader: R,
    out: &mut W,
    level: u32,
    threads: usize,
) -> io::Result<()> {
    let level = flate2::Compression::new(level.min(9));
    // The header flate2's GzEncoder writes: no name, mtime 0, OS "unknown".
    let xfl = if level.level() >= 9 {
        2
    } else if level.level() <= 1 {
        4
    } else {
        0
    };
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;

    let threads = threads.max(1);
    let max_in_flight = threads * 2;
    let (crc, total) = std::thread::scope(|scope| -> io::Result<(Crc, u64)> {
        let (job_tx, job_rx) = channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = channel::<Done>();
        for _ in 0..threads {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            scope.spawn(move || compress_blocks(&job_rx, &done_tx, level));
        }
        drop(done_tx);

        let mut ordered = InOrder::default();
        let mut in_flight = 0usize;
        let mut previous: Arc<Vec<u8>> = Arc::new(Vec::new());
        let mut total = 0u64;
        for index in 0.. {
            let mut block = Vec::with_capacity(BLOCK);
            let n = (&mut reader).take(BLOCK as u64).read_to_end(&mut block)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            while in_flight >= max_in_flight {
                let done = done_rx
                    .recv()
                    .map_err(|_| io::Error::other("gzip workers stopped"))?;
                in_flight -= 1;
                ordered.accept(done, out)?;
            }
            let dictionary = Arc::new(previous[previous.len().saturating_sub(WINDOW)..].to_vec());
            let block = Arc::new(block);
            job_tx
                .send((index, dictionary, Arc::clone(&block)))
                .map_err(|_| io::Error::other("gzip workers stopped"))?;
            in_flight += 1;
            previous = block;
        }
        // No more jobs: the workers finish what is queued and exit.
        drop(job_tx);
        for done in done_rx.iter() {
            ordered.accept(done, out)?;
        }
        Ok((ordered.crc, total))
    })?;
    // The final empty block (fixed Huffman, BFINAL set), then CRC-32 and ISIZE (size mod 2^32).
    out.write_all(&[0x03, 0x00])?;
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&(total as u32).to_le_bytes())?;
    Ok(())
}

/// Writes compressed blocks in input order, whatever order the workers finish them in.
#[derive(Default)]
struct InOrder {
    pending: BTreeMap<u64, (Vec<u8>, Crc)>,
    next: u64,
    crc: Crc,
}

impl InOrder {
    fn accept<W: Write>(&mut self, (index, result): Done, out: &mut W) -> io::Result<()> {
        self.pending.insert(index, result?);
        while let Some((bytes, block_crc)) = self.pending.remove(&self.next) {
            out.write_all(&bytes)?;
            self.crc.combine(&block_crc);
            self.next += 1;
        }
        Ok(())
    }
}

fn compress_blocks(jobs: &Mutex<Receiver<Job>>, done: &Sender<Done>, level: flate2::Compression) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok((index, dictionary, block)) = job else {
            return;
        };
        let result = compress_block(&dictionary, &block, level);
        if done.send((index, result)).is_err() {
            return;
        }
    }
}

fn compress_block(
    dictionary: &[u8],
    block: &[u8],
    level: flate2::Compression,
) -> io::Result<(Vec<u8>, Crc)> {
    let mut deflate = Compress::new(level, false);
    if !dictionary.is_empty() {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(block.len() / 2 + 1024);
    let mut input = block;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(64 * 1024);
        }
        let before_in = deflate.total_in();
        deflate
            .compress_vec(input, &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        input = &input[(deflate.total_in() - before_in) as usize..];
        // Done when all input is consumed and the flush left spare room (nothing more pending).
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(block);
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text with a slowly changing counter.
        let mut data = Vec::with_capacity(len);
        let mut i = 0u64;
        while data.len() < len {
            data.extend_from_slice(
                format!("line {i} of a layer, value {}\n", i * 7 % 1000).as_bytes(),
            );
            i += 1;
        }
        data.truncate(len);
        data
    }

    #[test]
    fn round_trips_at_every_block_boundary() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
            let data = sample(len);
            let mut out = Vec::new();
            compress(&data[..], &mut out, 6, 2).unwrap();
            assert_eq!(gunzip(&out), data, "length {len}");
        }
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let data = sample(5 * BLOCK + 1234);
        let outputs: Vec<Vec<u8>> = [1, 2, 3]
            .iter()
            .map(|&threads| {
                let mut out = Vec::new();
                compress(&data[..], &mut out, 6, threads).unwrap();
                out
            })
            .collect();
        assert!(outputs.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn ratio_stays_close_to_a_single_stream() {
        let data = sample(8 * BLOCK);
        let mut parallel = Vec::new();
        compress(&data[..], &mut parallel, 6, 2).unwrap();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap();
        assert!(
            parallel.len() as f64 <= single.len() as f64 * 1.02,
            "{} vs {}",
            parallel.len(),
            single.len()
        );
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        let err = compress(Failing(3 * BLOCK), &mut Vec::new(), 6, 2).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
