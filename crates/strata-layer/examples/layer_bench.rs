//! Throughput of the layer hot paths on the golang fixture image (two layers, ~600 MB unpacked):
//! apply_layer and unpack_overlay_diff of the real gzip blobs, write_layer / write_overlay_diff of the
//! resulting tree, and compression of that tar with gzip and zstd at several levels and thread counts.
//!
//! `cargo run --release -p strata-layer --example layer_bench [IMAGE] [SCRATCH_DIR]`
//! (IMAGE defaults to golang_1.19 under $STRATA_FIXTURES/oci; SCRATCH_DIR to a fresh directory in /tmp).

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use strata_layer::{
    Compression, WriteOptions, apply_layer, compress, unpack_overlay_diff, write_layer,
    write_overlay_diff,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image = args.next().unwrap_or_else(|| "golang_1.19".to_string());
    let fixtures = std::env::var_os("STRATA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/strata-fixtures"));
    let layout = fixtures.join("oci").join(&image);
    let scratch = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("strata-layer-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&scratch)?;

    let blobs = layer_blobs(&layout)?;
    let compressed: u64 = blobs
        .iter()
        .map(|b| b.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();

    let rootfs = scratch.join("rootfs");
    std::fs::create_dir(&rootfs)?;
    let start = now();
    let mut unpacked = 0;
    for blob in &blobs {
        unpacked += apply_layer(File::open(blob)?, &rootfs)?.size;
    }
    report("apply_layer (gzip blobs)", unpacked, start);
    println!(
        "    ({} MiB compressed in {} layers)",
        compressed >> 20,
        blobs.len()
    );

    let diff = scratch.join("diff");
    std::fs::create_dir(&diff)?;
    let start = now();
    let mut size = 0;
    for (i, blob) in blobs.iter().enumerate() {
        let dir = diff.join(i.to_string());
        std::fs::create_dir(&dir)?;
        size += unpack_overlay_diff(File::open(blob)?, &dir)?.size;
    }
    report("unpack_overlay_diff (gzip blobs)", size, start);

    let start = now();
    let info = write_layer(&rootfs, io::sink(), &WriteOptions::default())?;
    report(
        "write_layer -> sink (walk + read + sha256)",
        info.size,
        start,
    );

    let tar_path = scratch.join("layer.tar");
    let start = now();
    let info = write_layer(
        &rootfs,
        BufWriter::new(File::create(&tar_path)?),
        &WriteOptions::default(),
    )?;
    report("write_layer -> file", info.size, start);

    let start = now();
    let info = write_overlay_diff(&rootfs, io::sink(), &WriteOptions::default())?;
    report("write_overlay_diff -> sink", info.size, start);

    let start = now();
    let stats = apply_layer(
        File::open(&tar_path)?,
        &fresh_dir(scratch.join("reapplied"))?,
    )?;
    report("apply_layer (uncompressed tar)", stats.size, start);

    for (compression, level, threads) in [
        (Compression::Gzip, 1, 1),
        (Compression::Gzip, 6, 1),
        (Compression::Gzip, 6, 2),
        (Compression::Zstd, 3, 1),
        (Compression::Zstd, 3, 2),
        (Compression::Zstd, 1, 2),
    ] {
        let start = now();
        let out = compress(
            File::open(&tar_path)?,
            io::sink(),
            compression,
            level,
            threads,
        )?;
        report(
            &format!("compress {compression:?} level {level}, {threads} thread(s)"),
            out.uncompressed_size,
            start,
        );
        println!(
            "    ratio {:.3}",
            out.size as f64 / out.uncompressed_size as f64
        );
    }

    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

fn fresh_dir(path: PathBuf) -> io::Result<PathBuf> {
    std::fs::create_dir(&path)?;
    Ok(path)
}

/// Prints wall-clock and CPU-time throughput. The machine is shared, so MiB per CPU-second (user +
/// system, all threads of this process) is the steadier figure; wall time shows what a user waits.
fn report(what: &str, bytes: u64, start: Start) {
    let wall = start.wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - start.cpu;
    let mib = bytes as f64 / 1048576.0;
    println!(
        "{what:<46} {mib:>7.1} MiB  wall {wall:>6.2} s = {:>6.1} MiB/s  cpu {cpu:>6.2} s = {:>6.1} MiB/cpu-s",
        mib / wall,
        mib / cpu
    );
}

#[derive(Clone, Copy)]
struct Start {
    wall: Instant,
    cpu: f64,
}

fn now() -> Start {
    Start {
        wall: Instant::now(),
        cpu: cpu_seconds(),
    }
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full `rusage` into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The layer blobs of the first manifest of an OCI layout, bottom first (a minimal JSON walk, so the
/// example needs no JSON dependency).
fn layer_blobs(layout: &Path) -> io::Result<Vec<PathBuf>> {
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = std::fs::read_to_string(layout.join("index.json"))?;
    let manifest_digest = digests(&index)
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::other("empty index"))?;
    let manifest = std::fs::read_to_string(blob(&manifest_digest))?;
    let layers_at = manifest
        .find("\"layers\"")
        .ok_or_else(|| io::Error::other("manifest without layers"))?;
    Ok(digests(&manifest[layers_at..])
        .iter()
        .map(|d| blob(d))
        .collect())
}

fn digests(json: &str) -> Vec<String> {
    json.match_indices("sha256:")
        .map(|(i, _)| json[i..i + 71].to_string())
        .collect()
}
