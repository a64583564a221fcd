//! Compares single-stream gzip with strata's parallel gzip on one file: `gzip_bench FILE`.

#![allow(clippy::print_stdout)]

use std::io::Write as _;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| std::io::Error::other("usage: gzip_bench FILE"))?;
    let input = std::fs::read(&path)?;
    let start = Instant::now();
    let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    single.write_all(&input)?;
    let single = single.finish()?;
    let single_time = start.elapsed();
    for threads in [1, 2] {
        let start = Instant::now();
        let mut out = Vec::new();
        strata_registry::gzip::compress(input.as_slice(), &mut out, 6, threads)?;
        println!(
            "parallel x{threads}: {:.2?} ({} bytes)",
            start.elapsed(),
            out.len()
        );
    }
    println!(
        "single stream: {single_time:.2?} ({} bytes) for {} bytes",
        single.len(),
        input.len()
    );
    Ok(())
}
