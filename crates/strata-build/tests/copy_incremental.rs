//! Incremental COPY and `COPY --link`, end to end on the busybox fixture with runc and overlay
//! snapshots (needs root, runc and the fixtures).
//!
//! Incremental COPY: when a COPY from the context misses the cache only because some sources
//! changed, the unchanged files are hard-linked from the previous result's committed snapshot;
//! the layer must still be byte-identical to a full copy's and the changed files' new content
//! and metadata must be what the image shows.

mod common;

use common::{Env, cached, env, env_with};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_build::progress::Event;
use strata_build::solve::{self, BuildOutcome};
use strata_image::Digest;
use strata_runtime::CopySnapshotter;

impl Env {
    fn diff_ids(&self, outcome: &BuildOutcome) -> Vec<Digest> {
        self.config(outcome).diff_ids().unwrap()
    }

    /// The snapshot directory of the chain made of the image's first `n` layers.
    fn snapshot_dir(&self, outcome: &BuildOutcome, n: usize) -> PathBuf {
        let mut chain: Option<Digest> = None;
        for diff_id in &self.diff_ids(outcome)[..n] {
            chain = Some(strata_image::chain_id_on(chain.as_ref(), diff_id));
        }
        self.store
            .snapshot(&chain.unwrap())
            .unwrap()
            .expect("snapshot of the chain")
            .dir
    }
}

fn ino(dir: &Path, rel: &str) -> u64 {
    std::fs::symlink_metadata(dir.join(rel)).unwrap().ino()
}

/// A Dockerfile copying `tree/` onto the root, then checking from inside the image.
fn dockerfile(checks: &str) -> String {
    format!("FROM strata-fixtures/busybox:1.35\nCOPY tree/ /\nRUN {checks}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_source_relinks_the_rest_and_gives_the_full_copy_layer() {
    relinks_the_rest_and_gives_the_full_copy_layer(env()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copying_snapshotter_links_the_same_way() {
    relinks_the_rest_and_gives_the_full_copy_layer(env_with(Some(
        Arc::new(CopySnapshotter::new()),
    )))
    .await;
}

async fn relinks_the_rest_and_gives_the_full_copy_layer(env: Env) {
    env.file("tree/app/keep.txt", "unchanged\n");
    env.file("tree/app/deep/er/keep2.txt", "also unchanged\n");
    env.file("tree/app/deep/change.txt", "old\n");
    env.file("tree/app/mode.sh", "#!/bin/sh\n");
    env.file("tree/app/sibling/empty", "");
    // Source hard links stay hard links (copied, never linked from the previous result).
    env.file("tree/app/h1", "linked\n");
    std::fs::hard_link(
        env.context.join("tree/app/h1"),
        env.context.join("tree/app/deep/h2"),
    )
    .unwrap();
    let first = dockerfile("test \"$(cat /app/deep/change.txt)\" = old");
    let (one, _) = env.build_ok(env.options(&first)).await;
    let one_dir = env.snapshot_dir(&one, 2);

    // One content change and one mode change (the same bytes, a new ctime).
    env.file("tree/app/deep/change.txt", "new content\n");
    std::fs::set_permissions(
        env.context.join("tree/app/mode.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let second = dockerfile(
        "test \"$(cat /app/deep/change.txt)\" = 'new content' && test -x /app/mode.sh \
         && test \"$(cat /app/keep.txt)\" = unchanged \
         && test \"$(cat /app/deep/er/keep2.txt)\" = 'also unchanged' && test -f /app/sibling/empty \
         && test /app/h1 -ef /app/deep/h2",
    );
    let (two, events) = env.build_ok(env.options(&second)).await;
    assert_eq!(cached(&events), 0, "the COPY key changed with the content");
    let two_dir = env.snapshot_dir(&two, 2);
    assert_ne!(one_dir, two_dir);
    assert_eq!(ino(&two_dir, "app/h1"), ino(&two_dir, "app/deep/h2"));

    // Unchanged files were linked from the previous snapshot, not copied.
    for rel in ["app/keep.txt", "app/deep/er/keep2.txt", "app/sibling/empty"] {
        assert_eq!(ino(&one_dir, rel), ino(&two_dir, rel), "{rel} is shared");
    }
    // Changed ones (content, or only the mode) were copied.
    for rel in ["app/deep/change.txt", "app/mode.sh", "app/h1"] {
        assert_ne!(
            ino(&one_dir, rel),
            ino(&two_dir, rel),
            "{rel} is a new copy"
        );
    }
    // The previous snapshot is untouched.
    assert_eq!(
        std::fs::read_to_string(one_dir.join("app/deep/change.txt")).unwrap(),
        "old\n"
    );
    let mode = std::fs::metadata(one_dir.join("app/mode.sh"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o644);

    // The same content built from scratch gives a byte-identical COPY layer.
    let mut fresh = env.options(&second);
    fresh.no_cache = true;
    let (three, _) = env.build_ok(fresh).await;
    assert_eq!(env.diff_ids(&three)[1], env.diff_ids(&two)[1]);
    assert_ne!(env.diff_ids(&one)[1], env.diff_ids(&two)[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverting_a_change_is_a_cache_hit_and_a_removed_file_is_gone() {
    let env = env();
    env.file("tree/app/a.txt", "a\n");
    env.file("tree/app/sub/b.txt", "b\n");
    env.file("tree/app/sub/gone.txt", "gone\n");
    let check = dockerfile("test \"$(cat /app/a.txt)\" = a");
    let (one, _) = env.build_ok(env.options(&check)).await;

    std::fs::remove_file(env.context.join("tree/app/sub/gone.txt")).unwrap();
    let (two, _) = env
        .build_ok(env.options(&dockerfile(
            "test ! -e /app/sub/gone.txt && test \"$(cat /app/sub/b.txt)\" = b",
        )))
        .await;
    let two_dir = env.snapshot_dir(&two, 2);
    assert!(!two_dir.join("app/sub/gone.txt").exists());
    assert_eq!(
        ino(&env.snapshot_dir(&one, 2), "app/sub/b.txt"),
        ino(&two_dir, "app/sub/b.txt")
    );

    // Back to the first content: the first result's key, so the cache answers.
    env.file("tree/app/sub/gone.txt", "gone\n");
    let (three, events) = env.build_ok(env.options(&check)).await;
    assert!(cached(&events) >= 1);
    assert_eq!(three.config_digest, one.config_digest);
}

/// Whether the step whose display name contains `needle` was answered from the cache.
fn step_cached(events: &[Event], needle: &str) -> bool {
    let vertices: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { vertex, name } if name.contains(needle) => Some(*vertex),
            _ => None,
        })
        .collect();
    assert!(!vertices.is_empty(), "no step named like {needle:?}");
    vertices.iter().all(|v| {
        events
            .iter()
            .any(|e| matches!(e, Event::Cached { vertex } if vertex == v))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_layer_does_not_depend_on_the_layers_below() {
    let env = env();
    env.file("app/f", "hello\n");
    env.file("app/sub/g", "g\n");
    let dockerfile = |earlier: &str| {
        format!(
            "FROM strata-fixtures/busybox:1.35\nRUN {earlier}\nCOPY --link app/ /srv/app/\n\
             RUN test \"$(cat /srv/app/f)\" = hello && test \"$(cat /srv/app/sub/g)\" = g\n"
        )
    };
    let (one, _) = env
        .build_ok(env.options(&dockerfile("echo one > /one")))
        .await;
    let one_ids = env.diff_ids(&one);

    // A different layer below: the --link step is answered from the cache, its layer (the
    // same diff) rebased onto the new chain; the steps after it run again.
    let (two, events) = env
        .build_ok(env.options(&dockerfile("echo two > /two && test ! -e /one")))
        .await;
    assert!(step_cached(&events, "COPY --link app/"));
    assert!(!step_cached(&events, "RUN test"));
    let two_ids = env.diff_ids(&two);
    assert_ne!(one_ids[1], two_ids[1], "the earlier step changed");
    assert_eq!(one_ids[2], two_ids[2], "the --link layer is the same diff");
    // The layer is the copy alone: built on nothing, with fresh 0755 parents.
    let link_dir = env.snapshot_dir(&two, 3);
    let names: Vec<String> = std::fs::read_dir(&link_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["srv"]);
    let srv = std::fs::metadata(link_dir.join("srv")).unwrap();
    assert_eq!(srv.mode() & 0o7777, 0o755);
    // The rebased snapshot shares its files with the diff's own snapshot (built on nothing,
    // so its chain id is the diff_id).
    let own = env.store.snapshot(&two_ids[2]).unwrap().unwrap().dir;
    assert_ne!(own, link_dir);
    assert_eq!(ino(&own, "srv/app/sub/g"), ino(&link_dir, "srv/app/sub/g"));
    let own_srv = std::fs::metadata(own.join("srv/app")).unwrap();
    let rebased_srv = std::fs::metadata(link_dir.join("srv/app")).unwrap();
    assert_eq!(
        (
            own_srv.mode(),
            own_srv.uid(),
            own_srv.mtime_nsec(),
            own_srv.mtime()
        ),
        (
            rebased_srv.mode(),
            rebased_srv.uid(),
            rebased_srv.mtime_nsec(),
            rebased_srv.mtime()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_copy_does_not_follow_a_symlink_of_the_parent_and_takes_numeric_owners() {
    let env = env();
    env.file("app/f", "hello\n");
    let dockerfile = "FROM strata-fixtures/busybox:1.35\n\
         RUN mkdir -p /elsewhere /srv && ln -s /elsewhere /srv/app\n\
         COPY --link --chown=1000:root app/ /srv/app/\n\
         RUN test -d /srv/app && test ! -L /srv/app && test \"$(cat /srv/app/f)\" = hello \
             && test ! -e /elsewhere/f && test \"$(stat -c %u:%g /srv/app/f)\" = 1000:0\n";
    env.build_ok(env.options(dockerfile)).await;

    // Names cannot be looked up without the parent layers: refused, as BuildKit does.
    let named = "FROM strata-fixtures/busybox:1.35\nCOPY --link --chown=nobody app/ /srv/app/\n";
    let result = solve::build(
        env.store.clone(),
        env.executor.clone(),
        env.snapshotter.clone(),
        env.options(named),
        Arc::new(|_| {}),
    )
    .await;
    let message = match result {
        Ok(_) => panic!("--link --chown=nobody must fail"),
        Err(e) => e.to_string(),
    };
    assert!(message.contains("--chown=nobody"), "{message}");
    assert!(message.contains("numeric"), "{message}");
}
