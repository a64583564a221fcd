//! The image commands under stress: bad archives never change the store (one clear error line,
//! exit code 1, the same files before and after), concurrent `tag` processes never lose an
//! update, and import/rmi/prune/df behave as docker's do.

mod images_common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use images_common::{fixtures, ok, strata};
use strata_image::Digest;

fn busybox() -> PathBuf {
    fixtures().join("docker-archive/busybox_1.35.tar")
}

fn store_state(root: &Path) -> BTreeSet<(String, Option<Digest>)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                stack.push(path);
                out.insert((rel, None));
            } else {
                out.insert((rel, Some(Digest::of(&std::fs::read(&path).unwrap()))));
            }
        }
    }
    out
}

/// A tar with raw entry names (the tar crate refuses to write `..`, hostile archives do not).
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = tar::Header::new_ustar();
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// How to spoil a small, otherwise valid OCI archive.
#[derive(Clone, Copy, Debug)]
enum Spoil {
    LayerDigestMismatch,
    UnknownLayerMediaType,
    EscapingLayerPath,
}

fn oci_archive(spoil: Spoil) -> Vec<u8> {
    let layer_name = match spoil {
        Spoil::EscapingLayerPath => "../../escaped",
        _ => "hello.txt",
    };
    let layer = tar_of(&[(layer_name, b"hello\n")]);
    let layer_digest = Digest::of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))
    .unwrap();
    let media_type = match spoil {
        Spoil::UnknownLayerMediaType => "application/vnd.example.unknown",
        _ => "application/vnd.oci.image.layer.v1.tar",
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": [{"mediaType": media_type, "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": Digest::of(&manifest).to_string(), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "docker.io/library/bad:1"}}],
    }))
    .unwrap();
    let mut stored_layer = layer.clone();
    if let Spoil::LayerDigestMismatch = spoil {
        // Same size, different bytes: only the digest can tell.
        let last = stored_layer.len() - 1;
        stored_layer[last] ^= 1;
    }
    let blob = |d: Digest| format!("blobs/sha256/{}", d.hex());
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        ("index.json".into(), index),
        (blob(Digest::of(&manifest)), manifest.clone()),
        (blob(Digest::of(&config)), config.clone()),
        (blob(layer_digest), stored_layer),
    ];
    let entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    tar_of(&entries)
}

#[test]
fn bad_archives_leave_the_store_exactly_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-i", busybox().to_str().unwrap()]);
    let original = std::fs::read(busybox()).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            original[..original.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "digest-mismatch",
            oci_archive(Spoil::LayerDigestMismatch),
            "digest mismatch",
        ),
        (
            "no-manifest",
            tar_of(&[("hello.txt", b"hi")]),
            "manifest.json",
        ),
        (
            "unknown-media-type",
            oci_archive(Spoil::UnknownLayerMediaType),
            "application/vnd.example.unknown",
        ),
        (
            "escaping-path",
            oci_archive(Spoil::EscapingLayerPath),
            "escapes the layer root",
        ),
    ];
    for (name, bytes, expected) in cases {
        let before = store_state(root.path());
        let file = work.path().join(format!("{name}.tar"));
        std::fs::write(&file, &bytes).unwrap();
        let out = strata(root.path(), &["load", "-i", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing is loaded");
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines[0].starts_with("Error: cannot load "),
            "{name}: {stderr}"
        );
        assert!(
            lines[0].contains(expected),
            "{name}: expected {expected:?} in {stderr}"
        );
        assert!(
            lines.iter().skip(1).all(|l| l.starts_with("hint:")),
            "{name}: one error line: {stderr}"
        );
        assert_eq!(
            store_state(root.path()),
            before,
            "{name}: the store changed"
        );
    }
    assert_eq!(ok(root.path(), &["images", "-q"]), "c639f9afbf5f\n");
}

#[test]
fn concurrent_tag_processes_never_lose_an_update() {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-i", busybox().to_str().unwrap()]);
    let children: Vec<_> = (0..40)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .arg("--root")
                .arg(root.path())
                .args([
                    "tag",
                    "strata-fixtures/busybox:1.35",
                    &format!("localhost:5000/p{i}:t"),
                ])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tags = ok(
        root.path(),
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    );
    assert_eq!(tags.lines().count(), 41, "{tags}");
    for i in 0..40 {
        assert!(
            tags.contains(&format!("localhost:5000/p{i}:t\n")),
            "p{i} lost"
        );
    }
}

#[test]
fn import_makes_a_one_layer_image_like_docker_import() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let rootfs = tar_of(&[
        ("bin/hello", b"#!/bin/sh\necho hi\n"),
        ("etc/motd", b"welcome\n"),
    ]);
    let file = work.path().join("rootfs.tar");
    std::fs::write(&file, &rootfs).unwrap();
    let out = ok(
        root.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "example/app:1",
            "-c",
            r#"CMD ["/bin/hello"]"#,
            "-c",
            "ENV GREETING=hi",
            "-c",
            "EXPOSE 8080",
            "--change",
            "WORKDIR /srv",
        ],
    );
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(root.path(), &["inspect", "example/app:1"])).unwrap();
    let image = &inspect[0];
    assert_eq!(image["Id"], id);
    assert_eq!(image["Comment"], "Imported from -");
    assert_eq!(image["Config"]["Cmd"], serde_json::json!(["/bin/hello"]));
    assert_eq!(image["Config"]["Env"], serde_json::json!(["GREETING=hi"]));
    assert_eq!(
        image["Config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(image["Config"]["WorkingDir"], "/srv");
    // Size counts file contents, as docker does: 18 + 8 bytes.
    assert_eq!(image["Size"], 26);
    assert_eq!(
        image["RootFS"]["Layers"],
        serde_json::json!([Digest::of(&rootfs).to_string()])
    );
    let history = ok(
        root.path(),
        &[
            "history",
            "--format",
            "{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
            "example/app:1",
        ],
    );
    assert_eq!(history, "|26B|Imported from -\n");

    // From stdin, with a message and no name: an untagged image.
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root.path())
        .args(["import", "-m", "from a pipe", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&rootfs).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let rows = ok(
        root.path(),
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    );
    assert_eq!(
        rows.lines().filter(|l| *l == "<none>:<none>").count(),
        1,
        "{rows}"
    );

    // A hostile rootfs is refused and leaves nothing.
    let before = store_state(root.path());
    std::fs::write(&file, tar_of(&[("../outside", b"x")])).unwrap();
    let out = strata(root.path(), &["import", file.to_str().unwrap(), "evil:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("escapes the layer root"));
    assert_eq!(store_state(root.path()), before);
}

#[test]
fn rmi_untags_then_deletes_like_docker() {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-i", busybox().to_str().unwrap()]);
    ok(root.path(), &["tag", "c639f9afbf5f", "other/name:2"]);

    // By id, an image named in two repositories needs -f.
    let out = strata(root.path(), &["rmi", "c639"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("must be forced") && stderr.contains("multiple repositories"),
        "{stderr}"
    );

    assert_eq!(
        ok(root.path(), &["rmi", "other/name:2"]),
        "Untagged: other/name:2\n"
    );
    assert_eq!(
        ok(root.path(), &["rmi", "strata-fixtures/busybox:1.35"]),
        "Untagged: strata-fixtures/busybox:1.35\n\
         Deleted: sha256:c639f9afbf5f1c3e565bbbb4b12a0725d537c61a2d7cc0c37ea791c3710b5495\n\
         Deleted: sha256:de4c42f12f32394790059249543c7f86a317e94a3df29acc54086648db94c243\n"
    );
    assert!(
        std::fs::read_dir(root.path().join("blobs/sha256"))
            .unwrap()
            .next()
            .is_none()
    );
    let out = strata(root.path(), &["rmi", "strata-fixtures/busybox:1.35"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: no such image: strata-fixtures/busybox:1.35\n"
    );
}

#[test]
fn prune_removes_dangling_images_and_df_reports_usage() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    ok(root.path(), &["load", "-i", busybox().to_str().unwrap()]);
    // Moving the tag to another image leaves busybox dangling, as in docker.
    let file = work.path().join("rootfs.tar");
    std::fs::write(&file, tar_of(&[("a", b"a")])).unwrap();
    ok(
        root.path(),
        &[
            "import",
            file.to_str().unwrap(),
            "strata-fixtures/busybox:1.35",
        ],
    );
    let images = ok(
        root.path(),
        &["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"],
    );
    assert!(images.contains("<none> <none> c639f9afbf5f\n"), "{images}");

    insta::assert_snapshot!("system_df", ok(root.path(), &["system", "df"]));
    insta::assert_snapshot!("image_prune", ok(root.path(), &["image", "prune", "-f"]));
    assert_eq!(ok(root.path(), &["images", "-q"]).lines().count(), 1);
    assert_eq!(
        ok(root.path(), &["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
}

#[test]
fn load_reads_a_gzip_compressed_archive_from_stdin() {
    let root = tempfile::tempdir().unwrap();
    let gzip = Command::new("gzip")
        .args(["-c", "-1"])
        .arg(busybox())
        .output()
        .unwrap();
    assert!(gzip.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root.path())
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&gzip.stdout));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Loaded image: strata-fixtures/busybox:1.35\n"
    );
}
