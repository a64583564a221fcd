//! `resave IN OUT`: loads an image archive (any layout `read_archive` accepts) into a
//! temporary directory of blobs, then saves every image it named with `write_docker_archive`.
//!
//! Used to check what strata writes against real consumers (`docker load`, `podman load`,
//! `skopeo inspect`) and to measure peak memory on large images
//! (`/usr/bin/time -v cargo run --release --example resave -- big.tar out.tar`).

use std::fs;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::PathBuf;

use strata_image::archive::{
    BlobSink, BlobSource, BoxError, SaveImage, read_archive, write_docker_archive,
};
use strata_image::{Digest, Sha256Writer};

struct DirBlobs(PathBuf);

impl BlobSink for DirBlobs {
    fn ingest(
        &mut self,
        reader: &mut dyn Read,
        expected: Option<(Digest, u64)>,
    ) -> Result<(Digest, u64), BoxError> {
        let tmp = tempfile::NamedTempFile::new_in(&self.0)?;
        let mut w = Sha256Writer::new(BufWriter::new(tmp));
        io::copy(reader, &mut w)?;
        let (digest, size, buffered) = w.finish();
        let tmp = buffered.into_inner().map_err(|e| e.into_error())?;
        if let Some((want, want_size)) = expected
            && (want, want_size) != (digest, size)
        {
            return Err(format!(
                "blob {want} ({want_size} bytes) arrived as {digest} ({size} bytes)"
            )
            .into());
        }
        tmp.persist(self.0.join(digest.hex()))?;
        Ok((digest, size))
    }
}

impl BlobSource for DirBlobs {
    fn open_blob(&self, digest: &Digest) -> Result<(Box<dyn Read + '_>, u64), BoxError> {
        let f = fs::File::open(self.0.join(digest.hex()))?;
        let size = f.metadata()?.len();
        Ok((Box::new(BufReader::new(f)), size))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        return Err("usage: resave IN OUT".into());
    };
    let dir = tempfile::tempdir()?;
    let mut blobs = DirBlobs(dir.path().to_path_buf());
    let started = std::time::Instant::now();
    let images = read_archive(BufReader::new(fs::File::open(input)?), &mut blobs)?;
    let loaded = started.elapsed();
    for image in &images {
        let names: Vec<String> = image.refs.iter().map(|r| r.familiar()).collect();
        eprintln!("loaded {} {}", image.config_digest.short(), names.join(" "));
    }
    let save: Vec<SaveImage> = images
        .iter()
        .map(|i| SaveImage {
            manifest_digest: i.manifest_digest,
            refs: i.refs.clone(),
        })
        .collect();
    let started = std::time::Instant::now();
    write_docker_archive(BufWriter::new(fs::File::create(output)?), &save, &blobs)?;
    eprintln!(
        "load {:.2}s, save {:.2}s",
        loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
