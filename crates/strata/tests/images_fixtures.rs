//! The image commands on the real fixture images: every docker-archive and every OCI layout
//! (tarred here) loads into a fresh store, `images`/`history`/`inspect` print what docker
//! prints for the same archive (snapshots; relative times redacted), `save` output is read by
//! skopeo and reloads byte-identically, and the store itself is an OCI layout umoci unpacks.

mod images_common;

use std::path::Path;
use std::process::Command;

use images_common::{fixtures, ok, strata};

/// Runs a tool (skopeo, umoci) and returns its stdout, failing the test with its stderr.
fn tool_ok(command: &mut Command) -> Vec<u8> {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// CREATED columns depend on today's date.
macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({filters => vec![
            (r"(\d+|About an?|Less than a) [a-z]+ ago\b", "[created] ago"),
        ]}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// Loads a docker-archive fixture and snapshots what docker users look at.
fn check_docker_archive(file: &str, reference: &str, snapshot_name: &str) {
    let root = tempfile::tempdir().unwrap();
    let archive = fixtures().join("docker-archive").join(file);
    let loaded = ok(root.path(), &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(loaded, format!("Loaded image: {reference}\n"));
    snapshot!(
        format!("{snapshot_name}_images"),
        ok(root.path(), &["images"])
    );
    snapshot!(
        format!("{snapshot_name}_history"),
        ok(root.path(), &["history", reference])
    );
    snapshot!(
        format!("{snapshot_name}_history_no_trunc"),
        ok(
            root.path(),
            &["history", "--no-trunc", "-H=false", reference]
        )
    );
    snapshot!(
        format!("{snapshot_name}_inspect"),
        ok(root.path(), &["inspect", reference])
    );

    // skopeo reads the store as an OCI layout under the full reference.
    let full = format!("docker.io/{reference}");
    let skopeo = tool_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{full}", root.path().display())),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&skopeo).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

#[test]
fn busybox_docker_archive() {
    check_docker_archive(
        "busybox_1.35.tar",
        "strata-fixtures/busybox:1.35",
        "busybox",
    );
}

#[test]
fn debian_docker_archive() {
    check_docker_archive(
        "debian_bookworm-slim.tar",
        "strata-fixtures/debian:bookworm-slim",
        "debian",
    );
}

#[test]
fn golang_docker_archive() {
    check_docker_archive("golang_1.19.tar", "strata-fixtures/golang:1.19", "golang");
}

#[test]
fn gcc_docker_archive() {
    check_docker_archive("gcc_12.tar", "strata-fixtures/gcc:12", "gcc");
}

/// An OCI layout directory as an OCI archive.
fn tar_layout(dir: &Path, out: &Path) {
    let file = std::fs::File::create(out).unwrap();
    let mut builder = tar::Builder::new(file);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap();
}

#[test]
fn every_oci_layout_loads_as_the_same_image_as_its_docker_archive() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for (layout, reference) in [
        ("busybox_1.35", "strata-fixtures/busybox:1.35"),
        (
            "debian_bookworm-slim",
            "strata-fixtures/debian:bookworm-slim",
        ),
        ("golang_1.19", "strata-fixtures/golang:1.19"),
        ("gcc_12", "strata-fixtures/gcc:12"),
    ] {
        let archive = work.path().join(format!("{layout}.tar"));
        tar_layout(&fixtures().join("oci").join(layout), &archive);
        let out = ok(root.path(), &["load", "-i", archive.to_str().unwrap()]);
        // skopeo names OCI layouts with a bare tag ("1.35"): docker loads those untagged.
        let id = out
            .strip_prefix("Loaded image ID: sha256:")
            .unwrap_or_else(|| panic!("unexpected load output {out:?}"))
            .trim()
            .to_string();
        // The docker-archive of the same image has the same IMAGE ID (config digest).
        let inspect = ok(root.path(), &["inspect", "--format", "{{.Id}}", &id[..12]]);
        assert_eq!(inspect.trim(), format!("sha256:{id}"));
        let docker_archive = fixtures()
            .join("docker-archive")
            .join(format!("{layout}.tar"));
        ok(
            root.path(),
            &["load", "-i", docker_archive.to_str().unwrap()],
        );
        let by_name = ok(root.path(), &["inspect", "--format", "{{.Id}}", reference]);
        assert_eq!(by_name, inspect, "{layout}");
    }
    // One row per image: the OCI and docker-archive copies are the same IMAGE ID.
    snapshot!("oci_and_docker_images", ok(root.path(), &["images"]));
}

#[test]
fn save_is_read_by_skopeo_and_round_trips_byte_identically() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for (file, reference) in [
        ("busybox_1.35.tar", "strata-fixtures/busybox:1.35"),
        (
            "debian_bookworm-slim.tar",
            "strata-fixtures/debian:bookworm-slim",
        ),
    ] {
        let archive = fixtures().join("docker-archive").join(file);
        ok(first.path(), &["load", "-i", archive.to_str().unwrap()]);
        let saved = work.path().join(format!("saved-{file}"));
        ok(
            first.path(),
            &["save", "-o", saved.to_str().unwrap(), reference],
        );

        let skopeo = tool_ok(
            Command::new("skopeo")
                .arg("inspect")
                .arg(format!("docker-archive:{}", saved.display())),
        );
        let info: serde_json::Value = serde_json::from_slice(&skopeo).unwrap();
        assert_eq!(info["Architecture"], "amd64");
        assert_eq!(info["RepoTags"], serde_json::json!([]));

        // save → load → save (to stdout this time) gives the same bytes.
        ok(second.path(), &["load", "-i", saved.to_str().unwrap()]);
        let again = strata(second.path(), &["save", reference]);
        assert!(again.status.success());
        assert_eq!(std::fs::read(&saved).unwrap(), again.stdout, "{file}");
    }
}

#[test]
fn umoci_unpacks_an_image_from_the_store() {
    let root = tempfile::tempdir().unwrap();
    let bundle = tempfile::tempdir().unwrap();
    let archive = fixtures().join("docker-archive/busybox_1.35.tar");
    ok(root.path(), &["load", "-i", archive.to_str().unwrap()]);
    let target = bundle.path().join("bundle");
    tool_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!(
                "{}:docker.io/strata-fixtures/busybox:1.35",
                root.path().display()
            ))
            .arg(&target),
    );
    assert!(target.join("rootfs/bin/busybox").is_file());
    assert!(target.join("config.json").is_file());
}
