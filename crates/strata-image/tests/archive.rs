//! Reading and writing image archives: every layout docker, skopeo and OCI tools produce, the
//! errors bad archives get, and a save → load → save round trip checked by skopeo.

mod common;

use std::io::Write;
use std::process::Command;

use common::{HashSink, Tar, fixtures, tar_dir};
use strata_image::archive::{
    ArchiveError, LoadedImage, MemoryBlobs, SaveImage, read_archive, write_docker_archive,
};
use strata_image::manifest::{self, ManifestFormat};
use strata_image::{Digest, ImageConfig, LayerCompression, Reference, media};

/// A small layer tar with the given files.
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = Tar::default();
    for (path, bytes) in files {
        t = t.file(path, bytes);
    }
    t.finish()
}

fn config_for(layers: &[&[u8]]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| Digest::of(l).to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Healthcheck": {"Test": ["CMD", "true"], "Retries": 2}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "ADD a"}, {"created_by": "ADD b"}],
    }))
    .unwrap()
}

/// A docker ≤ 24 `docker save` archive whose manifest.json comes after everything else, and
/// whose second layer directory is a symlink to the first's tar (docker's dedupe).
fn legacy_archive(tags: &[&str]) -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let l0 = layer(&[("etc/hostname", b"strata\n")]);
    let l1 = layer(&[("bin/tool", b"#!/bin/sh\necho hi\n")]);
    let config = config_for(&[&l0, &l1]);
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": tags,
        "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"],
    }]))
    .unwrap();
    let archive = Tar::default()
        .dir("aaaa")
        .file("aaaa/VERSION", b"1.0")
        .file("aaaa/json", b"{\"id\":\"aaaa\"}")
        .file("aaaa/layer.tar", &l0)
        .dir("bbbb")
        .file("bbbb/VERSION", b"1.0")
        .file("cccc/layer.tar", &l1)
        .symlink("bbbb/layer.tar", "../cccc/layer.tar")
        .file(&config_name, &config)
        .file("repositories", b"{\"busybox\":{\"latest\":\"bbbb\"}}")
        .file("manifest.json", &manifest)
        .finish();
    (archive, config, vec![l0, l1])
}

fn load(bytes: &[u8]) -> (Vec<LoadedImage>, MemoryBlobs) {
    let mut sink = MemoryBlobs::default();
    let images = read_archive(bytes, &mut sink).unwrap_or_else(|e| panic!("{e}"));
    (images, sink)
}

fn load_err(bytes: &[u8]) -> ArchiveError {
    let mut sink = MemoryBlobs::default();
    match read_archive(bytes, &mut sink) {
        Ok(images) => panic!("loaded {images:?}"),
        Err(e) => e,
    }
}

fn refs(image: &LoadedImage) -> Vec<String> {
    image.refs.iter().map(|r| r.to_string()).collect()
}

#[test]
fn legacy_layout_with_manifest_last_and_symlinked_layers() {
    let (archive, config, layers) = legacy_archive(&["busybox:latest", "localhost:5000/x:1"]);
    let (images, sink) = load(&archive);
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(
        refs(image),
        ["docker.io/library/busybox:latest", "localhost:5000/x:1"]
    );
    assert_eq!(image.config_digest, Digest::of(&config));
    assert_eq!(image.manifest_media_type, media::DOCKER_MANIFEST);
    assert_eq!(image.manifest_digest, Digest::of(&image.manifest));

    // The synthesized manifest lists the uncompressed layer tars, and every blob is in the sink.
    let m = manifest::parse_manifest(&image.manifest, None).unwrap();
    let listed = manifest::layers(&m).unwrap();
    assert_eq!(listed.len(), 2);
    for (l, bytes) in listed.iter().zip(&layers) {
        assert_eq!(l.media_type, media::DOCKER_LAYER);
        assert_eq!(l.compression, LayerCompression::None);
        assert_eq!(l.digest, Digest::of(bytes));
        assert_eq!(sink.blobs[&l.digest], *bytes);
    }
    assert_eq!(sink.blobs[&image.config_digest], config);
    assert_eq!(sink.blobs[&image.manifest_digest], image.manifest);
    // docker's bookkeeping files are not blobs.
    assert!(!sink.blobs.contains_key(&Digest::of(b"1.0")));
    // The config survives byte for byte, extensions included.
    let parsed = ImageConfig::from_slice(&sink.blobs[&image.config_digest]).unwrap();
    assert_eq!(parsed.docker.healthcheck.unwrap().retries, Some(2));
}

#[test]
fn gzip_compressed_archives_load_the_same() {
    let (archive, _, _) = legacy_archive(&["busybox:latest"]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&archive).unwrap();
    let compressed = gz.finish().unwrap();
    let (plain, _) = load(&archive);
    let (unzipped, _) = load(&compressed);
    assert_eq!(plain, unzipped);
}

#[test]
fn untagged_legacy_images_load_without_refs() {
    let (archive, _, _) = legacy_archive(&[]);
    let (images, _) = load(&archive);
    assert!(images[0].refs.is_empty());
}

#[test]
fn fixture_docker_archives() {
    for (file, name) in [
        ("busybox_1.35", "docker.io/strata-fixtures/busybox:1.35"),
        (
            "debian_bookworm-slim",
            "docker.io/strata-fixtures/debian:bookworm-slim",
        ),
        ("gcc_12", "docker.io/strata-fixtures/gcc:12"),
        ("golang_1.19", "docker.io/strata-fixtures/golang:1.19"),
    ] {
        let path = fixtures().join(format!("docker-archive/{file}.tar"));
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut sink = HashSink::default();
        let images = read_archive(std::io::BufReader::new(f), &mut sink)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(images.len(), 1, "{file}");
        let image = &images[0];
        assert_eq!(refs(image), [name]);
        assert_eq!(
            image.refs[0].familiar(),
            name.trim_start_matches("docker.io/")
        );

        // The same image as an OCI layout has the same config, so the same IMAGE ID.
        let oci = fixtures().join(format!("oci/{file}"));
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(oci.join("index.json")).unwrap()).unwrap();
        let manifest_digest: Digest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let oci_manifest = manifest::parse_manifest(
            &std::fs::read(oci.join("blobs/sha256").join(manifest_digest.hex())).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(
            manifest::config_of(&oci_manifest).unwrap().0,
            image.config_digest,
            "{file}"
        );
        // Every blob the synthesized manifest names went through the sink.
        let m = manifest::parse_manifest(&image.manifest, None).unwrap();
        for l in manifest::layers(&m).unwrap() {
            assert_eq!(sink.blobs.get(&l.digest), Some(&l.size), "{file}");
        }
        assert!(sink.blobs.contains_key(&image.manifest_digest));
    }
}

#[test]
fn fixture_oci_layouts_as_archives() {
    for (dir, tag) in [
        ("busybox_1.35", "1.35"),
        ("debian_bookworm-slim", "bookworm-slim"),
        ("gcc_12", "12"),
        ("golang_1.19", "1.19"),
    ] {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tar_dir(
            &fixtures().join("oci").join(dir),
            std::io::BufWriter::new(tmp.reopen().unwrap()),
        );
        let mut sink = HashSink::default();
        let images = read_archive(std::io::BufReader::new(tmp.reopen().unwrap()), &mut sink)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(images.len(), 1);
        let image = &images[0];
        // skopeo names images in OCI layouts by tag only.
        assert!(image.refs.is_empty());
        assert_eq!(image.bare_tags, [tag]);
        assert_eq!(image.manifest_media_type, media::OCI_MANIFEST);
        assert_eq!(image.manifest_digest, Digest::of(&image.manifest));
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("oci").join(dir).join("index.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            image.manifest_digest.to_string(),
            index["manifests"][0]["digest"].as_str().unwrap()
        );
    }
}

/// An OCI layout built in the test, with gzip layers and a containerd name.
fn oci_archive(annotations: serde_json::Value, corrupt: bool) -> (Vec<u8>, Digest) {
    let l0 = layer(&[("a", b"1")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&l0).unwrap();
    let l0_gz = gz.finish().unwrap();
    let config = config_for(&[&l0]);
    let built = manifest::build_manifest(
        ManifestFormat::Oci,
        manifest::descriptor(media::OCI_CONFIG, Digest::of(&config), config.len() as u64),
        vec![manifest::descriptor(
            media::OCI_LAYER_GZIP,
            Digest::of(&l0_gz),
            l0_gz.len() as u64,
        )],
    );
    let m = manifest::to_bytes(&built);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media::OCI_MANIFEST,
            "digest": Digest::of(&m).to_string(),
            "size": m.len(),
            "annotations": annotations,
        }],
    }))
    .unwrap();
    let mut layer_bytes = l0_gz.clone();
    if corrupt {
        let last = layer_bytes.len() - 1;
        layer_bytes[last] ^= 0xff;
    }
    let tar = Tar::default()
        .file("oci-layout", b"{\"imageLayoutVersion\":\"1.0.0\"}")
        .file("index.json", &index)
        .file(&format!("blobs/sha256/{}", Digest::of(&m).hex()), &m)
        .file(
            &format!("blobs/sha256/{}", Digest::of(&config).hex()),
            &config,
        )
        .file(
            &format!("blobs/sha256/{}", Digest::of(&l0_gz).hex()),
            &layer_bytes,
        )
        .finish();
    (tar, Digest::of(&l0_gz))
}

#[test]
fn oci_archive_names_from_annotations() {
    let cases = [
        (
            serde_json::json!({"io.containerd.image.name": "docker.io/library/app:v1", "org.opencontainers.image.ref.name": "v1"}),
            vec!["docker.io/library/app:v1"],
            vec![],
        ),
        (
            serde_json::json!({"org.opencontainers.image.ref.name": "localhost:5000/app:v2"}),
            vec!["localhost:5000/app:v2"],
            vec![],
        ),
        (
            serde_json::json!({"org.opencontainers.image.ref.name": "v3"}),
            vec![],
            vec!["v3"],
        ),
        (serde_json::json!({}), vec![], vec![]),
    ];
    for (annotations, expected_refs, expected_bare) in cases {
        let (archive, layer) = oci_archive(annotations, false);
        let (images, sink) = load(&archive);
        assert_eq!(refs(&images[0]), expected_refs);
        assert_eq!(images[0].bare_tags, expected_bare);
        assert!(sink.blobs.contains_key(&layer));
    }
}

#[test]
fn bad_archives_get_one_clear_error() {
    // A blob whose content does not match its name.
    let (corrupt, corrupt_layer) = oci_archive(serde_json::json!({}), true);
    let err = load_err(&corrupt);
    assert!(
        matches!(&err, ArchiveError::DigestMismatch { path, expected, .. } if *expected == corrupt_layer && path.ends_with(&corrupt_layer.hex())),
        "{err}"
    );
    assert!(err.to_string().starts_with(&format!(
        "blob blobs/sha256/{}: digest mismatch: expected {corrupt_layer}, found sha256:",
        corrupt_layer.hex()
    )));

    // Neither manifest.json nor index.json.
    let plain = Tar::default()
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .finish();
    assert_eq!(
        load_err(&plain).to_string(),
        "not an image archive: neither manifest.json (docker save) nor index.json (OCI) found"
    );

    // Cut inside the first layer's content.
    let (archive, _, _) = legacy_archive(&["busybox:latest"]);
    let err = load_err(&archive[..512 * 8 + 700]);
    assert!(
        matches!(
            err,
            ArchiveError::TruncatedEntry { .. } | ArchiveError::Truncated { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("archive is truncated"), "{err}");
    // Cut at an entry boundary, before manifest.json.
    let cut = archive.len() - 3 * 512 - 1024;
    assert!(matches!(
        load_err(&archive[..cut - cut % 512]),
        ArchiveError::MissingManifest | ArchiveError::TruncatedEntry { .. }
    ));

    // A legacy layer whose content is not what the config's diff_ids say.
    let l0 = layer(&[("a", b"1")]);
    let other = layer(&[("a", b"2")]);
    let config = config_for(&[&other]);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]
    }]))
    .unwrap();
    let archive = Tar::default()
        .file("c.json", &config)
        .file("l/layer.tar", &l0)
        .file("manifest.json", &manifest)
        .finish();
    assert_eq!(
        load_err(&archive).to_string(),
        format!(
            "layer l/layer.tar: diff_id mismatch: the config lists {}, the layer is {}",
            Digest::of(&other),
            Digest::of(&l0)
        )
    );

    // A layer manifest.json names but the archive lacks.
    let archive = Tar::default()
        .file("c.json", &config)
        .file("manifest.json", &manifest)
        .finish();
    assert_eq!(
        load_err(&archive).to_string(),
        "l/layer.tar is missing from the archive (referenced by manifest.json)"
    );

    // An invalid RepoTag.
    let bad_tag = serde_json::to_vec(&serde_json::json!([{
        "Config": "c.json", "RepoTags": ["Bad:1"], "Layers": ["l/layer.tar"]
    }]))
    .unwrap();
    let archive = Tar::default()
        .file("c.json", &config)
        .file("l/layer.tar", &other)
        .file("manifest.json", &bad_tag)
        .finish();
    assert_eq!(
        load_err(&archive).to_string(),
        "manifest.json: invalid reference format: repository name (library/Bad) must be lowercase"
    );

    // Not a tar at all.
    let err = load_err(&[0x42; 2048]);
    assert!(
        err.to_string()
            .starts_with("not a tar archive (plain or gzip-compressed): "),
        "{err}"
    );

    // A gzip-compressed archive cut short.
    let (archive, _, _) = legacy_archive(&["busybox:latest"]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&archive).unwrap();
    let compressed = gz.finish().unwrap();
    let err = load_err(&compressed[..compressed.len() / 2]);
    assert!(err.to_string().starts_with("archive is truncated"), "{err}");
}

#[test]
fn unknown_layer_media_type_is_named() {
    let (archive, _) = oci_archive(serde_json::json!({}), false);
    // Rewrite the manifest's layer type (sizes change, so rebuild the archive from parts).
    let mut sink = MemoryBlobs::default();
    let images = read_archive(&archive[..], &mut sink).unwrap();
    let text = String::from_utf8(images[0].manifest.clone())
        .unwrap()
        .replace(media::OCI_LAYER_GZIP, "application/vnd.example.layer+lz4");
    let m = text.into_bytes();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": media::OCI_MANIFEST, "digest": Digest::of(&m).to_string(), "size": m.len()}],
    }))
    .unwrap();
    let mut t = Tar::default()
        .file("index.json", &index)
        .file(&format!("blobs/sha256/{}", Digest::of(&m).hex()), &m);
    for (d, bytes) in &sink.blobs {
        if *d != images[0].manifest_digest {
            t = t.file(&format!("blobs/sha256/{}", d.hex()), bytes);
        }
    }
    assert_eq!(
        load_err(&t.finish()).to_string(),
        format!(
            "blobs/sha256/{}: unknown media type \"application/vnd.example.layer+lz4\"",
            Digest::of(&m).hex()
        )
    );
}

fn save(images: &[SaveImage], blobs: &MemoryBlobs) -> Vec<u8> {
    let mut out = Vec::new();
    write_docker_archive(&mut out, images, blobs).unwrap_or_else(|e| panic!("{e}"));
    out
}

fn as_save(images: &[LoadedImage]) -> Vec<SaveImage> {
    images
        .iter()
        .map(|i| SaveImage {
            manifest_digest: i.manifest_digest,
            refs: i.refs.clone(),
        })
        .collect()
}

#[test]
fn save_load_save_is_byte_identical_and_skopeo_accepts_it() {
    let fixture = std::fs::read(fixtures().join("docker-archive/busybox_1.35.tar")).unwrap();
    let (images, blobs) = load(&fixture);
    let mut wanted = as_save(&images);
    wanted[0]
        .refs
        .push(Reference::parse("localhost:5000/mirror/busybox:1.35").unwrap());

    let first = save(&wanted, &blobs);
    let (reloaded, reloaded_blobs) = load(&first);
    assert_eq!(reloaded.len(), 1);
    assert_eq!(reloaded[0].manifest_digest, images[0].manifest_digest);
    assert_eq!(reloaded[0].config_digest, images[0].config_digest);
    let mut names = refs(&reloaded[0]);
    names.sort();
    assert_eq!(
        names,
        [
            "docker.io/strata-fixtures/busybox:1.35",
            "localhost:5000/mirror/busybox:1.35"
        ]
    );
    let second = save(&as_save(&reloaded), &reloaded_blobs);
    assert!(first == second, "save → load → save changed the archive");

    // Argument order and duplicates do not change the output.
    let mut shuffled = wanted.clone();
    shuffled[0].refs.reverse();
    shuffled.push(shuffled[0].clone());
    assert!(save(&shuffled, &blobs) == first);

    // The layout: fixed order, owner 0, mtime 0.
    let mut archive = tar::Archive::new(&first[..]);
    let entries: Vec<(String, u32, u64, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(
        names[names.len() - 4..],
        ["index.json", "manifest.json", "oci-layout", "repositories"]
    );
    assert!(entries.iter().all(|e| e.2 == 0 && e.3 == 0));
    assert!(entries.iter().all(|e| e.1 == 0o644 || e.1 == 0o755));

    let manifest_json: serde_json::Value = {
        let mut a = tar::Archive::new(&first[..]);
        let mut entry = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
            .unwrap();
        serde_json::from_reader(&mut entry).unwrap()
    };
    assert_eq!(
        manifest_json[0]["RepoTags"],
        // Ordered by full reference (docker.io first), written in the familiar form.
        serde_json::json!([
            "strata-fixtures/busybox:1.35",
            "localhost:5000/mirror/busybox:1.35"
        ])
    );
    assert_eq!(
        manifest_json[0]["Config"],
        format!("blobs/sha256/{}", images[0].config_digest.hex())
    );

    skopeo_inspect(&first, images[0].config_digest, 1);
}

#[test]
fn saving_an_oci_image_with_gzip_layers() {
    let (archive, _) = oci_archive(
        serde_json::json!({"io.containerd.image.name": "docker.io/library/app:v1"}),
        false,
    );
    let (images, blobs) = load(&archive);
    let saved = save(&as_save(&images), &blobs);
    let (again, _) = load(&saved);
    assert_eq!(again[0].manifest_digest, images[0].manifest_digest);
    assert_eq!(refs(&again[0]), ["docker.io/library/app:v1"]);
    skopeo_inspect(&saved, images[0].config_digest, 1);

    // An untagged image is saved without names and loads without refs.
    let untagged = save(
        &[SaveImage {
            manifest_digest: images[0].manifest_digest,
            refs: vec![],
        }],
        &blobs,
    );
    let (loaded, _) = load(&untagged);
    assert!(loaded[0].refs.is_empty());
}

#[test]
fn saving_reports_missing_and_corrupt_blobs() {
    let (archive, layer) = oci_archive(serde_json::json!({}), false);
    let (images, blobs) = load(&archive);
    let mut missing = blobs.clone();
    missing.blobs.remove(&layer);
    let err = write_docker_archive(Vec::new(), &as_save(&images), &missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("reading blob {layer}: blob {layer} not found")
    );
    let mut corrupt = blobs.clone();
    let bytes = corrupt.blobs.get_mut(&layer).unwrap();
    bytes[0] ^= 1;
    let err = write_docker_archive(Vec::new(), &as_save(&images), &corrupt).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "blob blobs/sha256/{}: digest mismatch: expected {layer}, found sha256:",
            layer.hex()
        )),
        "{err}"
    );
}

/// `skopeo inspect docker-archive:` must accept the archive and see the same image.
fn skopeo_inspect(archive: &[u8], config: Digest, layers: usize) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), archive).unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!("docker-archive:{}", tmp.path().display()))
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `--config --raw` prints the config blob as stored: its digest is the image id.
    assert_eq!(Digest::of(&out.stdout), config);
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("docker-archive:{}", tmp.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), layers);
}

/// A real `docker save` (dockerd 20.10, legacy layout) of two images sharing a base layer:
/// `strata-test/tiny:1` (docker import) and `strata-test/tiny:2` (classic builder: COPY, SHELL,
/// HEALTHCHECK, ONBUILD, LABEL, EXPOSE). Docker dedupes the shared layer with a symlink.
const DOCKER_SAVE: &[u8] = include_bytes!("../testdata/archives/docker-20.10-save.tar");

#[test]
fn real_docker_save_output() {
    let (images, blobs) = load(DOCKER_SAVE);
    let summary: Vec<(String, Vec<String>)> = images
        .iter()
        .map(|i| (i.config_digest.short(), refs(i)))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "2d1b73b07b84".to_string(),
                vec!["docker.io/strata-test/tiny:1".to_string()]
            ),
            (
                "ccb8d964be86".to_string(),
                vec!["docker.io/strata-test/tiny:2".to_string()]
            ),
        ]
    );
    let config = ImageConfig::from_slice(&blobs.blobs[&images[1].config_digest]).unwrap();
    let hc = config.docker.healthcheck.as_ref().unwrap();
    assert_eq!(hc.test.as_deref().unwrap(), ["CMD-SHELL", "true"]);
    assert_eq!(
        (hc.interval, hc.timeout, hc.start_period, hc.retries),
        (
            Some(5_000_000_000),
            Some(3_000_000_000),
            Some(2_000_000_000),
            Some(4)
        )
    );
    assert_eq!(config.docker.shell.as_deref().unwrap(), ["/bin/bash", "-c"]);
    assert_eq!(config.docker.on_build.as_deref().unwrap(), ["COPY . /src"]);
    let diff_ids = config.diff_ids().unwrap();
    assert_eq!(diff_ids.len(), 2);
    // The shared base layer is one blob, reached through docker's symlink.
    let base = ImageConfig::from_slice(&blobs.blobs[&images[0].config_digest]).unwrap();
    assert_eq!(base.diff_ids().unwrap()[0], diff_ids[0]);
    assert_eq!(strata_image::chain_id(&diff_ids)[0], diff_ids[0]);

    // Re-saved, it loads as the same images (what `docker load` of it showed: same IDs).
    let saved = save(&as_save(&images), &blobs);
    let (again, _) = load(&saved);
    let mut ids: Vec<_> = again.iter().map(|i| (i.config_digest, refs(i))).collect();
    ids.sort();
    let mut expected: Vec<_> = images.iter().map(|i| (i.config_digest, refs(i))).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn oci_index_entry_that_is_a_multi_platform_index() {
    // The amd64 manifest and its blobs are present; the arm64 one is not (as in a
    // single-platform `docker save` from a containerd image store).
    let (single, _) = oci_archive(serde_json::json!({}), false);
    let (images, blobs) = load(&single);
    let amd64 = &images[0];
    let absent = Digest::of(b"arm64 manifest not in the archive");
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": absent.to_string(), "size": 10,
             "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": media::OCI_MANIFEST, "digest": amd64.manifest_digest.to_string(),
             "size": amd64.manifest.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media::OCI_INDEX, "digest": Digest::of(&nested).to_string(), "size": nested.len(),
            "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"},
        }],
    }))
    .unwrap();
    let mut t = Tar::default().file("index.json", &index).file(
        &format!("blobs/sha256/{}", Digest::of(&nested).hex()),
        &nested,
    );
    for (d, bytes) in &blobs.blobs {
        t = t.file(&format!("blobs/sha256/{}", d.hex()), bytes);
    }
    let (loaded, _) = load(&t.finish());
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].manifest_digest, amd64.manifest_digest);
    assert_eq!(refs(&loaded[0]), ["docker.io/library/multi:1"]);
}
