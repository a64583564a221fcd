//! The real fixture images (busybox, debian): every layer applies to exactly the tree GNU tar extracts,
//! with the diff_id the image config records, and survives a write → apply → write round trip.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_layer::{WriteOptions, apply_layer, unpack_overlay_diff, write_layer};

fn fixtures() -> PathBuf {
    std::env::var_os("STRATA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/strata-fixtures"))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

/// (layer blob path, diff_id) of the image in an OCI layout, bottom first.
fn layers(layout: &Path) -> Vec<(PathBuf, String)> {
    let index = read_json(&layout.join("index.json"));
    let manifest = read_json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = read_json(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            (
                blob(layout, layer["digest"].as_str().unwrap()),
                diff_id.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn without_root(dir: &Path) -> common::Snapshot {
    let mut s = common::snapshot(dir);
    s.remove(Path::new(""));
    s
}

fn check_image(name: &str) {
    let layout = fixtures().join("oci").join(name);
    assert!(
        layout.exists(),
        "fixture {} missing (run make-base-images)",
        layout.display()
    );
    let ours = tempfile::tempdir().unwrap();
    let gnu = tempfile::tempdir().unwrap();
    for (blob, diff_id) in layers(&layout) {
        let stats = apply_layer(std::fs::File::open(&blob).unwrap(), ours.path()).unwrap();
        assert_eq!(
            stats.diff_id.to_string(),
            diff_id,
            "{name}: diff_id of {}",
            blob.display()
        );
        let status = Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&blob)
            .arg("-C")
            .arg(gnu.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let ours_snapshot = without_root(ours.path());
    assert!(
        ours_snapshot.len() > 100,
        "{name}: suspiciously small rootfs"
    );
    // GNU tar's directory mtimes are not authoritative: it replaces its symlink placeholders after
    // restoring them. Those are checked against the headers below.
    let no_dir_times = |dir: &Path| {
        let mut s = common::snapshot_without_dir_times(dir);
        s.remove(Path::new(""));
        s
    };
    common::assert_same(
        &no_dir_times(ours.path()),
        &no_dir_times(gnu.path()),
        &format!("{name}: apply_layer vs GNU tar"),
    );
    let layers = layers(&layout);
    if let [(blob, _)] = &layers[..] {
        let reader = strata_layer::decompressed(std::fs::File::open(blob).unwrap()).unwrap();
        let mut archive = tar::Archive::new(reader);
        let mut checked = 0;
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            if entry.header().entry_type().is_dir() {
                let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
                let md = std::fs::symlink_metadata(ours.path().join(&path)).unwrap();
                assert_eq!(
                    md.mtime() as u64,
                    entry.header().mtime().unwrap(),
                    "{name}: mtime of {path}"
                );
                checked += 1;
            }
        }
        assert!(checked > 3, "{name}: only {checked} directories");
    }

    // Single-layer images have no whiteouts, so the overlay-diff form is the same tree.
    if layers.len() == 1 {
        let diff = tempfile::tempdir().unwrap();
        unpack_overlay_diff(std::fs::File::open(&layers[0].0).unwrap(), diff.path()).unwrap();
        common::assert_same(
            &without_root(diff.path()),
            &ours_snapshot,
            &format!("{name}: unpack_overlay_diff vs apply_layer"),
        );
    }

    // Our own layer of the rootfs round-trips byte for byte.
    let mut first = Vec::new();
    write_layer(ours.path(), &mut first, &WriteOptions::default()).unwrap();
    let copy = tempfile::tempdir().unwrap();
    apply_layer(&first[..], copy.path()).unwrap();
    let mut second = Vec::new();
    write_layer(copy.path(), &mut second, &WriteOptions::default()).unwrap();
    assert!(
        first == second,
        "{name}: write → apply → write changed the layer"
    );
}

#[test]
fn busybox_applies_like_gnu_tar() {
    check_image("busybox_1.35");
}

#[test]
fn debian_applies_like_gnu_tar() {
    check_image("debian_bookworm-slim");
}
