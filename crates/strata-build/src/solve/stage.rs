//! One stage: its base, then each instruction in order (ONBUILD triggers of the base first).
//!
//! The stage state is the image config being built (env, user, workdir, shell, ...), the layer
//! chain, the cache key of the last filesystem step and the ARGs in scope. Metadata
//! instructions only change the config and add a history entry; RUN, COPY/ADD and WORKDIR are
//! filesystem steps (see [`super::cache`] for their keys).

use super::cache::{self, StepResult};
use super::copy_step::copy_step;
use super::layer::{Layer, ReadView, WritableView};
use super::metadata::{metadata, workdir_step};
use super::run::run_step;
use super::{BaseSource, BuildError, Shared, StageOutput};
use crate::progress::Event;
use std::sync::Arc;
use std::time::Instant;
use strata_dockerfile::{ArgScope, Command, Instruction, Scope, StageSource};
use strata_image::config::history_entry;
use strata_image::{Digest, ImageConfig};

pub(super) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub(super) const OUTPUT_TAIL_LINES: usize = 20;

/// The time recorded in history and config: `SOURCE_DATE_EPOCH` when given.
pub fn now(shared: &Shared) -> chrono::DateTime<chrono::Utc> {
    match shared.options.source_date_epoch {
        Some(epoch) => chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    }
}

pub(super) struct StageState {
    pub(super) label: String,
    pub(super) config: ImageConfig,
    pub(super) layers: Vec<Layer>,
    pub(super) key: Digest,
    pub(super) args: ArgScope,
    pub(super) cmd_set: bool,
    pub(super) step: usize,
    pub(super) total: usize,
    pub(super) time: chrono::DateTime<chrono::Utc>,
}

impl StageState {
    pub(super) fn env_pairs(&self) -> Vec<(String, String)> {
        self.config
            .oci
            .config()
            .as_ref()
            .and_then(|c| c.env().clone())
            .unwrap_or_default()
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect()
    }

    pub(super) fn with_config(&mut self, f: impl FnOnce(&mut strata_image::oci::image::Config)) {
        let mut c = self.config.oci.config().clone().unwrap_or_default();
        f(&mut c);
        self.config.oci.set_config(Some(c));
    }

    pub(super) fn user(&self) -> String {
        self.config
            .oci
            .config()
            .as_ref()
            .and_then(|c| c.user().clone())
            .unwrap_or_default()
    }

    pub(super) fn workdir(&self) -> String {
        self.config
            .oci
            .config()
            .as_ref()
            .and_then(|c| c.working_dir().clone())
            .unwrap_or_else(|| "/".to_string())
    }

    pub(super) fn shell(&self) -> Vec<String> {
        self.config
            .docker
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()])
    }

    pub(super) fn set_env(&mut self, key: &str, value: &str) {
        self.with_config(|c| {
            let mut env = c.env().clone().unwrap_or_default();
            let entry = format!("{key}={value}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e) == key)
            {
                Some(existing) => *existing = entry,
                None => env.push(entry),
            }
            c.set_env(Some(env));
        });
    }

    /// History times are the time of the last filesystem step (executed now, or the time its
    /// cache record was made), so a fully cached rebuild reproduces the same image.
    pub(super) fn push_history(
        &mut self,
        shared: &Shared,
        created_by: String,
        layer: Option<&Layer>,
    ) {
        let time = match shared.options.source_date_epoch {
            Some(_) => now(shared),
            None => self.time,
        };
        let entry = history_entry(
            Some(time),
            &created_by,
            Some("buildkit.dockerfile.v0"),
            layer.is_none(),
        );
        self.config.push_layer(entry, layer.map(|l| l.diff_id));
    }

    pub(super) fn last_chain(&self) -> Option<Digest> {
        self.layers.last().map(|l| l.chain_id)
    }
}

/// Runs the stage `index` of the plan.
pub async fn run_stage(shared: &Arc<Shared>, index: usize) -> Result<StageOutput, BuildError> {
    let stage = &shared.dockerfile.stages[index];
    let planned = shared
        .plan
        .stage(index)
        .ok_or(BuildError::SnapshotMissing)?;
    // BuildKit names steps `[stage 2/5]` in multi-stage builds and `[2/5]` otherwise.
    let label = if shared.dockerfile.stages.len() == 1 {
        String::new()
    } else {
        planned
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"))
    };
    // BuildKit shows no vertex for `FROM scratch` and numbers only FROM and filesystem steps.
    let from_scratch = matches!(planned.base, StageSource::Scratch);
    let total =
        crate::progress::step_total(from_scratch, stage.commands.iter().map(|i| &i.command), 0);

    let vertex = if from_scratch {
        0
    } else {
        shared.next_vertex()
    };
    let started = Instant::now();
    let from_name =
        crate::progress::step_name(&label, 1, total, false, stage.instruction.original.trim());
    if !from_scratch {
        (shared.progress)(Event::Started {
            vertex,
            name: from_name,
        });
    }
    if let StageSource::Image(name) = &planned.base {
        super::ensure_image(shared, name).await?;
    }
    let (mut config, layers, key, time) = match super::resolve_source(shared, &planned.base)? {
        BaseSource::Scratch => (
            scratch_config(),
            Vec::new(),
            cache::base_key("scratch", ""),
            chrono::DateTime::UNIX_EPOCH,
        ),
        BaseSource::Stage(i) => {
            let out = shared.output(i).ok_or(BuildError::SnapshotMissing)?;
            (out.config.clone(), out.layers.clone(), out.key, out.time)
        }
        BaseSource::Image {
            manifest_digest,
            config,
            layers,
        } => {
            let store = shared.store.clone();
            let ensure = layers.clone();
            tokio::task::spawn_blocking(move || super::layer::ensure_snapshots(&store, &ensure))
                .await
                .map_err(|e| BuildError::Io {
                    path: "<unpack>".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            let time = config
                .oci
                .created()
                .as_deref()
                .and_then(strata_image::config::parse_time)
                .unwrap_or(chrono::DateTime::UNIX_EPOCH);
            (
                *config,
                layers,
                cache::base_key("image", &manifest_digest.to_string()),
                time,
            )
        }
    };
    if !from_scratch {
        (shared.progress)(Event::Done {
            vertex,
            elapsed: started.elapsed(),
        });
    }

    // BuildKit gives every image a PATH.
    let triggers = config.docker.on_build.take().unwrap_or_default();
    let mut state = StageState {
        label,
        config,
        layers,
        key,
        args: ArgScope::new(),
        cmd_set: false,
        step: usize::from(!from_scratch),
        total: total + triggers.len(),
        time,
    };
    if !state.env_pairs().iter().any(|(k, _)| k == "PATH") {
        state.set_env("PATH", DEFAULT_PATH);
    }

    let mut instructions: Vec<(Instruction, Option<usize>)> = Vec::new();
    if !triggers.is_empty() {
        let refs: Vec<&str> = triggers.iter().map(String::as_str).collect();
        let parsed = strata_dockerfile::parse_triggers(&refs).map_err(|e| BuildError::Expand {
            rendered: format!("ONBUILD trigger of the base image: {e}"),
        })?;
        instructions.extend(parsed.into_iter().map(|i| (i, None)));
    }
    instructions.extend(
        stage
            .commands
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, c)| (c, Some(i))),
    );

    let history_start = state.config.history().len();
    for (instruction, command_index) in &instructions {
        if crate::progress::is_numbered(&instruction.command) {
            state.step += 1;
        }
        run_instruction(shared, &mut state, instruction, *command_index, index).await?;
    }
    if let Some(history) = state.config.oci.history_mut() {
        super::history::date_leading_metadata(history, history_start);
    }
    Ok(StageOutput {
        config: state.config,
        layers: state.layers,
        key: state.key,
        time: state.time,
    })
}

pub(super) fn scratch_config() -> ImageConfig {
    let mut config = ImageConfig::default();
    config
        .oci
        .set_architecture(strata_image::oci::image::Arch::Amd64);
    config.oci.set_os(strata_image::oci::image::Os::Linux);
    config
}

pub(super) fn render(shared: &Shared, instruction: &Instruction, message: &str) -> String {
    strata_dockerfile::render_snippet(
        &shared.options.dockerfile_name,
        &shared.options.dockerfile,
        instruction.span,
        message,
    )
}

async fn run_instruction(
    shared: &Arc<Shared>,
    state: &mut StageState,
    instruction: &Instruction,
    command_index: Option<usize>,
    stage_index: usize,
) -> Result<(), BuildError> {
    let lexer = shared.dockerfile.lexer();
    let env = state.env_pairs();
    let scope = Scope {
        env: &env,
        args: state.args.values(),
    };
    let command = instruction
        .expand(&lexer, &scope)
        .map_err(|e| BuildError::Expand {
            rendered: e.render(&shared.options.dockerfile_name, &shared.options.dockerfile),
        })?;
    let name = crate::progress::step_name(
        &state.label,
        state.step,
        state.total,
        command_index.is_none(),
        instruction.original.trim(),
    );
    let result = match command {
        Command::Run(run) => {
            step(shared, state, &name, instruction, |s, st, v| {
                Box::pin(run_step(
                    s,
                    st,
                    v,
                    run,
                    instruction,
                    command_index,
                    stage_index,
                ))
            })
            .await
        }
        Command::Copy(copy) | Command::Add(copy) => {
            let is_add = matches!(instruction.command, Command::Add(_));
            step(shared, state, &name, instruction, |s, st, v| {
                Box::pin(copy_step(
                    s,
                    st,
                    v,
                    copy,
                    is_add,
                    command_index,
                    stage_index,
                ))
            })
            .await
        }
        Command::Workdir(path) => {
            step(shared, state, &name, instruction, |s, st, v| {
                Box::pin(workdir_step(s, st, v, path))
            })
            .await
        }
        other => {
            metadata(shared, state, other)?;
            Ok(())
        }
    };
    result.map_err(|e| match e {
        BuildError::RunFailed { .. } | BuildError::Step { .. } => e,
        other => BuildError::Step {
            rendered: render(shared, instruction, &other.to_string()),
            source: Box::new(other),
        },
    })
}

pub(super) type StepFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, BuildError>> + Send + 'a>>;

/// Runs a filesystem step with its progress vertex; the closure returns whether it was cached.
pub(super) async fn step<'a, F>(
    shared: &'a Arc<Shared>,
    state: &'a mut StageState,
    name: &str,
    _instruction: &Instruction,
    f: F,
) -> Result<(), BuildError>
where
    F: FnOnce(&'a Arc<Shared>, &'a mut StageState, usize) -> StepFuture<'a>,
{
    let vertex = shared.next_vertex();
    let started = Instant::now();
    (shared.progress)(Event::Started {
        vertex,
        name: name.to_string(),
    });
    match f(shared, state, vertex).await {
        Ok(cached) => {
            shared.count(cached);
            if cached {
                (shared.progress)(Event::Cached { vertex });
            }
            (shared.progress)(Event::Done {
                vertex,
                elapsed: started.elapsed(),
            });
            Ok(())
        }
        Err(e) => {
            (shared.progress)(Event::Failed {
                vertex,
                elapsed: started.elapsed(),
                message: crate::progress::failure_reason(&e.to_string()),
            });
            Err(e)
        }
    }
}

/// Records a step this build just executed in the build cache, stamped now, and dates the
/// stage by it (a later metadata step's history entry takes this time).
pub(super) fn record_executed(
    shared: &Shared,
    state: &mut StageState,
    key: &Digest,
    result: &StepResult,
) -> Result<(), BuildError> {
    let time = chrono::Utc::now();
    super::cache::record(&shared.store, key, result, time)?;
    state.time = time;
    Ok(())
}

/// Applies a step result (cached or fresh) to the stage.
pub(super) fn apply_result(
    shared: &Shared,
    state: &mut StageState,
    key: Digest,
    result: &StepResult,
    created_by: String,
) {
    state.key = key;
    match result {
        StepResult::Layer(layer) => {
            state.layers.push(layer.clone());
            state.push_history(shared, created_by, Some(layer));
        }
        StepResult::Empty => state.push_history(shared, created_by, None),
    }
}

pub(super) fn lookup(
    shared: &Shared,
    key: &Digest,
) -> Option<(StepResult, chrono::DateTime<chrono::Utc>)> {
    if shared.options.no_cache {
        return None;
    }
    cache::lookup(&shared.store, key)
}

/// Prepares a writable view, runs `work` in it, commits it (blocking parts off the runtime).
pub(super) async fn with_view<W, Fut>(
    shared: &Arc<Shared>,
    state: &StageState,
    work: W,
) -> Result<StepResult, BuildError>
where
    W: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), BuildError>>,
{
    in_view(shared, state.layers.clone(), state.last_chain(), work).await
}

/// Prepares a writable view of `layers`, runs `work` in it and commits the result on top of
/// `parent` (blocking parts off the runtime); a failed `work` discards the view.
pub(super) async fn in_view<W, Fut>(
    shared: &Arc<Shared>,
    layers: Vec<Layer>,
    parent: Option<Digest>,
    work: W,
) -> Result<StepResult, BuildError>
where
    W: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), BuildError>>,
{
    let store = shared.store.clone();
    let snapshotter = shared.snapshotter.clone();
    let view = tokio::task::spawn_blocking(move || {
        WritableView::prepare(&store, snapshotter.as_ref(), &layers)
    })
    .await
    .map_err(join_error)??;
    let root = view.root().to_path_buf();
    if let Err(e) = work(root).await {
        view.discard(shared.snapshotter.as_ref());
        return Err(e);
    }
    let store = shared.store.clone();
    let snapshotter = shared.snapshotter.clone();
    let sde = shared.options.source_date_epoch;
    let layer = tokio::task::spawn_blocking(move || {
        view.commit(&store, snapshotter.as_ref(), parent.as_ref(), sde)
    })
    .await
    .map_err(join_error)??;
    Ok(match layer {
        Some(layer) => StepResult::Layer(layer),
        None => StepResult::Empty,
    })
}

/// Prepares a read-only view of `layers` (a blocking mount, off the runtime).
pub(super) async fn read_view(shared: &Shared, layers: Vec<Layer>) -> Result<ReadView, BuildError> {
    let store = shared.store.clone();
    let snapshotter = shared.snapshotter.clone();
    let view = tokio::task::spawn_blocking(move || ReadView::prepare(&store, snapshotter, &layers))
        .await
        .map_err(join_error)??;
    Ok(view)
}

pub(super) fn join_error(e: tokio::task::JoinError) -> BuildError {
    BuildError::Io {
        path: "<blocking task>".into(),
        source: std::io::Error::other(e.to_string()),
    }
}
