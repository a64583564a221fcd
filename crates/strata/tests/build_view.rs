//! What `strata build` shows and writes, as a user runs it: the `--progress=plain` log in
//! BuildKit's shape (snapshot, timings filtered), the live view in a pseudo-terminal ending
//! with the image summary, and `--output` archives with compressed layers that skopeo reads,
//! whose compressed variants are remembered and reused. Needs root, runc, skopeo, `script`
//! and the fixtures.

mod build_common;

use build_common::{Cli, text};
use std::path::Path;
use std::process::Command;

/// Timings and digests vary from run to run; the shape must not.
macro_rules! assert_log_snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({filters => vec![
            (r"sha256:[0-9a-f]+", "sha256:[digest]"),
            (r"\nScript done on .*", ""),
            (r"(#\d+) \d+\.\d{3} ", "$1 [t] "),
            (r"\d+\.\d+s", "[d]s"),
        ]}, {
            insta::assert_snapshot!($name, $value);
        });
    };
}

const DOCKERFILE: &str = "FROM strata-fixtures/busybox:1.35 AS build
ARG NAME=world
WORKDIR /src
COPY greeting.txt .
RUN echo \"hello $NAME\" && cat greeting.txt

FROM strata-fixtures/busybox:1.35
ENV MODE=prod
COPY --from=build /src/greeting.txt /greeting.txt
LABEL org.example=1
CMD [\"cat\", \"/greeting.txt\"]
";

#[test]
fn plain_progress_has_buildkits_shape_and_ends_with_the_export() {
    let cli = Cli::new();
    cli.write("Dockerfile", DOCKERFILE);
    cli.write("greeting.txt", "hi\n");
    let first = cli.build(&["--progress=plain", "-t", "demo:1"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_log_snapshot!("plain_first_build", text(&first.stderr));
    // The config as BuildKit writes it: CMD marks the config `ArgsEscaped` (docker inspect
    // shows it), and docker's extension fields stay inside `Config`.
    let config = cli.run(&["inspect", "--format", "{{json .Config}}", "demo:1"]);
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(config["ArgsEscaped"], true, "{config}");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["cat", "/greeting.txt"]),
        "{config}"
    );
    assert_eq!(config["Env"][1], "MODE=prod", "{config}");
    let again = cli.build(&["--progress=plain", "-t", "demo:1"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_log_snapshot!("plain_cached_build", text(&again.stderr));
}

#[test]
fn plain_progress_of_a_failing_step() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN echo about to fail && exit 3\n",
    );
    let out = cli.build(&["--progress=plain"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_log_snapshot!("plain_failing_step", text(&out.stderr));
}

/// Runs `strata build` in a pseudo-terminal of 80x24 and returns what the terminal received.
fn build_in_a_terminal(cli: &Cli, extra: &str) -> String {
    let transcript = cli.dir.path().join("typescript");
    let command = format!(
        "stty cols 80 rows 24; STRATA_ROOT={} {} build {extra} {}",
        cli.store().display(),
        env!("CARGO_BIN_EXE_strata"),
        cli.context().display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &command])
        .arg(&transcript)
        .output()
        .expect("script (util-linux) is installed");
    assert!(
        out.status.success(),
        "{}",
        text(&std::fs::read(&transcript).unwrap_or_default())
    );
    text(&std::fs::read(&transcript).unwrap())
}

/// The text a terminal shows after the last redraw: what follows the last cursor-up
/// (`ESC [ n A`), with the remaining escape sequences and carriage returns removed.
fn last_frame(transcript: &str) -> String {
    let mut cut = 0;
    for (start, _) in transcript.match_indices("\x1b[") {
        let rest = &transcript[start + 2..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with('A') {
            cut = start + 2 + digits + 1;
        }
    }
    let mut plain = String::new();
    let mut chars = transcript[cut..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for k in chars.by_ref() {
                if k.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn live_view_redraws_in_place_and_ends_with_id_tags_and_size() {
    let cli = Cli::new();
    cli.write("Dockerfile", DOCKERFILE);
    cli.write("greeting.txt", "hi\n");
    let transcript = build_in_a_terminal(&cli, "-t demo:tty -t demo:also");
    // Redrawn in place: the frame is repainted (cursor up), never scrolled as a log.
    assert!(transcript.contains("\x1b[2K"), "{transcript:?}");
    let frame = last_frame(&transcript);
    // The frame (not the summary after it) fits the terminal: no line wraps.
    for line in frame
        .lines()
        .filter(|l| l.starts_with(" =>") || l.starts_with("[+]"))
    {
        assert!(
            line.chars().count() <= 80,
            "wider than the terminal: {line:?}"
        );
    }
    let id = text(&cli.run(&["images", "-q", "--no-trunc", "demo:tty"]).stdout);
    let size = text(
        &cli.run(&["images", "--format", "{{.Size}}", "demo:tty"])
            .stdout,
    );
    assert_log_snapshot!(
        "tty_last_frame",
        frame
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .replace(size.trim(), "[size]")
    );
    assert!(
        frame.contains(&format!("Image ID  {}", id.trim())),
        "{frame}"
    );
    assert!(frame.contains("Tags      demo:tty, demo:also"), "{frame}");
    assert!(
        frame.contains(&format!("Size      {}", size.trim())),
        "{frame}"
    );
}

/// The manifest an archive's `index.json` names.
fn archive_manifest(path: &Path) -> serde_json::Value {
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&files[&format!("blobs/sha256/{hex}")]).unwrap()
}

fn skopeo_inspect(transport: &str, path: &Path) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("{transport}:{}", path.display()))
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo inspect {transport}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn output_archives_compress_once_and_load_in_skopeo() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN seq 1 20000 > /numbers\n",
    );
    let cases = [
        (
            "type=oci,compression=gzip",
            "oci-archive",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "gzip-6",
        ),
        (
            "type=oci,compression=zstd,compression-level=9",
            "oci-archive",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "zstd-9",
        ),
        (
            "type=docker,compression=gzip,compression-level=1",
            "docker-archive",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "gzip-1",
        ),
    ];
    for (i, (spec, transport, media_type, record)) in cases.into_iter().enumerate() {
        let dest = cli.dir.path().join(format!("out-{i}.tar"));
        let output = format!("{spec},dest={}", dest.display());
        let out = cli.build(&["--progress=plain", "-t", "demo:out", "-o", &output]);
        let log = text(&out.stderr);
        assert!(out.status.success(), "{spec}: {log}");
        assert!(log.contains("exporting layers"), "{spec}: {log}");
        let manifest = archive_manifest(&dest);
        let layers = manifest["layers"].as_array().unwrap();
        assert!(
            layers.iter().all(|l| l["mediaType"] == media_type),
            "{spec}: {manifest}"
        );
        // skopeo reads the archive through the transport a user would name.
        let raw = skopeo_inspect(transport, &dest);
        assert_eq!(
            raw["layers"].as_array().unwrap().len(),
            layers.len(),
            "{spec}"
        );

        // The built layer's compressed variant is remembered in the store...
        let built = layers.last().unwrap();
        let config = text(
            &cli.run(&["inspect", "--format", "{{json .RootFS.Layers}}", "demo:out"])
                .stdout,
        );
        let diff_ids: Vec<String> = serde_json::from_str(config.trim()).unwrap();
        let diff_hex = diff_ids
            .last()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        let record_path = cli.store().join("variants").join(&diff_hex).join(record);
        let remembered: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&record_path)
                .unwrap_or_else(|e| panic!("{spec}: no record {}: {e}", record_path.display())),
        )
        .unwrap();
        assert_eq!(remembered["digest"], built["digest"], "{spec}");
        assert_eq!(remembered["size"], built["size"], "{spec}");

        // ...and a second export reads it instead of compressing: pointed at another stored
        // blob (the uncompressed layer itself), the record is what the next archive names.
        let mut tampered = remembered.clone();
        tampered["digest"] = serde_json::Value::String(format!("sha256:{diff_hex}"));
        let plain_size = std::fs::metadata(cli.store().join("blobs/sha256").join(&diff_hex))
            .unwrap()
            .len();
        tampered["size"] = serde_json::Value::from(plain_size);
        std::fs::write(&record_path, serde_json::to_vec(&tampered).unwrap()).unwrap();
        let again = cli.dir.path().join(format!("again-{i}.tar"));
        let output = format!("{spec},dest={}", again.display());
        let out = cli.build(&["--progress=plain", "-t", "demo:out", "-o", &output]);
        assert!(out.status.success(), "{spec}: {}", text(&out.stderr));
        let reused = archive_manifest(&again);
        assert_eq!(
            reused["layers"].as_array().unwrap().last().unwrap()["digest"],
            format!("sha256:{diff_hex}"),
            "{spec}: the second export compressed again instead of reading the record"
        );
        // Restore the honest record: the same compression then gives the same archive.
        std::fs::write(&record_path, serde_json::to_vec(&remembered).unwrap()).unwrap();
        let third = cli.dir.path().join(format!("third-{i}.tar"));
        let output = format!("{spec},dest={}", third.display());
        let out = cli.build(&["--progress=plain", "-t", "demo:out", "-o", &output]);
        assert!(out.status.success(), "{spec}: {}", text(&out.stderr));
        assert_eq!(archive_manifest(&third), manifest, "{spec}");
    }
}

fn registry() -> String {
    std::env::var("STRATA_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

#[test]
fn push_output_compresses_at_the_asked_level_and_remembers_it_for_push() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN seq 1 30000 > /numbers\n",
    );
    let name = format!(
        "{}/strata-test/view-push:{}",
        registry(),
        std::process::id()
    );
    let output = format!("type=registry,name={name},compression-level=1");
    let out = cli.build(&["--progress=plain", "-t", "demo:push", "-o", &output]);
    let log = text(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("pushing layers"), "{log}");
    assert!(
        log.contains(&format!("pushing manifest for {name}@sha256:")),
        "{log}"
    );

    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .expect("skopeo is installed");
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let built = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        built["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // The level-1 variant is the one the store remembers for that layer...
    let layers = text(
        &cli.run(&[
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            "demo:push",
        ])
        .stdout,
    );
    let diff_ids: Vec<String> = serde_json::from_str(layers.trim()).unwrap();
    let hex = diff_ids
        .last()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cli.store().join("variants").join(&hex).join("gzip-1")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["digest"], built["digest"], "{record}");
    assert!(
        !cli.store()
            .join("variants")
            .join(&hex)
            .join("gzip-6")
            .exists(),
        "only the asked level was made"
    );

    // ...and `strata push` at the same level sends that same blob.
    let again = format!("{name}-again");
    let out = cli.run(&["tag", "demo:push", &again]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli.run(&["push", "-q", "--compression-level", "1", &again]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{again}"))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        manifest["layers"].as_array().unwrap().last().unwrap()["digest"],
        built["digest"]
    );
}
