//! The store's contract, exercised on temporary roots.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use strata_image::Digest;
use strata_image::oci::image::{Descriptor, MediaType};
use strata_store::{CacheRecord, Roots, Store, StoreError};

/// Every file under `root` (relative), to compare a store before and after an operation.
fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

/// Stores a one-layer image whose layer is `layer` and returns (manifest descriptor, config digest).
fn put_image(store: &Store, layer: &[u8], created: &str) -> (Descriptor, Digest) {
    let layer_digest = store.put_blob(layer).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","created":"{created}","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}},"config":{{}}}}"#
    );
    let config_digest = store.put_blob(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest_digest = store.put_blob(manifest.as_bytes()).unwrap();
    let descriptor = Descriptor::new(
        MediaType::ImageManifest,
        manifest.len() as u64,
        manifest_digest,
    );
    (descriptor, config_digest)
}

fn normalize(s: &str) -> Option<String> {
    // Enough of docker's normalization for these tests; the real one lives in strata-image.
    if s.is_empty() || s.contains(char::is_uppercase) {
        return None;
    }
    let full = if s.contains('/') {
        s.to_string()
    } else {
        format!("docker.io/library/{s}")
    };
    Some(
        if full.rsplit('/').next().is_some_and(|l| l.contains(':')) {
            full
        } else {
            format!("{full}:latest")
        },
    )
}

#[test]
fn a_new_store_is_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layout = fs::read_to_string(dir.path().join("oci-layout")).unwrap();
    assert_eq!(layout, r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    assert!(dir.path().join("blobs/sha256").is_dir());
    assert!(store.images().unwrap().is_empty());
    // Reopening is harmless.
    Store::open(dir.path()).unwrap();
}

#[test]
fn refuses_a_directory_with_a_foreign_layout_version() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"9"}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));
}

#[test]
fn blobs_are_verified_before_they_become_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = tree(dir.path());

    let right = Digest::of(b"hello");
    let wrong = Digest::of(b"other");
    let cases: &[(Option<(Digest, u64)>, bool)] = &[
        (Some((wrong, 5)), false), // digest mismatch
        (Some((right, 4)), false), // size mismatch
    ];
    for (expected, ok) in cases {
        let mut ingest = store.ingest().unwrap();
        ingest.write_all(b"hello").unwrap();
        assert_eq!(ingest.commit(*expected).is_ok(), *ok, "{expected:?}");
    }
    // A dropped (never committed) ingest leaves nothing either: as a crash mid-write would not.
    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"half").unwrap();
    drop(ingest);
    assert_eq!(tree(dir.path()), before);

    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"hello").unwrap();
    assert_eq!(ingest.commit(Some((right, 5))).unwrap(), (right, 5));
    assert!(store.has_blob(&right));
    assert_eq!(store.read_blob(&right).unwrap(), b"hello");
    // Committing the same content again is a no-op.
    assert_eq!(store.put_blob(b"hello").unwrap(), right);
    assert_eq!(store.blobs().unwrap(), vec![(right, 5)]);
    assert!(
        fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_blob_altered_on_disk_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let digest = store.put_blob(b"original").unwrap();
    let path = store.blob_path(&digest);
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    fs::write(&path, b"tampered").unwrap();
    assert!(matches!(
        store.read_blob(&digest),
        Err(StoreError::DigestMismatch { .. })
    ));
    let mut reader = store.open_blob(&digest).unwrap();
    let err = std::io::copy(&mut reader, &mut std::io::sink()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[test]
fn tags_move_and_leave_dangling_images_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (one, _) = put_image(&store, b"layer one", "2024-01-01T00:00:00Z");
    let (two, _) = put_image(&store, b"layer two", "2024-01-02T00:00:00Z");
    let name = "docker.io/library/app:latest";

    assert_eq!(store.tag(name, one.clone()).unwrap().previous, None);
    store.tag("docker.io/library/app:v1", one.clone()).unwrap();
    // Moving a tag away from an image that keeps another tag: no dangling entry.
    let outcome = store.tag(name, two.clone()).unwrap();
    assert_eq!(
        outcome.previous,
        Some(Digest::try_from(one.digest()).unwrap())
    );
    let names: Vec<_> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        vec![
            Some(name.to_string()),
            Some("docker.io/library/app:v1".to_string())
        ]
    );
    // Moving the last tag away keeps the old image as `<none>`.
    store.tag("docker.io/library/app:v1", two.clone()).unwrap();
    let entries = store.images().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].name, None);
    assert_eq!(entries[2].digest, Digest::try_from(one.digest()).unwrap());
    // Naming the dangling image again replaces its unnamed entry.
    store.tag("docker.io/library/old:1", one.clone()).unwrap();
    assert!(store.images().unwrap().iter().all(|e| e.name.is_some()));

    // index.json is what skopeo/umoci read: full references in the standard annotation.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let annotated: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        annotated,
        [
            "docker.io/library/app:latest",
            "docker.io/library/app:v1",
            "docker.io/library/old:1"
        ]
    );

    assert_eq!(
        store.untag("docker.io/library/old:1").unwrap(),
        Some(one.clone()).map(|d| {
            let mut d = d;
            d.set_annotations(Some(
                [(
                    "org.opencontainers.image.ref.name".to_string(),
                    "docker.io/library/old:1".to_string(),
                )]
                .into(),
            ));
            d
        })
    );
    assert_eq!(store.untag("docker.io/library/old:1").unwrap(), None);
}

#[test]
fn retagging_with_the_same_tag_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (one, _) = put_image(&store, b"layer one", "2024-01-01T00:00:00Z");
    let (two, _) = put_image(&store, b"layer two", "2024-01-02T00:00:00Z");
    // Two tags, so the re-tagged entry is not the last one in index.json.
    store.tag("docker.io/library/a:1", one.clone()).unwrap();
    store.tag("docker.io/library/b:1", two.clone()).unwrap();
    store.add_untagged(one.clone()).unwrap();
    let index = dir.path().join("index.json");
    let before = fs::read(&index).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let ino = inode(&index);

    store.tag("docker.io/library/a:1", one.clone()).unwrap();
    store.tag("docker.io/library/b:1", two.clone()).unwrap();
    store.add_untagged(two).unwrap();

    // An atomic rewrite would have replaced the file (new inode) even with equal bytes.
    assert_eq!(inode(&index), ino, "index.json was rewritten");
    assert_eq!(fs::read(&index).unwrap(), before);
}

#[test]
fn resolve_accepts_names_full_ids_and_unique_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Find two images whose IMAGE IDs share a first hex digit, so a 1-char prefix is ambiguous.
    let mut images = Vec::new();
    let mut i = 0;
    while images.len() < 2 {
        let (d, config) = put_image(
            &store,
            format!("layer {i}").as_bytes(),
            "2024-01-01T00:00:00Z",
        );
        i += 1;
        if images.is_empty()
            || images
                .iter()
                .any(|(_, c): &(Descriptor, Digest)| c.hex()[..1] == config.hex()[..1])
        {
            images.push((d, config));
        }
    }
    let (a, a_id) = &images[0];
    let (b, b_id) = &images[1];
    store.tag("docker.io/library/a:latest", a.clone()).unwrap();
    store.tag("docker.io/library/b:1", b.clone()).unwrap();

    let resolve = |q: &str| {
        store
            .resolve_with(q, normalize)
            .map(|img| img.config_digest)
    };
    assert_eq!(resolve("a").unwrap(), *a_id);
    assert_eq!(resolve("docker.io/library/b:1").unwrap(), *b_id);
    assert_eq!(resolve(&a_id.to_string()).unwrap(), *a_id);
    assert_eq!(resolve(&b_id.hex()).unwrap(), *b_id);
    assert_eq!(resolve(&a_id.short()).unwrap(), *a_id);
    assert_eq!(
        resolve(&format!("sha256:{}", &b_id.hex()[..10])).unwrap(),
        *b_id
    );
    match resolve(&a_id.hex()[..1]) {
        Err(StoreError::AmbiguousId { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("expected an ambiguity, got {other:?}"),
    }
    assert!(matches!(resolve("nope"), Err(StoreError::ImageNotFound(_))));
    assert!(
        matches!(resolve("b"), Err(StoreError::ImageNotFound(_))),
        "b means b:latest"
    );
    // The real docker normalization.
    assert_eq!(store.resolve("a:latest").unwrap().config_digest, *a_id);
    assert_eq!(
        store
            .resolve("docker.io/library/b:1")
            .unwrap()
            .config_digest,
        *b_id
    );
    let img = store.resolve_with("b:1", normalize).unwrap();
    assert_eq!(img.names, vec!["docker.io/library/b:1".to_string()]);
    assert_eq!(img.manifest.layers().len(), 1);
}

#[test]
fn concurrent_taggers_never_lose_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (desc, _) = put_image(&store, b"shared", "2024-01-01T00:00:00Z");
    let threads = 8;
    let per_thread = 25;
    std::thread::scope(|s| {
        for t in 0..threads {
            let desc = desc.clone();
            let root = dir.path().to_path_buf();
            s.spawn(move || {
                // A Store per thread: separate lock file descriptions, as separate processes have.
                let store = Store::open(&root).unwrap();
                for i in 0..per_thread {
                    store
                        .tag(&format!("localhost:5000/t{t}:{i}"), desc.clone())
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(store.images().unwrap().len(), threads * per_thread);
}

#[test]
fn snapshots_prepare_commit_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = Digest::of(b"base");
    let top = Digest::of(b"top");

    let prepared = store.prepare_snapshot().unwrap();
    fs::write(prepared.dir.join("file"), b"x").unwrap();
    let id = prepared.id;
    let snap = store.commit_snapshot(prepared, base, base, None).unwrap();
    assert_eq!(snap.id, id);
    assert_eq!(snap.dir, dir.path().join(format!("snapshots/{id}/fs")));
    assert_eq!(fs::read(snap.dir.join("file")).unwrap(), b"x");
    assert!(!dir.path().join(format!("snapshots/{id}/work")).exists());

    // Committing the same chain_id again discards the duplicate and returns the original.
    let dup = store.prepare_snapshot().unwrap();
    let dup_base = dir.path().join(format!("snapshots/{}", dup.id));
    assert_ne!(dup.id, id);
    assert_eq!(store.commit_snapshot(dup, base, base, None).unwrap(), snap);
    assert!(!dup_base.exists());

    // Dropping a prepared snapshot discards it.
    let dropped = store.prepare_snapshot().unwrap();
    let dropped_base = dir.path().join(format!("snapshots/{}", dropped.id));
    drop(dropped);
    assert!(!dropped_base.exists());

    let child = store.prepare_snapshot().unwrap();
    let child = store.commit_snapshot(child, top, top, Some(base)).unwrap();
    assert_eq!(
        store.lower_dirs(&[base, top]).unwrap(),
        Some(vec![child.dir.clone(), snap.dir.clone()])
    );
    assert_eq!(store.lower_dirs(&[Digest::of(b"missing")]).unwrap(), None);
    assert!(matches!(
        store.remove_snapshot(&base),
        Err(StoreError::SnapshotHasChildren { .. })
    ));
    store.remove_snapshot(&top).unwrap();
    store.remove_snapshot(&base).unwrap();
    assert!(store.snapshots().unwrap().is_empty());
    assert!(matches!(
        store.remove_snapshot(&base),
        Err(StoreError::SnapshotNotFound(_))
    ));
}

#[test]
fn cache_records_round_trip_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = Digest::of(b"RUN make");
    assert_eq!(store.cache_get(&key).unwrap(), None);
    let record = CacheRecord {
        payload: serde_json::json!({"layer": "anything the builder wants"}),
        blobs: vec![],
        chain_ids: vec![],
        created: "2024-05-01T10:00:00Z".parse().unwrap(),
    };
    store.cache_put(&key, &record).unwrap();
    assert_eq!(store.cache_get(&key).unwrap(), Some(record.clone()));
    assert_eq!(store.cache_records().unwrap(), vec![(key, record)]);
    assert_eq!(store.cache_prune(|_, _| false).unwrap(), 0);
    assert_eq!(store.cache_prune(|_, _| true).unwrap(), 1);
    assert_eq!(store.cache_get(&key).unwrap(), None);
}

#[test]
fn gc_removes_only_what_nothing_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (tagged, tagged_id) = put_image(&store, b"tagged layer", "2024-01-01T00:00:00Z");
    store
        .tag("docker.io/library/kept:1", tagged.clone())
        .unwrap();
    let (rooted, _) = put_image(&store, b"rooted layer", "2024-01-01T00:00:00Z");
    store
        .set_roots(
            "container-1",
            &Roots {
                manifests: vec![Digest::try_from(rooted.digest()).unwrap()],
                ..Roots::default()
            },
        )
        .unwrap();
    let cached = store.put_blob(b"cached layer").unwrap();
    store
        .cache_put(
            &Digest::of(b"key"),
            &CacheRecord {
                payload: serde_json::Value::Null,
                blobs: vec![cached],
                chain_ids: vec![],
                created: chrono::Utc::now(),
            },
        )
        .unwrap();
    let (garbage, garbage_config) = put_image(&store, b"garbage layer", "2024-01-01T00:00:00Z");
    let garbage_layer = Digest::of(b"garbage layer");

    // Snapshots: the tagged image's layer is reachable, another one is not.
    let tagged_layer = Digest::of(b"tagged layer");
    let p = store.prepare_snapshot().unwrap();
    store
        .commit_snapshot(p, tagged_layer, tagged_layer, None)
        .unwrap();
    let p = store.prepare_snapshot().unwrap();
    store
        .commit_snapshot(p, garbage_layer, garbage_layer, None)
        .unwrap();
    // Leftovers of a crash: an unlocked ingest file and an unrecorded snapshot directory.
    fs::write(dir.path().join("ingest/crashed"), b"partial").unwrap();
    fs::create_dir_all(dir.path().join("snapshots/99/fs")).unwrap();

    let report = store.gc().unwrap();
    let mut removed = report.blobs_removed.clone();
    removed.sort();
    let mut expected = vec![
        Digest::try_from(garbage.digest()).unwrap(),
        garbage_config,
        garbage_layer,
    ];
    expected.sort();
    assert_eq!(
        removed, expected,
        "manifest, config and layer of the garbage image"
    );
    assert_eq!(report.snapshots_removed, vec![garbage_layer]);
    assert_eq!(report.stale_removed, 2);
    assert!(store.has_blob(&cached));
    assert!(store.resolve_with("kept:1", normalize).is_ok());
    assert_eq!(
        store
            .resolve_with("kept:1", normalize)
            .unwrap()
            .config_digest,
        tagged_id
    );
    assert!(
        store
            .image(&Digest::try_from(rooted.digest()).unwrap())
            .is_ok()
    );
    assert!(store.snapshot(&tagged_layer).unwrap().is_some());

    // Untagging then collecting removes the image entirely.
    store.untag("docker.io/library/kept:1").unwrap();
    store.remove_roots("container-1").unwrap();
    store.cache_prune(|_, _| true).unwrap();
    store.gc().unwrap();
    assert!(store.blobs().unwrap().is_empty());
    assert!(store.snapshots().unwrap().is_empty());
}

#[test]
fn discard_undoes_only_unreferenced_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (tagged, _) = put_image(&store, b"kept", "2024-01-01T00:00:00Z");
    store.tag("docker.io/library/kept:1", tagged).unwrap();
    let kept_layer = Digest::of(b"kept");

    let mut ingest = store.ingest().unwrap();
    ingest.write_all(b"new content").unwrap();
    let fresh = ingest.commit_detailed(None).unwrap();
    assert!(fresh.created);
    let mut again = store.ingest().unwrap();
    again.write_all(b"new content").unwrap();
    assert!(!again.commit_detailed(None).unwrap().created);

    store.discard_blobs(&[fresh.digest, kept_layer]).unwrap();
    assert!(!store.has_blob(&fresh.digest));
    assert!(
        store.has_blob(&kept_layer),
        "a tagged image's layer survives"
    );
}

#[test]
fn gc_waits_for_writers_and_gc_if_idle_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Store::open(dir.path()).unwrap();
    // The writer's first ingest takes its lease: its untagged blob must survive a collection.
    let pending = writer.put_blob(b"not tagged yet").unwrap();
    let collector = Store::open(dir.path()).unwrap();
    assert_eq!(collector.gc_if_idle().unwrap(), None);
    assert!(writer.has_blob(&pending));
    drop(writer);
    let report = collector.gc_if_idle().unwrap().expect("no writer left");
    assert_eq!(report.blobs_removed, vec![pending]);
}
