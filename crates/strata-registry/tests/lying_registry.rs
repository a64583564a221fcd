//! A registry that lies gets a precise error and leaves nothing in the store: no tag, no
//! manifest, no blob under a wrong digest, no ingest file. Served by the in-memory registry,
//! which stores whatever bytes it is given under whatever digest.

mod support;

use std::sync::Arc;

use strata_image::Digest;
use strata_image::media;
use strata_image::reference::Reference;
use strata_registry::memory::{MemoryRegistry, Operation};
use strata_registry::{PullOptions, RegistryError, Repo, pull};
use strata_store::Store;

const REGISTRY: &str = "registry.test";
const REPOSITORY: &str = "liar/image";

fn repo() -> Repo {
    Repo::new(REGISTRY, REPOSITORY)
}

fn ignore(_: strata_registry::Event) {}

fn manifest_json(config: (Digest, usize), layers: &[(Digest, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, size)| serde_json::json!({"mediaType": media::OCI_LAYER_GZIP, "digest": d.to_string(), "size": size}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config.0.to_string(), "size": config.1},
        "layers": layers,
    }))
    .expect("manifest json")
}

const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
const LAYER: &[u8] = b"pretend this is a gzip layer";

/// A registry with a correct image under `good`; returns (config, layer) digests.
fn honest(registry: &MemoryRegistry) -> (Digest, Digest) {
    let config = registry.put_blob(&repo(), CONFIG);
    let layer = registry.put_blob(&repo(), LAYER);
    registry.put_manifest_bytes(
        &repo(),
        "good",
        media::OCI_MANIFEST,
        manifest_json((config, CONFIG.len()), &[(layer, LAYER.len())]),
    );
    (config, layer)
}

fn try_pull(
    registry: &MemoryRegistry,
    tag: &str,
) -> (
    tempfile::TempDir,
    Arc<Store>,
    Result<strata_registry::Pulled, RegistryError>,
) {
    let (dir, store) = support::empty_store();
    let reference = Reference::parse(&format!("{REGISTRY}/{REPOSITORY}:{tag}")).expect("reference");
    let result = support::runtime().block_on(pull(
        registry,
        &store,
        &reference,
        &PullOptions::default(),
        &ignore,
    ));
    (dir, store, result)
}

/// Nothing of a failed pull is left: no tag, no ingest file, and no blob but `allowed` ones
/// (even correct blobs downloaded before the failure are removed again).
fn assert_nothing_left(dir: &tempfile::TempDir, store: &Store, allowed: &[Digest]) {
    assert!(
        store.images().expect("images").is_empty(),
        "a failed pull tagged an image"
    );
    assert!(
        support::files_under(&dir.path().join("store/ingest")).is_empty(),
        "ingest files left behind"
    );
    for (digest, _) in store.blobs().expect("blobs") {
        assert!(
            allowed.contains(&digest),
            "unexpected blob {digest} in the store"
        );
    }
}

#[test]
fn honest_registry_pulls() {
    let registry = MemoryRegistry::new();
    let (config, layer) = honest(&registry);
    let (_dir, store, result) = try_pull(&registry, "good");
    let pulled = result.expect("pull");
    assert_eq!(pulled.config_digest, config);
    assert!(store.has_blob(&layer));
    // A second pull asks for the manifest only.
    let (_d, _s, _) = try_pull(&registry, "good");
    let reference = Reference::parse(&format!("{REGISTRY}/{REPOSITORY}:good")).expect("reference");
    let before = registry.log().len();
    support::runtime()
        .block_on(pull(
            &registry,
            &store,
            &reference,
            &PullOptions::default(),
            &ignore,
        ))
        .expect("pull again");
    assert_eq!(
        registry.log()[before..],
        [Operation::GetManifest {
            repo: repo().to_string(),
            reference: "good".into()
        }]
    );
}

#[test]
fn wrong_layer_digest() {
    let registry = MemoryRegistry::new();
    let (config, _) = honest(&registry);
    let claimed = Digest::of(b"what the manifest promises");
    registry.put_blob_raw(&repo(), claimed, &b"something else entirely!!"[..]);
    registry.put_manifest_bytes(
        &repo(),
        "lie",
        media::OCI_MANIFEST,
        manifest_json(
            (config, CONFIG.len()),
            &[(claimed, b"something else entirely!!".len())],
        ),
    );
    let (dir, store, result) = try_pull(&registry, "lie");
    let err = result.expect_err("wrong digest");
    assert_eq!(
        err.to_string(),
        format!(
            "layer {claimed}: content has digest {}",
            Digest::of(b"something else entirely!!")
        )
    );
    assert_nothing_left(&dir, &store, &[]);
}

#[test]
fn wrong_sizes() {
    let registry = MemoryRegistry::new();
    let (config, layer) = honest(&registry);
    // The descriptor says 5 bytes more than the blob has: a truncated body.
    registry.put_manifest_bytes(
        &repo(),
        "short",
        media::OCI_MANIFEST,
        manifest_json((config, CONFIG.len()), &[(layer, LAYER.len() + 5)]),
    );
    let (dir, store, result) = try_pull(&registry, "short");
    let err = result.expect_err("truncated");
    assert_eq!(
        err.to_string(),
        format!(
            "layer {layer}: expected {} bytes, received {}",
            LAYER.len() + 5,
            LAYER.len()
        )
    );
    assert_nothing_left(&dir, &store, &[]);

    // The descriptor says fewer bytes than the blob has: refused, never read past the size.
    registry.put_manifest_bytes(
        &repo(),
        "long",
        media::OCI_MANIFEST,
        manifest_json((config, CONFIG.len()), &[(layer, 3)]),
    );
    let (dir, store, result) = try_pull(&registry, "long");
    assert!(
        matches!(result, Err(RegistryError::SizeMismatch { expected: 3, .. })),
        "{result:?}"
    );
    assert_nothing_left(&dir, &store, &[]);
}

#[test]
fn malformed_and_oversized_manifests() {
    let registry = MemoryRegistry::new();
    registry.put_manifest_bytes(
        &repo(),
        "broken",
        media::OCI_MANIFEST,
        br#"{"schemaVersion": 2, "layers": [}"#.to_vec(),
    );
    let (dir, store, result) = try_pull(&registry, "broken");
    let err = result.expect_err("malformed");
    assert!(
        err.to_string().starts_with(&format!(
            "manifest {REGISTRY}/{REPOSITORY}:broken: malformed application/vnd.oci.image.manifest.v1+json: "
        )),
        "{err}"
    );
    assert_nothing_left(&dir, &store, &[]);

    let mut huge = b"{\"schemaVersion\":2,\"annotations\":{\"x\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
    huge.extend(b"\"}}");
    registry.put_manifest_bytes(&repo(), "huge", media::OCI_MANIFEST, huge);
    let (dir, store, result) = try_pull(&registry, "huge");
    let err = result.expect_err("too large");
    assert_eq!(
        err.to_string(),
        format!(
            "manifest {repo}:huge: larger than the 4194304 byte limit",
            repo = repo()
        )
    );
    assert_nothing_left(&dir, &store, &[]);
}

#[test]
fn index_without_the_platform() {
    let registry = MemoryRegistry::new();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{
            "mediaType": media::OCI_MANIFEST,
            "digest": Digest::of(b"arm").to_string(),
            "size": 3,
            "platform": {"os": "linux", "architecture": "arm64"},
        }],
    }))
    .expect("index");
    registry.put_manifest_bytes(&repo(), "arm-only", media::OCI_INDEX, index);
    let (dir, store, result) = try_pull(&registry, "arm-only");
    let err = result.expect_err("no amd64");
    assert_eq!(
        err.to_string(),
        format!(
            "{REGISTRY}/{REPOSITORY}:arm-only: no manifest for platform linux/amd64 (available: linux/arm64/v8)"
        )
    );
    assert_nothing_left(&dir, &store, &[]);
}

#[test]
fn index_entry_with_a_wrong_size() {
    let registry = MemoryRegistry::new();
    honest(&registry);
    let (_d, _s, good) = try_pull(&registry, "good");
    let good = good.expect("pull good");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [{
            "mediaType": media::OCI_MANIFEST,
            "digest": good.manifest_digest.to_string(),
            "size": 1,
            "platform": {"os": "linux", "architecture": "amd64"},
        }],
    }))
    .expect("index");
    registry.put_manifest_bytes(&repo(), "bad-index", media::OCI_INDEX, index);
    let (dir, store, result) = try_pull(&registry, "bad-index");
    assert!(
        matches!(
            result,
            Err(RegistryError::SizeMismatch {
                what: "manifest",
                expected: 1,
                ..
            })
        ),
        "{result:?}"
    );
    assert_nothing_left(&dir, &store, &[]);
}

#[test]
fn artifacts_are_not_images() {
    let registry = MemoryRegistry::new();
    let config = registry.put_blob(&repo(), &b"{}"[..]);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [],
    }))
    .expect("manifest");
    registry.put_manifest_bytes(&repo(), "chart", media::OCI_MANIFEST, manifest);
    let (dir, store, result) = try_pull(&registry, "chart");
    let err = result.expect_err("helm chart");
    assert_eq!(
        err.to_string(),
        format!(
            "manifest {REGISTRY}/{REPOSITORY}:chart: unsupported media type \"application/vnd.cncf.helm.config.v1+json\""
        )
    );
    assert_nothing_left(&dir, &store, &[]);
    assert!(
        !registry
            .log()
            .iter()
            .any(|op| matches!(op, Operation::GetBlob { .. })),
        "downloaded an artifact"
    );
}
