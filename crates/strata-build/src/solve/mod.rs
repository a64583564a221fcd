//! The solver: runs a planned Dockerfile against the store and produces an image.
//!
//! [`build`] parses and plans the Dockerfile (pure, strata-dockerfile), scans the context
//! once, then runs the planned stages group by group: the stages of one plan group depend only
//! on earlier groups and run concurrently (at most `jobs` at a time). Each stage walks its
//! instructions ([`stage`]): metadata instructions update the image config and history;
//! RUN, COPY, ADD and WORKDIR are filesystem steps with a content-based cache key
//! ([`cache`]) that either reuse a recorded layer (`CACHED`, nothing copied or run) or execute
//! on an overlay view of the parent layers and commit the upper directory as the new layer
//! ([`layer`]). The target stage's config, layers and a manifest are then written to the store
//! and tagged.

pub mod cache;
mod copy_step;
pub mod export;
pub mod history;
pub mod layer;
mod metadata;
mod mounts;
mod run;
pub mod stage;

use crate::context::{BuildContext, ContextError};
use crate::copy::CopyError;
use crate::ignore::{IgnoreError, PatternMatcher};
use crate::progress::{Event, ProgressSink};
use layer::Layer;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use strata_dockerfile::{BuildArgs, Dockerfile, Plan, StageSource};
use strata_image::{Digest, ImageConfig};
use strata_runtime::{Executor, Network, Snapshotter};
use strata_store::Store;
use thiserror::Error;

/// A secret for `RUN --mount=type=secret`.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The id the Dockerfile names.
    pub id: String,
    /// The secret's bytes (read by the caller from a file or an environment variable).
    pub value: Vec<u8>,
}

/// Fetches base images the store does not have (or all of them with `--pull`): the registry
/// client, implemented by the binary so this crate stays free of HTTP and TLS.
pub trait ImageFetcher: Send + Sync + std::fmt::Debug {
    /// Pulls `reference` (as written in the Dockerfile) into the store and tags it there.
    fn fetch<'a>(&'a self, reference: &'a str) -> FetchFuture<'a>;
}

/// The future [`ImageFetcher::fetch`] returns.
pub type FetchFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

/// What to build and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The Dockerfile's name for messages (`Dockerfile`, `build/app.Dockerfile`).
    pub dockerfile_name: String,
    /// The Dockerfile's path on disk, if it has one (for `<Dockerfile>.dockerignore`).
    pub dockerfile_path: Option<PathBuf>,
    /// `--build-arg` values.
    pub build_args: BuildArgs,
    /// `--target`.
    pub target: Option<String>,
    /// `--tag` values (full references, already normalized by the caller).
    pub tags: Vec<String>,
    /// `--label` values.
    pub labels: Vec<(String, String)>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--network` for RUN steps without `--network`.
    pub network: Network,
    /// `--jobs`: stages built at the same time.
    pub jobs: usize,
    /// `SOURCE_DATE_EPOCH`: clamps layer mtimes and sets history and config times.
    pub source_date_epoch: Option<i64>,
    /// `--secret` values.
    pub secrets: Vec<Secret>,
    /// Where the context's stat cache lives (`None`: no persistence).
    pub stat_cache: Option<PathBuf>,
    /// `--pull`: fetch every base image even if the store has it.
    pub pull: bool,
    /// How to fetch missing base images; `None` means they must already be in the store.
    pub fetcher: Option<Arc<dyn ImageFetcher>>,
}

impl BuildOptions {
    /// Options for building `dockerfile` (text) with `context_dir`, everything else default.
    pub fn new(context_dir: impl Into<PathBuf>, dockerfile: impl Into<String>) -> Self {
        Self {
            context_dir: context_dir.into(),
            dockerfile: dockerfile.into(),
            dockerfile_name: "Dockerfile".into(),
            dockerfile_path: None,
            build_args: BuildArgs::new(),
            target: None,
            tags: Vec::new(),
            labels: Vec::new(),
            no_cache: false,
            network: Network::Host,
            jobs: 2,
            source_date_epoch: None,
            secrets: Vec::new(),
            stat_cache: None,
            pull: false,
            fetcher: None,
        }
    }
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image id (config digest).
    pub config_digest: Digest,
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// The manifest descriptor (media type, digest, size).
    pub manifest: strata_image::oci::image::Descriptor,
    /// The tags applied.
    pub tags: Vec<String>,
    /// Steps answered from the cache.
    pub cached_steps: usize,
    /// Steps executed.
    pub executed_steps: usize,
}

/// Why a build failed.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The Dockerfile does not parse (BuildKit's snippet, rendered).
    #[error("{rendered}")]
    Parse {
        /// The snippet and message.
        rendered: String,
    },
    /// The Dockerfile cannot be planned (rendered).
    #[error("{rendered}")]
    Plan {
        /// The snippet and message.
        rendered: String,
    },
    /// A word could not be expanded.
    #[error("{rendered}")]
    Expand {
        /// The snippet and message.
        rendered: String,
    },
    /// `.dockerignore` is invalid.
    #[error("invalid .dockerignore: {0}")]
    Ignore(#[from] IgnoreError),
    /// The context could not be read.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A base image is not in the store.
    #[error("image {name} not found\nhint: strata load or strata pull it first")]
    BaseImageNotFound {
        /// The reference as written.
        name: String,
    },
    /// Fetching a base image failed.
    #[error("failed to pull {name}: {source}")]
    Pull {
        /// The reference as written.
        name: String,
        /// The registry client's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A `--from` names a stage that is not part of this build.
    #[error("{step}: stage {name:?} is not built by this plan")]
    StageNotBuilt {
        /// The step.
        step: String,
        /// The stage.
        name: String,
    },
    /// A RUN step exited non-zero.
    #[error("{rendered}")]
    RunFailed {
        /// The exit code.
        exit_code: i32,
        /// The Dockerfile snippet, the message and the tail of the output.
        rendered: String,
    },
    /// A step failed for another reason; `rendered` has the snippet.
    #[error("{rendered}")]
    Step {
        /// Snippet and message.
        rendered: String,
        /// The underlying error.
        #[source]
        source: Box<BuildError>,
    },
    /// COPY/ADD failed.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] strata_store::StoreError),
    /// A snapshot view failed.
    #[error(transparent)]
    Snapshot(#[from] strata_runtime::SnapshotError),
    /// Running a process failed (not its exit code).
    #[error(transparent)]
    Exec(#[from] strata_runtime::ExecError),
    /// USER could not be resolved.
    #[error(transparent)]
    User(#[from] strata_runtime::UserError),
    /// A layer could not be written.
    #[error(transparent)]
    LayerWrite(#[from] strata_layer::WriteError),
    /// A base layer could not be unpacked.
    #[error("unpack layer {layer}: {source}")]
    Unpack {
        /// The layer blob.
        layer: Digest,
        /// The failure.
        source: strata_layer::ApplyError,
    },
    /// A snapshot vanished while in use.
    #[error("a snapshot of the build disappeared (concurrent prune?)")]
    SnapshotMissing,
    /// An image config could not be read.
    #[error(transparent)]
    Config(#[from] strata_image::config::ConfigError),
    /// A filesystem operation of the engine failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A RUN mount is not supported (yet).
    #[error("RUN --mount={raw}: {reason}")]
    Mount {
        /// The mount as written.
        raw: String,
        /// Why.
        reason: String,
    },
    /// A secret the Dockerfile requires was not given.
    #[error("secret {id} not found\nhint: pass --secret id={id},src=FILE")]
    SecretNotFound {
        /// The secret id.
        id: String,
    },
}

/// What a finished stage hands to the stages that use it.
#[derive(Debug, Clone)]
pub struct StageOutput {
    /// The stage's image config.
    pub config: ImageConfig,
    /// Its layers, bottom first.
    pub layers: Vec<Layer>,
    /// The cache key of its last filesystem step (or base).
    pub key: Digest,
    /// When its last filesystem step was made (history and config times derive from it).
    pub time: chrono::DateTime<chrono::Utc>,
}

/// Everything the stages of one build share.
pub struct Shared {
    /// The store.
    pub store: Arc<Store>,
    /// Runs RUN steps.
    pub executor: Arc<dyn Executor>,
    /// Mounts layer views.
    pub snapshotter: Arc<dyn Snapshotter>,
    /// The scanned context.
    pub context: Arc<BuildContext>,
    /// The parsed Dockerfile.
    pub dockerfile: Dockerfile,
    /// The plan.
    pub plan: Plan,
    /// The options.
    pub options: BuildOptions,
    /// Progress events.
    pub progress: ProgressSink,
    vertex: AtomicUsize,
    outputs: std::sync::Mutex<HashMap<usize, Arc<StageOutput>>>,
    cached: AtomicUsize,
    executed: AtomicUsize,
    fetched: tokio::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("context", &self.options.context_dir)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// A new vertex number.
    pub fn next_vertex(&self) -> usize {
        self.vertex.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The output of a finished stage.
    pub fn output(&self, stage: usize) -> Option<Arc<StageOutput>> {
        self.outputs.lock().ok()?.get(&stage).cloned()
    }

    pub(crate) fn count(&self, cached: bool) {
        if cached {
            self.cached.fetch_add(1, Ordering::Relaxed);
        } else {
            self.executed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs a build.
pub async fn build(
    store: Arc<Store>,
    executor: Arc<dyn Executor>,
    snapshotter: Arc<dyn Snapshotter>,
    options: BuildOptions,
    progress: ProgressSink,
) -> Result<BuildOutcome, BuildError> {
    let name = options.dockerfile_name.clone();
    let dockerfile =
        strata_dockerfile::parse(&options.dockerfile).map_err(|e| BuildError::Parse {
            rendered: e.render(&name, &options.dockerfile),
        })?;
    let plan = strata_dockerfile::plan(&dockerfile, &options.build_args, options.target.as_deref())
        .map_err(|e| BuildError::Plan {
            rendered: e.render(&name, &options.dockerfile),
        })?;

    let vertex0 = AtomicUsize::new(0);
    let ctx_vertex = vertex0.fetch_add(1, Ordering::Relaxed) + 1;
    progress(Event::Started {
        vertex: ctx_vertex,
        name: "[internal] load build context".into(),
    });
    let started = Instant::now();
    let patterns = crate::ignore::load_ignore_patterns(
        &options.context_dir,
        options.dockerfile_path.as_deref(),
    )?
    .map(|(_, p)| p)
    .unwrap_or_default();
    let ignore = PatternMatcher::new(&patterns)?;
    let context = BuildContext::scan(&options.context_dir, &ignore, options.stat_cache.as_deref())?;
    tracing::debug!(
        entries = context.len(),
        files_known = context.stats().cache_hits,
        elapsed_us = started.elapsed().as_micros() as u64,
        "build context scanned"
    );
    progress(Event::Done {
        vertex: ctx_vertex,
        elapsed: started.elapsed(),
    });

    let shared = Arc::new(Shared {
        store,
        executor,
        snapshotter,
        context: Arc::new(context),
        dockerfile,
        plan,
        options,
        progress,
        vertex: vertex0,
        outputs: std::sync::Mutex::new(HashMap::new()),
        cached: AtomicUsize::new(0),
        executed: AtomicUsize::new(0),
        fetched: tokio::sync::Mutex::new(std::collections::HashSet::new()),
    });

    let jobs = Arc::new(tokio::sync::Semaphore::new(shared.options.jobs.max(1)));
    for group in shared.plan.groups.clone() {
        let mut tasks = tokio::task::JoinSet::new();
        for stage_index in group {
            let shared = shared.clone();
            let jobs = jobs.clone();
            tasks.spawn(async move {
                let _permit = jobs.acquire_owned().await;
                let output = stage::run_stage(&shared, stage_index).await?;
                if let Ok(mut outputs) = shared.outputs.lock() {
                    outputs.insert(stage_index, Arc::new(output));
                }
                Ok::<(), BuildError>(())
            });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                        tasks.abort_all();
                    }
                }
                Err(join) if join.is_cancelled() => {}
                Err(join) => {
                    if first_error.is_none() {
                        first_error = Some(BuildError::Io {
                            path: PathBuf::from("<stage task>"),
                            source: std::io::Error::other(join.to_string()),
                        });
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    let _ = shared.context.save_stat_cache();

    let target = shared.plan.target;
    let output = shared.output(target).ok_or(BuildError::SnapshotMissing)?;
    let outcome = commit_image(&shared, &output)?;
    Ok(outcome)
}

/// Writes the final config and manifest and applies the tags.
fn commit_image(shared: &Shared, output: &StageOutput) -> Result<BuildOutcome, BuildError> {
    let store = &shared.store;
    let mut config = output.config.clone();
    if !shared.options.labels.is_empty() {
        let mut c = config.oci.config().clone().unwrap_or_default();
        let mut labels = c.labels().clone().unwrap_or_default();
        for (k, v) in &shared.options.labels {
            labels.insert(k.clone(), v.clone());
        }
        c.set_labels(Some(labels));
        config.oci.set_config(Some(c));
    }
    // The time of the last filesystem step (cached steps keep their record's time), so a
    // fully cached rebuild reproduces the same image id.
    let created = match shared.options.source_date_epoch {
        Some(_) => stage::now(shared),
        None => output.time,
    };
    config
        .oci
        .set_created(Some(strata_image::config::format_time(created)));
    let layers = output
        .layers
        .iter()
        .map(|l| strata_image::manifest::descriptor(&l.media_type, l.blob, l.blob_size))
        .collect();
    let image = store.put_image(&config.to_vec(), layers, &shared.options.tags)?;
    Ok(BuildOutcome {
        config_digest: image.config_digest,
        manifest_digest: image.manifest_digest,
        manifest: image.manifest,
        tags: shared.options.tags.clone(),
        cached_steps: shared.cached.load(Ordering::Relaxed),
        executed_steps: shared.executed.load(Ordering::Relaxed),
    })
}

/// Makes sure the image `name` is in the store, fetching it when missing (or always, once per
/// build, with `--pull`).
pub(crate) async fn ensure_image(shared: &Shared, name: &str) -> Result<(), BuildError> {
    let Some(fetcher) = shared.options.fetcher.clone() else {
        return Ok(());
    };
    let mut fetched = shared.fetched.lock().await;
    if fetched.contains(name) {
        return Ok(());
    }
    let present = shared.store.resolve(name).is_ok();
    if present && !shared.options.pull {
        return Ok(());
    }
    let vertex = shared.next_vertex();
    let started = Instant::now();
    (shared.progress)(Event::Started {
        vertex,
        name: format!("[internal] load metadata for {name}"),
    });
    match fetcher.fetch(name).await {
        Ok(()) => {
            (shared.progress)(Event::Done {
                vertex,
                elapsed: started.elapsed(),
            });
            fetched.insert(name.to_string());
            Ok(())
        }
        Err(source) => {
            (shared.progress)(Event::Failed {
                vertex,
                elapsed: started.elapsed(),
                message: source.to_string(),
            });
            Err(BuildError::Pull {
                name: name.to_string(),
                source,
            })
        }
    }
}

/// The base of a stage, resolved.
pub(crate) fn resolve_source(
    shared: &Shared,
    source: &StageSource,
) -> Result<BaseSource, BuildError> {
    match source {
        StageSource::Scratch => Ok(BaseSource::Scratch),
        StageSource::Stage(i) => Ok(BaseSource::Stage(*i)),
        StageSource::Image(name) => {
            let image = match shared.store.resolve(name) {
                Ok(image) => image,
                Err(strata_store::StoreError::ImageNotFound(_))
                | Err(strata_store::StoreError::InvalidReference { .. }) => {
                    return Err(BuildError::BaseImageNotFound { name: name.clone() });
                }
                Err(e) => return Err(e.into()),
            };
            let config = ImageConfig::from_slice(&image.config_bytes)?;
            let diff_ids = config.diff_ids()?;
            let mut layers = Vec::new();
            let mut parent: Option<Digest> = None;
            for (desc, diff_id) in image.manifest.layers().iter().zip(diff_ids) {
                let blob =
                    Digest::try_from(desc.digest()).map_err(|_| BuildError::SnapshotMissing)?;
                let chain = layer::chain_id(parent.as_ref(), &diff_id);
                layers.push(Layer {
                    diff_id,
                    chain_id: chain,
                    blob,
                    blob_size: desc.size(),
                    media_type: desc.media_type().to_string(),
                });
                parent = Some(chain);
            }
            Ok(BaseSource::Image {
                manifest_digest: image.manifest_digest,
                config: Box::new(config),
                layers,
            })
        }
    }
}

/// A resolved FROM or `--from`.
#[derive(Debug, Clone)]
pub(crate) enum BaseSource {
    Scratch,
    Stage(usize),
    Image {
        manifest_digest: Digest,
        config: Box<ImageConfig>,
        layers: Vec<Layer>,
    },
}
