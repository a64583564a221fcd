//! Config round trips: docker's extensions survive, serialization is canonical.

use super::*;

const DOCKER: &[u8] = include_bytes!("../../testdata/config/docker-extensions.json");

#[test]
fn docker_extensions_survive_parse_and_serialize() {
    let config = ImageConfig::from_slice(DOCKER).unwrap();
    let hc = config.docker.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test.as_deref().unwrap(),
        [
            "CMD-SHELL",
            "wget -q -O- http://localhost:8080/health || exit 1"
        ]
    );
    assert_eq!(hc.interval, Some(30_000_000_000));
    assert_eq!(hc.timeout, Some(5_000_000_000));
    assert_eq!(hc.start_period, Some(10_000_000_000));
    assert_eq!(hc.start_interval, Some(1_000_000_000));
    assert_eq!(hc.retries, Some(3));
    assert_eq!(
        config.docker.on_build.as_deref().unwrap(),
        ["COPY . /src", "RUN make -C /src"]
    );
    assert_eq!(
        config.docker.shell.as_deref().unwrap(),
        ["/bin/bash", "-o", "pipefail", "-c"]
    );
    assert_eq!(config.docker.args_escaped, Some(true));

    let bytes = config.to_vec();
    let again = ImageConfig::from_slice(&bytes).unwrap();
    assert_eq!(again, config);
    assert_eq!(again.to_vec(), bytes, "serialization is a fixed point");

    // Every field of the input survives, compared as JSON values (the input is not canonical).
    let original: serde_json::Value = serde_json::from_slice(DOCKER).unwrap();
    let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(written, original);
}

#[test]
fn serialization_is_canonical() {
    let bytes = ImageConfig::from_slice(DOCKER).unwrap().to_vec();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        !text.contains(": ") && !text.contains(", \"") && !text.contains('\n'),
        "no whitespace between tokens"
    );
    // Maps that oci-spec holds in HashMaps come out sorted, at every depth.
    let labels = text.find("\"Labels\":{\"a\":\"first\",\"m\":\"\",\"org.opencontainers.image.title\":\"app\",\"z\":\"last\"}");
    assert!(labels.is_some(), "{text}");
    assert!(text.contains("\"ExposedPorts\":{\"443/tcp\":{},\"53/udp\":{},\"8080/tcp\":{}}"));
    assert!(text.contains("\"Volumes\":{\"/cache\":{},\"/data\":{}}"));
    assert!(text.starts_with("{\"architecture\":\"amd64\",\"author\":"));
    // Parsing many times (HashMap seeds differ per map) always yields the same bytes.
    for _ in 0..20 {
        assert_eq!(ImageConfig::from_slice(DOCKER).unwrap().to_vec(), bytes);
    }
}

#[test]
fn extensions_on_a_config_without_config_object() {
    let mut config = ImageConfig::from_slice(
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .unwrap();
    assert!(config.docker.is_empty());
    assert_eq!(
        config.to_vec(),
        br#"{"architecture":"arm64","os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
    );
    config.docker.shell = Some(vec!["/bin/sh".into(), "-c".into()]);
    assert_eq!(
        String::from_utf8(config.to_vec()).unwrap(),
        r#"{"architecture":"arm64","config":{"Shell":["/bin/sh","-c"]},"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#
    );
}

#[test]
fn null_fields_as_docker_writes_them() {
    let config = ImageConfig::from_slice(
        br#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null,"OnBuild":null,"Healthcheck":null,"Labels":null,"ExposedPorts":null},
            "rootfs":{"type":"layers","diff_ids":[]},"container_config":{"Hostname":"x"},"docker_version":"20.10"}"#,
    )
    .unwrap();
    assert!(config.docker.is_empty());
    assert_eq!(config.oci.config().as_ref().unwrap().env(), &None);
}

#[test]
fn invalid_configs_are_errors() {
    for bad in [
        &b""[..],
        b"[]",
        b"{\"os\":\"linux\"}",
        b"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}",
    ] {
        let err = ImageConfig::from_slice(bad).unwrap_err();
        assert!(err.to_string().starts_with("invalid image config: "), "{err}");
    }
    let config = ImageConfig::from_slice(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}"#,
    )
    .unwrap();
    assert_eq!(
        config.diff_ids().unwrap_err().to_string(),
        "invalid image config: rootfs.diff_ids[0]: invalid digest \"sha256:xyz\": expected sha256:<64 lowercase hex characters>"
    );
}

#[test]
fn history_rows_pair_with_layers() {
    let config = ImageConfig::from_slice(DOCKER).unwrap();
    let rows = config.history_layers().unwrap();
    let layers: Vec<_> = rows.iter().map(|(_, d)| d.map(|d| d.short())).collect();
    assert_eq!(
        layers,
        [
            Some("a3ed95caeb02".to_string()),
            None,
            Some("e3b0c44298fc".to_string()),
            None
        ]
    );
    assert_eq!(
        rows[2].0.comment().as_deref(),
        Some("buildkit.dockerfile.v0")
    );
}

#[test]
fn push_layer_and_history_entry() {
    let mut config = ImageConfig::default();
    let t = parse_time("2026-01-02T03:04:05.500Z").unwrap();
    let d = Digest::of(b"layer");
    config.push_layer(history_entry(Some(t), "COPY . /", None, false), Some(d));
    config.push_layer(
        history_entry(
            Some(t),
            "CMD [\"sh\"]",
            Some("buildkit.dockerfile.v0"),
            true,
        ),
        None,
    );
    assert_eq!(config.diff_ids().unwrap(), [d]);
    let h = config.history();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].created().as_deref(), Some("2026-01-02T03:04:05.5Z"));
    assert_eq!(h[0].empty_layer(), None);
    assert_eq!(h[1].empty_layer(), Some(true));
    let text = String::from_utf8(config.to_vec()).unwrap();
    assert!(text.contains(
        r#"{"comment":"buildkit.dockerfile.v0","created":"2026-01-02T03:04:05.5Z","created_by":"CMD [\"sh\"]","empty_layer":true}"#
    ), "{text}");
}

#[test]
fn times_like_go_rfc3339nano() {
    for (input, expected) in [
        ("2024-02-01T10:20:30Z", "2024-02-01T10:20:30Z"),
        ("2024-02-01T10:20:30.000Z", "2024-02-01T10:20:30Z"),
        ("2024-02-01T10:20:30.120Z", "2024-02-01T10:20:30.12Z"),
        (
            "2024-02-01T10:20:30.123456789Z",
            "2024-02-01T10:20:30.123456789Z",
        ),
        ("2024-02-01T12:20:30+02:00", "2024-02-01T10:20:30Z"),
    ] {
        assert_eq!(format_time(parse_time(input).unwrap()), expected);
    }
    assert_eq!(parse_time("yesterday"), None);
}

#[test]
fn fixture_configs_parse() {
    let root = std::env::var("STRATA_FIXTURES").unwrap_or("/var/cache/strata-fixtures".into());
    let dir = std::path::Path::new(&root).join("oci");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("fixtures missing at {}", dir.display());
    };
    let mut seen = 0;
    for entry in entries {
        let blobs = entry.unwrap().path().join("blobs/sha256");
        for blob in std::fs::read_dir(blobs).unwrap() {
            let bytes = std::fs::read(blob.unwrap().path()).unwrap();
            // Only the config blobs have a rootfs.
            if bytes.first() == Some(&b'{') && bytes.windows(8).any(|w| w == b"\"rootfs\"") {
                let config = ImageConfig::from_slice(&bytes).unwrap();
                assert!(!config.diff_ids().unwrap().is_empty());
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "found {seen} fixture configs");
}
