//! The engine harness the integration tests share: a temporary store holding the busybox
//! fixture (tagged as the archive names it), a runc executor, a snapshotter (overlay unless a
//! test asks for another) and an empty build context, all under one temporary directory that
//! is removed when the [`Env`] is dropped. Each test file uses what it needs of it, so the
//! rest is dead code there.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use strata_build::progress::{Event, ProgressSink};
use strata_build::solve::{self, BuildError, BuildOptions, BuildOutcome};
use strata_image::ImageConfig;
use strata_image::archive::LoadedImage;
use strata_runtime::{Executor, OverlaySnapshotter, RuncExecutor, RuntimeKind, Snapshotter};
use strata_store::Store;

/// The fixtures directory: `STRATA_FIXTURES`, or where the fixture scripts put them.
pub fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("STRATA_FIXTURES").unwrap_or_else(|_| "/var/cache/strata-fixtures".into()),
    )
}

/// The first line of a Dockerfile on the busybox fixture.
pub const BASE: &str = "FROM strata-fixtures/busybox:1.35\n";

/// Reads the busybox fixture's docker-archive into `store` (blobs and images, no tags).
pub fn load_busybox(store: &Store) -> Vec<LoadedImage> {
    let archive = fixtures().join("docker-archive/busybox_1.35.tar");
    let mut sink = store.sink();
    strata_image::archive::read_archive(std::fs::File::open(&archive).unwrap(), &mut sink).unwrap()
}

pub struct Env {
    /// The temporary directory holding everything below (`store`, `state`, `context`).
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub executor: Arc<dyn Executor>,
    pub snapshotter: Arc<dyn Snapshotter>,
    pub context: PathBuf,
}

/// An environment whose steps run on overlay snapshots.
pub fn env() -> Env {
    env_with(None)
}

/// An environment whose steps run on `snapshotter` (overlay when `None`).
pub fn env_with(snapshotter: Option<Arc<dyn Snapshotter>>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    for image in &load_busybox(&store) {
        let stored = store.image(&image.manifest_digest).unwrap();
        for r in &image.refs {
            store
                .tag(&r.to_string(), stored.descriptor.clone())
                .unwrap();
        }
    }
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let executor = Arc::new(RuncExecutor::new(RuntimeKind::Runc, &state.join("runc")).unwrap());
    let snapshotter = snapshotter
        .unwrap_or_else(|| Arc::new(OverlaySnapshotter::new(&state.join("overlay")).unwrap()));
    let context = dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    Env {
        dir,
        store: Arc::new(store),
        executor,
        snapshotter,
        context,
    }
}

impl Env {
    /// Writes `content` to the context file `rel`, creating its parent directories.
    pub fn file(&self, rel: &str, content: &str) {
        let p = self.context.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Options building `dockerfile` on the context, with a stat cache in the store.
    pub fn options(&self, dockerfile: &str) -> BuildOptions {
        let mut o = BuildOptions::new(&self.context, dockerfile);
        o.stat_cache = Some(self.store.root().join("statcache-test"));
        o
    }

    /// Builds with `options`: the result and every progress event.
    pub async fn build(
        &self,
        options: BuildOptions,
    ) -> (Result<BuildOutcome, BuildError>, Vec<Event>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink_events = events.clone();
        let sink: ProgressSink = Arc::new(move |e| sink_events.lock().unwrap().push(e));
        let result = solve::build(
            self.store.clone(),
            self.executor.clone(),
            self.snapshotter.clone(),
            options,
            sink,
        )
        .await;
        let events = events.lock().unwrap().clone();
        (result, events)
    }

    /// Builds with `options`, panicking with the build's error and output on failure.
    pub async fn build_ok(&self, options: BuildOptions) -> (BuildOutcome, Vec<Event>) {
        let (result, events) = self.build(options).await;
        match result {
            Ok(outcome) => (outcome, events),
            Err(e) => panic!("build failed: {e}\nlogs: {:?}", logs(&events)),
        }
    }

    /// Builds `dockerfile` with the build `args`, panicking on failure; the build's events.
    pub async fn build_args_ok(&self, dockerfile: &str, args: &[(&str, &str)]) -> Vec<Event> {
        let mut options = self.options(dockerfile);
        for (k, v) in args {
            options.build_args.set(*k, *v);
        }
        self.build_ok(options).await.1
    }

    /// The image config of a build's result.
    pub fn config(&self, outcome: &BuildOutcome) -> ImageConfig {
        ImageConfig::from_slice(&self.store.read_blob(&outcome.config_digest).unwrap()).unwrap()
    }
}

/// How many steps a build found in the cache.
pub fn cached(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Cached { .. }))
        .count()
}

/// The output lines of a build's steps.
pub fn logs(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Log { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}
