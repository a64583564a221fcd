//! Loading and saving stream: peak memory stays far below the image size.
//!
//! Its own test binary, so no other test's allocations count towards the peak.

mod common;

use std::fs;
use std::io::{BufReader, BufWriter};

use common::{DirBlobs, fixtures, peak_rss};
use strata_image::archive::{SaveImage, read_archive, write_docker_archive};

#[test]
fn load_and_save_of_a_600_mb_image_stay_under_100_mb() {
    let input = fixtures().join("docker-archive/golang_1.19.tar");
    let size = fs::metadata(&input).unwrap().len();
    assert!(size > 500_000_000, "fixture is {size} bytes");
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = DirBlobs {
        dir: dir.path().to_path_buf(),
    };
    let images = read_archive(BufReader::new(fs::File::open(&input).unwrap()), &mut blobs).unwrap();
    let out = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
    let save: Vec<SaveImage> = images
        .iter()
        .map(|i| SaveImage {
            manifest_digest: i.manifest_digest,
            refs: i.refs.clone(),
        })
        .collect();
    write_docker_archive(BufWriter::new(out.reopen().unwrap()), &save, &blobs).unwrap();
    let written = out.as_file().metadata().unwrap().len();
    assert!(
        written > size - 10_000_000,
        "saved {written} of {size} bytes"
    );
    let peak = peak_rss();
    assert!(peak < 100_000_000, "peak RSS {peak} bytes");
}
