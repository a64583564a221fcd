//! Pull and push against real `docker-registry` processes: the fixture registry and fresh ones
//! started per test, checked against `skopeo` as an independent client.

mod support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use strata_image::Digest;
use strata_image::manifest::ManifestFormat;
use strata_image::media;
use strata_image::oci::image::{Descriptor, ImageManifest, MediaType};
use strata_image::reference::Reference;
use strata_registry::manifest::RawManifest;
use strata_registry::metadata::Metadata;
use strata_registry::registry::Registry as _;
use strata_registry::{
    BlobStatus, Event, Platform, PullOptions, PushOptions, RegistryError, Repo, pull, push,
};
use strata_store::Store;
use support::{TestRegistry, client, empty_store, fixture_registry, pull_from, push_to, runtime};

/// What `skopeo inspect` says the digest of `image` (docker://…) is.
fn skopeo_digest(image: &str) -> String {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::of(&out.stdout).to_string()
}

fn skopeo_inspect(image: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("manifest json")
}

/// Collects events for assertions.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Recorder {
    fn sink(&self) -> impl Fn(Event) + Send + Sync + '_ {
        move |e| self.0.lock().expect("lock").push(e)
    }
    fn statuses(&self) -> Vec<BlobStatus> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| match e {
                Event::Blob { status, .. } => Some(status.clone()),
                Event::Resolved { .. } => None,
            })
            .collect()
    }
    fn count(&self, wanted: impl Fn(&BlobStatus) -> bool) -> usize {
        self.statuses().iter().filter(|s| wanted(s)).count()
    }
}

fn image(store: &Store, name: &str) -> strata_store::Image {
    let entry = store
        .images()
        .expect("images")
        .into_iter()
        .find(|e| e.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{name} is not tagged in the store"));
    store.image(&entry.digest).expect("load image")
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).expect("reference")
}

/// Pulls busybox from the fixture registry into `store` and returns it as the store has it tagged.
fn pull_fixture_busybox(
    rt: &tokio::runtime::Runtime,
    client: &strata_registry::Client,
    store: &Arc<Store>,
) -> strata_store::Image {
    let source = reference(&format!("{}/library/busybox:1.35", fixture_registry()));
    pull_from(rt, client, store, &source).expect("pull");
    image(store, &source.to_string())
}

#[test]
fn pull_every_fixture_push_to_a_new_registry_and_pull_back() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let fixture = fixture_registry();
    let target = TestRegistry::start(false);

    for (repository, tag) in support::FIXTURES {
        let source = reference(&format!("{fixture}/{repository}:{tag}"));
        let events = Recorder::default();
        let pulled = rt
            .block_on(pull(
                &client,
                &store,
                &source,
                &PullOptions::default(),
                &events.sink(),
            ))
            .expect("pull fixture");
        assert_eq!(
            pulled.digest.to_string(),
            skopeo_digest(&format!("{fixture}/{repository}:{tag}"))
        );
        assert!(pulled.updated);
        assert_eq!(pulled.name, source.to_string());
        let stored = image(&store, &source.to_string());
        assert_eq!(stored.manifest_digest, pulled.manifest_digest);
        assert_eq!(stored.config_digest, pulled.config_digest);
        assert!(events.count(|s| *s == BlobStatus::PullComplete) >= 1);
        // golang and gcc are built on debian: its layer is already in the store.
        if ["library/golang", "library/gcc"].contains(repository) {
            assert_eq!(
                events.count(|s| *s == BlobStatus::AlreadyExists),
                1,
                "{:?}",
                events.statuses()
            );
        }

        // Pulling again downloads nothing and reports "up to date".
        let again = Recorder::default();
        let second = rt
            .block_on(pull(
                &client,
                &store,
                &source,
                &PullOptions::default(),
                &again.sink(),
            ))
            .expect("second pull");
        assert!(!second.updated);
        // Up to date: nothing to say per layer, as docker says nothing.
        assert_eq!(again.statuses(), vec![]);

        // Push under a new name: the manifest goes out byte for byte.
        let name = repository.replace("library/", "strata-test/");
        let destination = reference(&format!("{}/{name}:{tag}", target.host()));
        let pushed = push_to(&rt, &client, &store, &stored, &destination).expect("push");
        assert_eq!(pushed.digest, stored.manifest_digest);
        assert_eq!(
            pushed.digest.to_string(),
            skopeo_digest(&format!("{}/{name}:{tag}", target.host()))
        );

        // And back into an empty store.
        let (_b, fresh) = empty_store();
        let back = pull_from(&rt, &client, &fresh, &destination).expect("pull back");
        assert_eq!(back.manifest_digest, stored.manifest_digest);
        assert_eq!(back.config_digest, stored.config_digest);
        for layer in stored.manifest.layers() {
            let digest = Digest::try_from(layer.digest()).expect("digest");
            assert!(
                fresh.has_blob(&digest),
                "layer {digest} missing after pull back"
            );
        }
    }
    // golang's 120 MB layer is over the chunked-upload threshold: it went up in PATCHes.
    let log = target.log();
    assert!(
        log.contains("\"PATCH /v2/strata-test/golang/blobs/uploads/"),
        "no chunked upload in the registry log"
    );
}

#[test]
fn pull_by_digest_and_missing_tag() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let fixture = fixture_registry();
    let digest = skopeo_digest(&format!("{fixture}/library/busybox:1.35"));
    let by_digest = reference(&format!("{fixture}/library/busybox@{digest}"));
    let pulled = pull_from(&rt, &client, &store, &by_digest).expect("pull by digest");
    assert_eq!(pulled.digest.to_string(), digest);
    assert_eq!(pulled.name, by_digest.to_string());

    let missing = reference(&format!("{fixture}/library/busybox:no-such-tag"));
    let err = pull_from(&rt, &client, &store, &missing).expect_err("missing tag");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
}

#[test]
fn cross_repository_mount_and_declined_mount_fallback() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let registry = TestRegistry::start(false);
    let stored = pull_fixture_busybox(&rt, &client, &store);

    let first = reference(&format!("{}/team-a/busybox:1", registry.host()));
    push_to(&rt, &client, &store, &stored, &first).expect("first push");
    let events = Recorder::default();
    let second = reference(&format!("{}/team-b/busybox:1", registry.host()));
    rt.block_on(push(
        &client,
        &store,
        &stored,
        &second,
        &PushOptions::default(),
        &events.sink(),
    ))
    .expect("second push");
    // Config and layer were mounted from team-a, not uploaded again.
    assert_eq!(
        events.count(|s| *s
            == BlobStatus::Mounted {
                from: "team-a/busybox".into()
            }),
        2
    );
    assert_eq!(events.count(|s| *s == BlobStatus::Pushed), 0);
    let log = registry.log();
    let mounts = log
        .lines()
        .filter(|l| {
            l.contains("\"POST /v2/team-b/busybox/blobs/uploads/?mount=sha256%3A")
                && l.contains("&from=team-a%2Fbusybox HTTP/1.1\" 201 ")
        })
        .count();
    assert_eq!(mounts, 2, "registry log:\n{log}");

    // The only recorded source does not hold the blob: the registry answers 202 and strata
    // uploads instead.
    let metadata = Metadata::new(&store);
    let layer = Digest::try_from(stored.manifest.layers()[0].digest()).expect("digest");
    for digest in [stored.config_digest, layer] {
        std::fs::remove_file(store.root().join("registry/sources").join(digest.hex()))
            .expect("forget sources");
        metadata
            .add_source(&digest, &Repo::new(registry.host(), "nowhere/empty"))
            .expect("add source");
    }
    let events = Recorder::default();
    let third = reference(&format!("{}/team-c/busybox:1", registry.host()));
    rt.block_on(push(
        &client,
        &store,
        &stored,
        &third,
        &PushOptions::default(),
        &events.sink(),
    ))
    .expect("third push");
    assert_eq!(
        events.count(|s| *s == BlobStatus::Pushed),
        2,
        "{:?}",
        events.statuses()
    );
    let log = registry.log();
    assert!(
        log.lines().any(|l| {
            l.contains("\"POST /v2/team-c/busybox/blobs/uploads/?mount=")
                && l.contains("&from=nowhere%2Fempty HTTP/1.1\" 202 ")
        }),
        "no declined mount in the registry log"
    );
    assert_eq!(
        skopeo_digest(&format!("{}/team-c/busybox:1", registry.host())),
        stored.manifest_digest.to_string()
    );
}

/// Pushes a blob through the client (from a temporary file).
fn upload(
    rt: &tokio::runtime::Runtime,
    client: &strata_registry::Client,
    repo: &Repo,
    bytes: &[u8],
) -> Digest {
    let digest = Digest::of(bytes);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), bytes).expect("write blob");
    rt.block_on(client.upload_blob(
        repo,
        &digest,
        bytes.len() as u64,
        file.path(),
        Arc::default(),
    ))
    .expect("upload blob");
    digest
}

#[test]
fn multi_platform_index_resolves_to_the_requested_platform() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let registry = TestRegistry::start(false);
    let stored = pull_fixture_busybox(&rt, &client, &store);
    let repo = Repo::new(registry.host(), "multi/busybox");

    // The layer and an amd64 and an arm64 config (same rootfs, different architecture).
    let layer = &stored.manifest.layers()[0];
    let layer_digest = Digest::try_from(layer.digest()).expect("digest");
    let layer_bytes = store.read_blob(&layer_digest).expect("layer");
    upload(&rt, &client, &repo, &layer_bytes);
    let mut platform_manifests = Vec::new();
    for (architecture, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let mut config: serde_json::Value =
            serde_json::from_slice(&stored.config_bytes).expect("config");
        config["architecture"] = architecture.into();
        if let Some(v) = variant {
            config["variant"] = v.into();
        }
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        let config_digest = upload(&rt, &client, &repo, &config_bytes);
        let mut manifest: ImageManifest = stored.manifest.clone();
        manifest.set_config(Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            config_digest,
        ));
        let bytes = serde_json::to_vec(&manifest).expect("manifest json");
        let raw = RawManifest {
            digest: Digest::of(&bytes),
            media_type: media::OCI_MANIFEST.into(),
            bytes,
        };
        rt.block_on(client.put_manifest(&repo, &raw.digest.to_string(), &raw))
            .expect("put manifest");
        platform_manifests.push((architecture, variant, raw));
    }
    let manifests: Vec<serde_json::Value> = platform_manifests
        .iter()
        .map(|(architecture, variant, raw)| {
            let mut platform = serde_json::json!({"os": "linux", "architecture": architecture});
            if let Some(v) = variant {
                platform["variant"] = (*v).into();
            }
            serde_json::json!({
                "mediaType": media::OCI_MANIFEST,
                "digest": raw.digest.to_string(),
                "size": raw.bytes.len(),
                "platform": platform,
            })
        })
        .rev() // arm64 first: picking the first entry would be wrong
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    }))
    .expect("index json");
    let index_raw = RawManifest {
        digest: Digest::of(&index),
        media_type: media::OCI_INDEX.into(),
        bytes: index,
    };
    rt.block_on(client.put_manifest(&repo, "multi", &index_raw))
        .expect("put index");

    let multi = reference(&format!("{}/multi/busybox:multi", registry.host()));
    let (_b, fresh) = empty_store();
    let amd64 = pull_from(&rt, &client, &fresh, &multi).expect("pull default platform");
    assert_eq!(amd64.digest, index_raw.digest);
    assert_eq!(amd64.manifest_digest, platform_manifests[0].2.digest);

    let (_c, fresh) = empty_store();
    let arm = PullOptions {
        platform: "linux/arm64".parse::<Platform>().expect("platform"),
        ..PullOptions::default()
    };
    let arm64 = rt
        .block_on(pull(
            &client,
            &fresh,
            &multi,
            &arm,
            &strata_registry::events::ignore,
        ))
        .expect("pull arm64");
    assert_eq!(arm64.manifest_digest, platform_manifests[1].2.digest);

    let (dir, fresh) = empty_store();
    let s390x = PullOptions {
        platform: "linux/s390x".parse::<Platform>().expect("platform"),
        ..PullOptions::default()
    };
    let err = rt
        .block_on(pull(
            &client,
            &fresh,
            &multi,
            &s390x,
            &strata_registry::events::ignore,
        ))
        .expect_err("no s390x");
    assert_eq!(
        err.to_string(),
        format!(
            "{multi}: no manifest for platform linux/s390x (available: linux/arm64/v8, linux/amd64)"
        )
    );
    assert!(fresh.images().expect("images").is_empty());
    assert!(support::files_under(&dir.path().join("store/blobs")).is_empty());
}

#[test]
fn tampered_blobs_are_refused_and_leave_nothing() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let registry = TestRegistry::start(false);
    let stored = pull_fixture_busybox(&rt, &client, &store);
    let target = reference(&format!("{}/tamper/busybox:1", registry.host()));
    push_to(&rt, &client, &store, &stored, &target).expect("push");
    let layer = Digest::try_from(stored.manifest.layers()[0].digest()).expect("digest");
    let file = registry.blob_file(&layer.hex());

    // Same size, one byte flipped: the digest check catches it.
    let mut bytes = std::fs::read(&file).expect("registry blob");
    let original = bytes.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).expect("tamper");
    let (dir, fresh) = empty_store();
    let err = pull_from(&rt, &client, &fresh, &target).expect_err("tampered layer");
    match &err {
        RegistryError::DigestMismatch {
            what: "layer",
            expected,
            ..
        } => assert_eq!(*expected, layer),
        other => panic!("expected a layer digest mismatch, got {other}"),
    }
    assert!(
        fresh.images().expect("images").is_empty(),
        "tampered image was tagged"
    );
    assert!(!fresh.has_blob(&layer));
    assert!(
        support::files_under(&dir.path().join("store/ingest")).is_empty(),
        "ingest left behind"
    );
    assert!(
        !fresh.has_blob(&stored.manifest_digest),
        "manifest stored although a layer failed"
    );

    // Truncated: the registry now announces fewer bytes than the descriptor says.
    std::fs::write(&file, &original[..original.len() - 100]).expect("truncate");
    let (dir, fresh) = empty_store();
    let err = pull_from(&rt, &client, &fresh, &target).expect_err("truncated layer");
    match &err {
        RegistryError::SizeMismatch {
            what: "layer",
            expected,
            found,
            ..
        } => {
            assert_eq!(
                (*expected, *found),
                (original.len() as u64, original.len() as u64 - 100)
            );
        }
        other => panic!("expected a layer size mismatch, got {other}"),
    }
    assert!(fresh.images().expect("images").is_empty());
    assert!(support::files_under(&dir.path().join("store/ingest")).is_empty());
}

#[test]
fn skopeo_reads_what_strata_pushed_and_strata_reads_what_skopeo_pushed() {
    let rt = runtime();
    let client = client(&[]);
    let registry = TestRegistry::start(false);
    let fixtures =
        std::env::var("STRATA_FIXTURES").unwrap_or_else(|_| "/var/cache/strata-fixtures".into());

    // skopeo → registry (as Docker v2s2) → strata.
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--format",
            "v2s2",
            &format!("oci:{fixtures}/oci/busybox_1.35"),
            &format!("docker://{}/skopeo/busybox:v2s2", registry.host()),
        ])
        .status()
        .expect("run skopeo copy");
    assert!(status.success());
    let (_a, store) = empty_store();
    let from_skopeo = reference(&format!("{}/skopeo/busybox:v2s2", registry.host()));
    let pulled = pull_from(&rt, &client, &store, &from_skopeo).expect("pull what skopeo pushed");
    assert_eq!(
        pulled.digest.to_string(),
        skopeo_digest(&format!("{}/skopeo/busybox:v2s2", registry.host()))
    );
    let stored = image(&store, &from_skopeo.to_string());
    assert_eq!(
        stored.manifest.layers()[0].media_type().to_string(),
        media::DOCKER_LAYER_GZIP
    );

    // strata → registry, converted to OCI → skopeo.
    let converted = reference(&format!("{}/strata/busybox:oci", registry.host()));
    let options = PushOptions {
        format: Some(ManifestFormat::Oci),
        ..PushOptions::default()
    };
    let pushed = rt
        .block_on(push(
            &client,
            &store,
            &stored,
            &converted,
            &options,
            &strata_registry::events::ignore,
        ))
        .expect("push as oci");
    assert_ne!(
        pushed.digest, stored.manifest_digest,
        "conversion must change the manifest"
    );
    let manifest = skopeo_inspect(&format!("{}/strata/busybox:oci", registry.host()));
    assert_eq!(manifest["mediaType"], media::OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], media::OCI_CONFIG);
    assert_eq!(manifest["layers"][0]["mediaType"], media::OCI_LAYER_GZIP);
    assert_eq!(
        manifest["layers"][0]["digest"],
        stored.manifest.layers()[0].digest().to_string()
    );
    assert_eq!(
        pushed.digest.to_string(),
        skopeo_digest(&format!("{}/strata/busybox:oci", registry.host()))
    );
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/strata/busybox:oci", registry.host()),
        ])
        .output()
        .expect("skopeo inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(inspected["Architecture"], "amd64");
}

#[test]
fn uncompressed_layers_are_compressed_once() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let registry = TestRegistry::start(false);
    let pulled = pull_fixture_busybox(&rt, &client, &store);

    // A "built" image: the same layer stored uncompressed (digest = diff_id), as strata's
    // build engine stores the layers it makes.
    let gz = store
        .read_blob(&Digest::try_from(pulled.manifest.layers()[0].digest()).expect("digest"))
        .expect("layer");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut tar)
        .expect("gunzip");
    let diff_id = store.put_blob(&tar).expect("store tar");
    let config: serde_json::Value = serde_json::from_slice(&pulled.config_bytes).expect("config");
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.to_string());
    let mut manifest = pulled.manifest.clone();
    manifest.set_layers(vec![Descriptor::new(
        MediaType::ImageLayer,
        tar.len() as u64,
        diff_id,
    )]);
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let manifest_digest = store.put_blob(&bytes).expect("store manifest");
    store
        .tag(
            "localhost/built:1",
            Descriptor::new(
                MediaType::ImageManifest,
                bytes.len() as u64,
                manifest_digest,
            ),
        )
        .expect("tag");
    let built = image(&store, "localhost/built:1");

    let events = Recorder::default();
    let first = reference(&format!("{}/built/one:1", registry.host()));
    let pushed = rt
        .block_on(push(
            &client,
            &store,
            &built,
            &first,
            &PushOptions::default(),
            &events.sink(),
        ))
        .expect("push built");
    assert_eq!(events.count(|s| *s == BlobStatus::Preparing), 1);
    let remote = skopeo_inspect(&format!("{}/built/one:1", registry.host()));
    assert_eq!(remote["layers"][0]["mediaType"], media::OCI_LAYER_GZIP);
    let compressed = store
        .compressed_variant(
            &diff_id,
            media::LayerCompression::Gzip,
            strata_registry::DEFAULT_COMPRESSION_LEVEL as i32,
        )
        .expect("read the record")
        .expect("variant remembered");
    assert_eq!(remote["layers"][0]["digest"], compressed.digest.to_string());
    assert_eq!(remote["layers"][0]["size"], compressed.size);
    // GNU gzip reads the (parallel, single-member) stream back to the layer's diff_id.
    let gunzip = Command::new("gzip")
        .args(["-dc"])
        .arg(store.blob_path(&compressed.digest))
        .output()
        .expect("run gzip");
    assert!(
        gunzip.status.success(),
        "{}",
        String::from_utf8_lossy(&gunzip.stderr)
    );
    assert_eq!(Digest::of(&gunzip.stdout), diff_id);

    // Second push, another repository: no compression, the layer is mounted.
    let events = Recorder::default();
    let second = reference(&format!("{}/built/two:1", registry.host()));
    let again = rt
        .block_on(push(
            &client,
            &store,
            &built,
            &second,
            &PushOptions::default(),
            &events.sink(),
        ))
        .expect("push again");
    assert_eq!(events.count(|s| *s == BlobStatus::Preparing), 0);
    assert_eq!(events.count(|s| matches!(s, BlobStatus::Mounted { .. })), 2);
    assert_eq!(again.digest, pushed.digest);

    // The compressed bytes may be garbage-collected; the mapping stays, so a third repository
    // still mounts the layer without compressing, and a new registry gets the same bytes again.
    store
        .discard_blobs(&[compressed.digest])
        .expect("discard the gzip blob");
    assert!(!store.has_blob(&compressed.digest));
    let events = Recorder::default();
    let third = reference(&format!("{}/built/three:1", registry.host()));
    rt.block_on(push(
        &client,
        &store,
        &built,
        &third,
        &PushOptions::default(),
        &events.sink(),
    ))
    .expect("push after gc");
    assert_eq!(events.count(|s| *s == BlobStatus::Preparing), 0);
    assert_eq!(events.count(|s| matches!(s, BlobStatus::Mounted { .. })), 2);
    let elsewhere = TestRegistry::start(false);
    let events = Recorder::default();
    let fourth = reference(&format!("{}/built/four:1", elsewhere.host()));
    let repushed = rt
        .block_on(push(
            &client,
            &store,
            &built,
            &fourth,
            &PushOptions::default(),
            &events.sink(),
        ))
        .expect("push to another registry");
    assert_eq!(events.count(|s| *s == BlobStatus::Preparing), 1);
    assert_eq!(
        repushed.digest, pushed.digest,
        "gzip output is deterministic"
    );

    // Docker format on request.
    let docker = reference(&format!("{}/built/docker:1", registry.host()));
    let options = PushOptions {
        format: Some(ManifestFormat::Docker),
        ..PushOptions::default()
    };
    rt.block_on(push(
        &client,
        &store,
        &built,
        &docker,
        &options,
        &strata_registry::events::ignore,
    ))
    .expect("push docker format");
    let remote = skopeo_inspect(&format!("{}/built/docker:1", registry.host()));
    assert_eq!(remote["mediaType"], media::DOCKER_MANIFEST);
    assert_eq!(remote["config"]["mediaType"], media::DOCKER_CONFIG);
    assert_eq!(remote["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);

    // What was pushed pulls into an empty store with the compressed layer.
    let (_b, fresh) = empty_store();
    let back = pull_from(&rt, &client, &fresh, &first).expect("pull back");
    assert_eq!(back.manifest_digest, pushed.digest);
    assert!(fresh.has_blob(&compressed.digest));
}

#[test]
fn loopback_https_registry_with_a_self_signed_certificate() {
    let rt = runtime();
    let client = client(&[]);
    let (_a, store) = empty_store();
    let registry = TestRegistry::start_tls();
    let stored = pull_fixture_busybox(&rt, &client, &store);
    // Loopback registries are trusted as docker trusts them: HTTPS is tried first and its
    // self-signed certificate accepted; the registry only speaks TLS, so success means HTTPS.
    let target = reference(&format!("{}/tls/busybox:1", registry.host()));
    let pushed = push_to(&rt, &client, &store, &stored, &target).expect("push over https");
    assert_eq!(pushed.digest, stored.manifest_digest);
    assert_eq!(
        rt.block_on(client.base_url(&registry.host()))
            .expect("base")
            .as_str(),
        format!("https://{}/", registry.host())
    );
    let (_b, fresh) = empty_store();
    let back = pull_from(&rt, &client, &fresh, &target).expect("pull over https");
    assert_eq!(back.manifest_digest, stored.manifest_digest);
}
