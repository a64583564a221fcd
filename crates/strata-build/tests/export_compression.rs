//! `--output type=oci|docker,compression=…`: the busybox fixture, loaded into a temporary
//! store, exported with compressed layers. The archive is read back as a file system would:
//! `index.json` to the manifest, the manifest's layer media types, each layer blob decompressed
//! and digested against the config's diff_ids; skopeo must accept the archive. Needs the fixtures
//! and skopeo.

mod common;

use common::load_busybox;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use strata_build::solve::export::{self, Output};
use strata_image::{Digest, ImageConfig, LayerCompression};
use strata_store::Store;

/// A store holding the busybox fixture; returns its manifest digest.
fn busybox(dir: &Path) -> (Store, Digest) {
    let store = Store::open(dir.join("store")).unwrap();
    let digest = load_busybox(&store)[0].manifest_digest;
    (store, digest)
}

/// Every file of a tar, by path.
fn entries(path: &Path) -> HashMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut files = HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(name, bytes);
    }
    files
}

fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").unwrap();
    files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("blob {digest} missing"))
}

fn decompress(bytes: &[u8], compression: LayerCompression) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        LayerCompression::Gzip => flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap(),
        LayerCompression::Zstd => zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap(),
        LayerCompression::None => unreachable!("the test exports compressed layers only"),
    };
    out
}

#[test]
fn compressed_archives_carry_compressed_layers_and_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest_digest) = busybox(dir.path());
    let stored = store.image(&manifest_digest).unwrap();
    let refs = ["strata-test/compressed:1".parse().unwrap()];
    let cases = [
        (
            "type=oci,compression=gzip",
            LayerCompression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "oci-archive",
        ),
        (
            "type=oci,compression=zstd,compression-level=5",
            LayerCompression::Zstd,
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "oci-archive",
        ),
        (
            "type=docker,compression=gzip,compression-level=1",
            LayerCompression::Gzip,
            // The fixture came from a docker-archive: a docker export keeps its manifest format.
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "docker-archive",
        ),
    ];
    for (i, (spec, compression, layer_media_type, transport)) in cases.into_iter().enumerate() {
        let dest = dir.path().join(format!("out-{i}.tar"));
        let output = Output::parse(&format!("{spec},dest={}", dest.display())).unwrap();
        export::export(&store, &manifest_digest, &refs, &output).unwrap_or_else(|e| panic!("{e}"));

        let files = entries(&dest);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let manifest_ref = index["manifests"][0]["digest"].as_str().unwrap();
        assert_ne!(
            manifest_ref,
            manifest_digest.to_string(),
            "{spec}: manifest rewritten"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(blob(&files, manifest_ref)).unwrap();
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        assert_eq!(
            config_digest,
            stored.config_digest.to_string(),
            "{spec}: the config (and so the IMAGE ID) is unchanged"
        );
        let config = ImageConfig::from_slice(blob(&files, config_digest)).unwrap();
        let diff_ids = config.oci.rootfs().diff_ids().clone();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), diff_ids.len(), "{spec}");
        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            assert_eq!(layer["mediaType"], layer_media_type, "{spec}");
            let digest = layer["digest"].as_str().unwrap();
            let bytes = blob(&files, digest);
            assert_eq!(
                layer["size"].as_u64().unwrap(),
                bytes.len() as u64,
                "{spec}"
            );
            assert_eq!(Digest::of(bytes).to_string(), digest, "{spec}");
            let plain = decompress(bytes, compression);
            assert_eq!(&Digest::of(&plain).to_string(), diff_id, "{spec}");
            // The compressed blob stays in the store for the next export to reuse.
            assert!(
                store.has_blob(&digest.parse().unwrap()),
                "{spec}: {digest} kept"
            );
        }

        let skopeo = std::process::Command::new("skopeo")
            .arg("inspect")
            .arg(format!("{transport}:{}", dest.display()))
            .output()
            .expect("skopeo is installed");
        assert!(
            skopeo.status.success(),
            "{spec}: skopeo rejects the archive: {}",
            String::from_utf8_lossy(&skopeo.stderr)
        );
    }
}

#[test]
fn a_second_compressed_export_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest_digest) = busybox(dir.path());
    let refs = ["strata-test/compressed:1".parse().unwrap()];
    let mut archives = Vec::new();
    for i in 0..2 {
        let dest = dir.path().join(format!("again-{i}.tar"));
        let output = Output::parse(&format!(
            "type=oci,compression=gzip,dest={}",
            dest.display()
        ))
        .unwrap();
        export::export(&store, &manifest_digest, &refs, &output).unwrap();
        archives.push(std::fs::read(&dest).unwrap());
    }
    assert!(archives[0] == archives[1], "gzip output is deterministic");
}
