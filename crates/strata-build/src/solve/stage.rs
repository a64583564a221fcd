//! One stage: its base, then each instruction in order (ONBUILD triggers of the base first).
//!
//! The stage state is the image config being built (env, user, workdir, shell, ...), the layer
//! chain, the cache key of the last filesystem step and the ARGs in scope. Metadata
//! instructions only change the config and add a history entry; RUN, COPY/ADD and WORKDIR are
//! filesystem steps (see [`super::cache`] for their keys).

use super::cache::{self, KeyBuilder, StepResult};
use super::history;
use super::layer::{Layer, ReadView, WritableView};
use super::{BaseSource, BuildError, Shared, StageOutput};
use crate::copy::{self, CopySpec, SelectOptions};
use crate::progress::{Event, Stream};
use crate::source::{DirTree, SourceTree};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use strata_dockerfile::{
    ArgScope, Command, CommandLine, CopyCommand, CopySource, Healthcheck, Instruction, MountType,
    NetworkMode, RunCommand, RunProgram, Scope, StageSource,
};
use strata_image::config::history_entry;
use strata_image::{Digest, ImageConfig};
use strata_runtime::{Mount, MountKind, Network, ProcessSpec, Stdio};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const OUTPUT_TAIL_LINES: usize = 20;

/// The time recorded in history and config: `SOURCE_DATE_EPOCH` when given.
pub fn now(shared: &Shared) -> chrono::DateTime<chrono::Utc> {
    match shared.options.source_date_epoch {
        Some(epoch) => chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default(),
        None => chrono::Utc::now(),
    }
}

struct StageState {
    label: String,
    config: ImageConfig,
    layers: Vec<Layer>,
    key: Digest,
    args: ArgScope,
    cmd_set: bool,
    step: usize,
    total: usize,
    time: chrono::DateTime<chrono::Utc>,
}

impl StageState {
    fn env_pairs(&self) -> Vec<(String, String)> {
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

    fn with_config(&mut self, f: impl FnOnce(&mut strata_image::oci::image::Config)) {
        let mut c = self.config.oci.config().clone().unwrap_or_default();
        f(&mut c);
        self.config.oci.set_config(Some(c));
    }

    fn user(&self) -> String {
        self.config
            .oci
            .config()
            .as_ref()
            .and_then(|c| c.user().clone())
            .unwrap_or_default()
    }

    fn workdir(&self) -> String {
        self.config
            .oci
            .config()
            .as_ref()
            .and_then(|c| c.working_dir().clone())
            .unwrap_or_else(|| "/".to_string())
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .docker
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()])
    }

    fn set_env(&mut self, key: &str, value: &str) {
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
    fn push_history(&mut self, shared: &Shared, created_by: String, layer: Option<&Layer>) {
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

    fn last_chain(&self) -> Option<Digest> {
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
    let total = stage.commands.len() + 1;

    let vertex = shared.next_vertex();
    let started = Instant::now();
    let from_name = format!(
        "[{}1/{total}] {}",
        prefix(&label),
        stage.instruction.original.trim()
    );
    (shared.progress)(Event::Started {
        vertex,
        name: from_name,
    });
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
    (shared.progress)(Event::Done {
        vertex,
        elapsed: started.elapsed(),
    });

    // BuildKit gives every image a PATH.
    let triggers = config.docker.on_build.take().unwrap_or_default();
    let mut state = StageState {
        label,
        config,
        layers,
        key,
        args: ArgScope::new(),
        cmd_set: false,
        step: 1,
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

    for (instruction, command_index) in &instructions {
        state.step += 1;
        run_instruction(shared, &mut state, instruction, *command_index, index).await?;
    }
    Ok(StageOutput {
        config: state.config,
        layers: state.layers,
        key: state.key,
        time: state.time,
    })
}

fn prefix(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!("{label} ")
    }
}

fn scratch_config() -> ImageConfig {
    let mut config = ImageConfig::default();
    config
        .oci
        .set_architecture(strata_image::oci::image::Arch::Amd64);
    config.oci.set_os(strata_image::oci::image::Os::Linux);
    config
}

fn render(shared: &Shared, instruction: &Instruction, message: &str) -> String {
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
    let name = format!(
        "[{}{}/{}] {}",
        prefix(&state.label),
        state.step,
        state.total,
        instruction.original.trim()
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

type StepFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, BuildError>> + Send + 'a>>;

/// Runs a filesystem step with its progress vertex; the closure returns whether it was cached.
async fn step<'a, F>(
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
                message: first_line(&e.to_string()),
            });
            Err(e)
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// Applies a step result (cached or fresh) to the stage.
fn apply_result(
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

fn lookup(shared: &Shared, key: &Digest) -> Option<(StepResult, chrono::DateTime<chrono::Utc>)> {
    if shared.options.no_cache {
        return None;
    }
    cache::lookup(&shared.store, key)
}

/// Prepares a writable view, runs `work` in it, commits it (blocking parts off the runtime).
async fn with_view<W, Fut>(
    shared: &Arc<Shared>,
    state: &StageState,
    work: W,
) -> Result<StepResult, BuildError>
where
    W: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), BuildError>>,
{
    let store = shared.store.clone();
    let snapshotter = shared.snapshotter.clone();
    let layers = state.layers.clone();
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
    let parent = state.last_chain();
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

fn join_error(e: tokio::task::JoinError) -> BuildError {
    BuildError::Io {
        path: "<blocking task>".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn run_env(shared: &Shared, state: &StageState) -> Vec<String> {
    let env = state.env_pairs();
    let mut out: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (k, v) in state.args.values() {
        if !env.iter().any(|(ek, _)| ek == k) {
            out.push(format!("{k}={v}"));
        }
    }
    for (k, v) in shared.options.build_args.proxy_env() {
        if !out
            .iter()
            .any(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()))
        {
            out.push(format!("{k}={v}"));
        }
    }
    out
}

/// The ARGs in scope as RUN's history shows them (ENV wins over ARG).
fn history_args(state: &StageState) -> Vec<(String, String)> {
    let env = state.env_pairs();
    state
        .args
        .values()
        .iter()
        .map(|(k, v)| {
            let value = env
                .iter()
                .rev()
                .find(|(ek, _)| ek == k)
                .map(|(_, ev)| ev.clone())
                .unwrap_or_else(|| v.clone());
            (k.clone(), value)
        })
        .collect()
}

fn run_step<'a>(
    shared: &'a Arc<Shared>,
    state: &'a mut StageState,
    vertex: usize,
    run: RunCommand,
    instruction: &'a Instruction,
    command_index: Option<usize>,
    stage_index: usize,
) -> StepFuture<'a> {
    Box::pin(async move {
        let mut script: Option<(String, String)> = None;
        let argv: Vec<String> = match run.program() {
            RunProgram::Exec(args) => args,
            RunProgram::Shell(text) => {
                let mut a = state.shell();
                a.push(text);
                a
            }
            RunProgram::Script { name, content } => {
                let path = format!("/dev/pipes/{name}");
                script = Some((name, content));
                vec![path]
            }
        };
        let env = run_env(shared, state);
        let user = state.user();
        let cwd = state.workdir();
        let network = match run.network {
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => Network::Host,
            Some(NetworkMode::Default) | None => shared.options.network,
        };
        let mounts: Vec<strata_dockerfile::Mount> =
            run.mounts.iter().filter_map(|m| m.mount.clone()).collect();
        let mount_keys: Vec<String> = run
            .mounts
            .iter()
            .filter(|m| {
                m.mount
                    .as_ref()
                    .is_none_or(|mm| mm.kind != MountType::Secret)
            })
            .map(|m| m.raw.clone())
            .collect();
        let mut key = KeyBuilder::new("run", &state.key)
            .list("argv", &argv)
            .list("env", &env)
            .field("cwd", &cwd)
            .field("user", &user)
            .field(
                "network",
                if network == Network::None {
                    "none"
                } else {
                    "host"
                },
            )
            .list("mounts", &mount_keys);
        if let Some((name, content)) = &script {
            key = key.field("script", &format!("{name}\0{content}"));
        }
        // What a bind mount shows is part of the key: the content checksum of a context source,
        // the key of a stage or image source.
        let mut bind_layers: Vec<Option<Vec<Layer>>> = vec![None; mounts.len()];
        let mut bind_keys = Vec::new();
        for (i, mount) in mounts.iter().enumerate() {
            if mount.kind != MountType::Bind {
                continue;
            }
            let source = mount.source.clone().unwrap_or_default();
            match &mount.from {
                None => {
                    let spec = CopySpec {
                        sources: vec![source],
                        dest: "/".into(),
                        workdir: "/".into(),
                        ..Default::default()
                    };
                    let prepared = copy::prepare(shared.context.as_ref(), &spec)?;
                    let sum = copy::checksum(shared.context.as_ref(), &prepared)?;
                    bind_keys.push(format!("{i}:context:{sum}"));
                }
                Some(from) => {
                    let (source_key, layers) =
                        from_source(shared, from, command_index, stage_index, Some(i)).await?;
                    bind_keys.push(format!("{i}:from:{source_key}"));
                    bind_layers[i] = Some(layers);
                }
            }
        }
        let key = key.list("bind-sources", &bind_keys).finish();
        let created_by = history::run(&history_args(state), &argv);
        if let Some((result, time)) = lookup(shared, &key) {
            state.time = time;
            apply_result(shared, state, key, &result, created_by);
            return Ok(true);
        }

        let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let scratch = tempdir_in(&shared.store.root().join("tmp"))?;
        let mut bind_views: Vec<ReadView> = Vec::new();
        let mut bind_roots: Vec<Option<std::path::PathBuf>> = vec![None; mounts.len()];
        for (i, layers) in bind_layers.into_iter().enumerate() {
            if let Some(layers) = layers {
                let store = shared.store.clone();
                let snapshotter = shared.snapshotter.clone();
                let view = tokio::task::spawn_blocking(move || {
                    ReadView::prepare(&store, snapshotter, &layers)
                })
                .await
                .map_err(join_error)??;
                bind_roots[i] = Some(view.root().to_path_buf());
                bind_views.push(view);
            }
        }
        let result = with_view(shared, state, |root| {
            let shared = shared.clone();
            let tail = tail.clone();
            let argv = argv.clone();
            let scratch_path = scratch.path().to_path_buf();
            let bind_roots = bind_roots.clone();
            async move {
                let user = if user.is_empty() {
                    strata_runtime::User::default()
                } else {
                    strata_runtime::resolve_user(&root, &user)?
                };
                let mut spec = ProcessSpec::new(argv.clone());
                spec.env = env;
                spec.cwd = cwd.into();
                spec.user = user;
                spec.network = network;
                spec.hostname = "buildkitsandbox".into();
                if let Some((name, content)) = &script {
                    let file = scratch_path.join(format!("script-{name}"));
                    write_file(&file, content.as_bytes(), 0o755)?;
                    spec.mounts.push(Mount {
                        kind: MountKind::Bind {
                            source: file,
                            readonly: true,
                        },
                        destination: format!("/dev/pipes/{name}").into(),
                    });
                }
                // Cache mounts: `locked` waits for the directory, `private` takes the first
                // instance nobody else is using (a new one if needed), `shared` just mounts it.
                let mut locks = Vec::new();
                let mut cache_dirs: Vec<Option<std::path::PathBuf>> = vec![None; mounts.len()];
                for (i, mount) in mounts.iter().enumerate() {
                    let (MountType::Cache, Some(target)) = (mount.kind, &mount.target) else {
                        continue;
                    };
                    let base = cache_mount_dir(&shared, mount, target);
                    match mount.sharing {
                        strata_dockerfile::Sharing::Shared => cache_dirs[i] = Some(base),
                        strata_dockerfile::Sharing::Locked => {
                            let dir = base.clone();
                            let lock = tokio::task::spawn_blocking(move || lock_cache_mount(&dir))
                                .await
                                .map_err(join_error)??;
                            locks.push(lock);
                            cache_dirs[i] = Some(base);
                        }
                        strata_dockerfile::Sharing::Private => {
                            let (dir, lock) = private_cache_mount(&base)?;
                            locks.push(lock);
                            cache_dirs[i] = Some(dir);
                        }
                    }
                }
                for (i, mount) in mounts.iter().enumerate() {
                    // `type=secret,env=VAR`: the value goes to the process environment only
                    // (never the image config, the history or the cache key).
                    if mount.kind == MountType::Secret
                        && let Some(var) = &mount.env
                    {
                        let id = mount.id.clone().unwrap_or_else(|| var.clone());
                        match shared.options.secrets.iter().find(|s| s.id == id) {
                            Some(secret) => spec
                                .env
                                .push(format!("{var}={}", String::from_utf8_lossy(&secret.value))),
                            None if mount.required => {
                                return Err(BuildError::SecretNotFound { id });
                            }
                            None => {}
                        }
                        if mount.target.is_none() {
                            continue;
                        }
                    }
                    spec.mounts.push(run_mount(
                        &shared,
                        mount,
                        &scratch_path,
                        i,
                        bind_roots[i].as_deref(),
                        cache_dirs[i].as_deref(),
                    )?);
                }
                let sink = |stream: Stream| {
                    let shared = shared.clone();
                    let tail = tail.clone();
                    strata_runtime::OutputSink::Lines(Box::new(move |line: &[u8]| {
                        let text = String::from_utf8_lossy(line)
                            .trim_end_matches(['\n', '\r'])
                            .to_string();
                        if let Ok(mut t) = tail.lock() {
                            if t.len() == OUTPUT_TAIL_LINES {
                                t.pop_front();
                            }
                            t.push_back(text.clone());
                        }
                        (shared.progress)(Event::Log {
                            vertex,
                            stream,
                            line: text,
                        });
                    }))
                };
                let stdio = Stdio {
                    stdin: strata_runtime::StdinSource::Null,
                    stdout: sink(Stream::Stdout),
                    stderr: sink(Stream::Stderr),
                };
                let status = shared.executor.run(&spec, &root, stdio).await?;
                drop(locks);
                if !status.success() {
                    let lines: Vec<String> = tail
                        .lock()
                        .map(|t| t.iter().cloned().collect())
                        .unwrap_or_default();
                    let shown = argv.join(" ");
                    let message = format!(
                        "process \"{shown}\" did not complete successfully: exit code: {}",
                        status.code()
                    );
                    let mut rendered = String::new();
                    if !lines.is_empty() {
                        rendered.push_str(
                            &lines
                                .iter()
                                .map(|l| format!("{vertex} {l}\n"))
                                .collect::<String>(),
                        );
                    }
                    rendered.push_str(&render(&shared, instruction, &message));
                    return Err(BuildError::RunFailed {
                        exit_code: status.code(),
                        rendered,
                    });
                }
                Ok(())
            }
        })
        .await?;
        let time = chrono::Utc::now();
        cache::record(&shared.store, &key, &result, time)?;
        state.time = time;
        apply_result(shared, state, key, &result, created_by);
        Ok(false)
    })
}

fn tempdir_in(base: &std::path::Path) -> Result<TempDir, BuildError> {
    std::fs::create_dir_all(base).map_err(|source| BuildError::Io {
        path: base.to_path_buf(),
        source,
    })?;
    let mut n: u64 = std::process::id() as u64 * 1000;
    loop {
        let path = base.join(format!("t{n}"));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(TempDir { path }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(source) => return Err(BuildError::Io { path, source }),
        }
    }
}

/// A scratch directory removed (recursively) when dropped.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, bytes).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

/// The persistent directory of a cache mount (keyed by its id, the target by default).
fn cache_mount_dir(
    shared: &Shared,
    mount: &strata_dockerfile::Mount,
    target: &str,
) -> std::path::PathBuf {
    let id = mount.id.clone().unwrap_or_else(|| target.to_string());
    shared
        .store
        .root()
        .join("cache-mounts")
        .join(Digest::of(id.as_bytes()).hex())
}

/// Takes the exclusive lock of a `sharing=locked` cache mount (other builds, in this process or
/// another, wait for it); the lock is released when the returned file is dropped.
fn lock_cache_mount(dir: &std::path::Path) -> Result<std::fs::File, BuildError> {
    let path = lock_path(dir);
    let io = |source| BuildError::Io {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// `<dir>.<suffix>` beside `dir` (cache directory names are hex digests without a dot).
fn sibling(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

fn lock_path(dir: &std::path::Path) -> std::path::PathBuf {
    sibling(dir, "lock")
}

/// `sharing=private`: the first instance of the cache (`dir`, `dir-1`, `dir-2`, ...) whose lock
/// is free, locked for this step.
fn private_cache_mount(
    base: &std::path::Path,
) -> Result<(std::path::PathBuf, std::fs::File), BuildError> {
    for n in 0.. {
        let dir = if n == 0 {
            base.to_path_buf()
        } else {
            sibling(base, &format!("private-{n}"))
        };
        let path = lock_path(&dir);
        let io = |source| BuildError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => return Ok((dir, file)),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    Err(BuildError::Io {
        path: base.to_path_buf(),
        source: std::io::Error::other("no free cache instance"),
    })
}

/// `RUN --mount`: tmpfs, cache (a persistent directory under the store), secret (a file
/// outside every layer), bind from the context.
fn run_mount(
    shared: &Shared,
    mount: &strata_dockerfile::Mount,
    scratch: &std::path::Path,
    index: usize,
    bind_root: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> Result<Mount, BuildError> {
    let unsupported = |reason: &str| BuildError::Mount {
        raw: format!("{mount:?}"),
        reason: reason.to_string(),
    };
    match mount.kind {
        MountType::Tmpfs => {
            let target = mount
                .target
                .clone()
                .ok_or_else(|| unsupported("tmpfs needs a target"))?;
            Ok(Mount {
                kind: MountKind::Tmpfs { size: mount.size },
                destination: target.into(),
            })
        }
        MountType::Cache => {
            let target = mount
                .target
                .clone()
                .ok_or_else(|| unsupported("cache needs a target"))?;
            if mount.from.is_some() {
                return Err(unsupported(
                    "cache mounts seeded from another stage are not supported yet",
                ));
            }
            let dir = cache_dir
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| cache_mount_dir(shared, mount, &target));
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                    path: dir.clone(),
                    source,
                })?;
                use std::os::unix::fs::PermissionsExt;
                let mode = mount.mode.unwrap_or(0o755);
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(
                    |source| BuildError::Io {
                        path: dir.clone(),
                        source,
                    },
                )?;
                std::os::unix::fs::chown(
                    &dir,
                    Some(mount.uid.unwrap_or(0)),
                    Some(mount.gid.unwrap_or(0)),
                )
                .map_err(|source| BuildError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
            Ok(Mount {
                kind: MountKind::Bind {
                    source: dir,
                    readonly: mount.read_only,
                },
                destination: target.into(),
            })
        }
        MountType::Secret => {
            let id = mount
                .id
                .clone()
                .or_else(|| {
                    mount
                        .target
                        .as_deref()
                        .map(|t| crate::paths::base(t).to_string())
                })
                .ok_or_else(|| unsupported("secret needs an id or a target"))?;
            let Some(secret) = shared.options.secrets.iter().find(|s| s.id == id) else {
                if mount.required {
                    return Err(BuildError::SecretNotFound { id });
                }
                let file = scratch.join(format!("empty-secret-{index}"));
                write_file(&file, b"", 0o400)?;
                let target = mount
                    .target
                    .clone()
                    .unwrap_or_else(|| format!("/run/secrets/{id}"));
                return Ok(Mount {
                    kind: MountKind::Bind {
                        source: file,
                        readonly: true,
                    },
                    destination: target.into(),
                });
            };
            let file = scratch.join(format!("secret-{index}"));
            write_file(&file, &secret.value, mount.mode.unwrap_or(0o400))?;
            std::os::unix::fs::chown(
                &file,
                Some(mount.uid.unwrap_or(0)),
                Some(mount.gid.unwrap_or(0)),
            )
            .map_err(|source| BuildError::Io {
                path: file.clone(),
                source,
            })?;
            let target = mount
                .target
                .clone()
                .unwrap_or_else(|| format!("/run/secrets/{id}"));
            Ok(Mount {
                kind: MountKind::Bind {
                    source: file,
                    readonly: true,
                },
                destination: target.into(),
            })
        }
        MountType::Bind => {
            let target = mount
                .target
                .clone()
                .ok_or_else(|| unsupported("bind needs a target"))?;
            let source = crate::paths::confine(mount.source.as_deref().unwrap_or(""));
            // The source tree: another stage's or image's read-only view, else the context.
            let stage_tree = bind_root.map(DirTree::new);
            let tree: &dyn SourceTree = match &stage_tree {
                Some(t) => t,
                None => shared.context.as_ref(),
            };
            let host_root = bind_root
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| shared.context.root().to_path_buf());
            let resolved = crate::source::resolve(tree, &source, true)
                .map_err(|e| unsupported(&e.to_string()))?;
            let Some(meta) = tree
                .lstat(&resolved)
                .map_err(|e| unsupported(&e.to_string()))?
            else {
                return Err(unsupported(&format!("source {source:?} not found")));
            };
            if mount.read_only {
                return Ok(Mount {
                    kind: MountKind::Bind {
                        source: host_root.join(&resolved),
                        readonly: true,
                    },
                    destination: target.into(),
                });
            }
            // rw: the process may write, the writes are thrown away: bind a private copy.
            let dir = scratch.join(format!("bind-{index}"));
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                path: dir.clone(),
                source,
            })?;
            let spec = CopySpec {
                sources: vec![source.clone()],
                dest: "/".into(),
                workdir: "/".into(),
                ..Default::default()
            };
            let prepared = copy::prepare(tree, &spec)?;
            copy::execute(&dir, tree, &prepared)?;
            let host = if meta.is_dir() {
                dir
            } else {
                dir.join(crate::paths::base(&source))
            };
            Ok(Mount {
                kind: MountKind::Bind {
                    source: host,
                    readonly: false,
                },
                destination: target.into(),
            })
        }
        MountType::Ssh => Err(unsupported("ssh mounts are not supported")),
    }
}

fn copy_step<'a>(
    shared: &'a Arc<Shared>,
    state: &'a mut StageState,
    _vertex: usize,
    copy: CopyCommand,
    is_add: bool,
    command_index: Option<usize>,
    stage_index: usize,
) -> StepFuture<'a> {
    Box::pin(async move {
        let instruction = if is_add { "ADD" } else { "COPY" };
        let mut paths = Vec::new();
        let mut urls = Vec::new();
        let mut heredocs = Vec::new();
        let mut written = Vec::new();
        for source in &copy.sources {
            match source {
                CopySource::Path(p) if is_add && copy::http::is_url(p) => {
                    urls.push(p.clone());
                    written.push(p.clone());
                }
                CopySource::Path(p) => {
                    paths.push(p.clone());
                    written.push(p.clone());
                }
                CopySource::Heredoc(doc) => {
                    heredocs.push((doc.name.clone(), doc.content()));
                    written.push(format!("<<{}", doc.name));
                }
            }
        }
        if copy.checksum.is_some() && (urls.len() != 1 || copy.sources.len() != 1) {
            let reason = if copy.sources.len() != 1 {
                "checksum can't be specified for multiple sources"
            } else {
                "checksum requires HTTP(S) or Git sources"
            };
            return Err(BuildError::Expand {
                rendered: reason.to_string(),
            });
        }
        let dest_abs = crate::paths::resolve_dest(&state.workdir(), &copy.dest);
        if copy.sources.len() > 1 && !dest_abs.ends_with('/') {
            return Err(copy::CopyError::MultipleSourcesNeedDirectory { instruction }.into());
        }
        let created_by = history::copy(
            instruction,
            copy.parents,
            copy.chown.as_deref(),
            copy.chmod.as_deref(),
            &written,
            &copy.dest,
        );
        let spec = |sources: Vec<String>| CopySpec {
            is_add,
            sources,
            dest: copy.dest.clone(),
            workdir: state.workdir(),
            select: SelectOptions {
                exclude: copy.exclude.clone(),
                parents: copy.parents,
            },
            chown: copy.chown.clone(),
            chmod: copy.chmod.clone(),
            unpack: copy.unpack,
        };

        // The trees the sources come from, prepared (resolved) now so the key covers them.
        let scratch = tempdir_in(&shared.store.root().join("tmp"))?;
        let mut key = KeyBuilder::new("copy", &state.key)
            .field("created_by", &created_by)
            .field("dest", &dest_abs)
            .list("exclude", &copy.exclude)
            .field("parents", &copy.parents.to_string())
            .field("unpack", &format!("{:?}", copy.unpack));
        let mut from_view: Option<ReadView> = None;
        let mut from_tree: Option<DirTree> = None;
        if !paths.is_empty() {
            if let Some(from) = &copy.from {
                let (source_key, layers) =
                    from_source(shared, from, command_index, stage_index, None).await?;
                key = key
                    .field("from", &source_key.to_string())
                    .list("sources", &paths);
                let store = shared.store.clone();
                let snapshotter = shared.snapshotter.clone();
                let view = tokio::task::spawn_blocking(move || {
                    ReadView::prepare(&store, snapshotter, &layers)
                })
                .await
                .map_err(join_error)??;
                from_tree = Some(DirTree::new(view.root()));
                from_view = Some(view);
            } else {
                let prepared = copy::prepare(shared.context.as_ref(), &spec(paths.clone()))?;
                let sum = copy::checksum(shared.context.as_ref(), &prepared)?;
                key = key.field("context", &sum.to_string());
            }
        }
        let mut downloads = Vec::new();
        for url in &urls {
            let checksum = match &copy.checksum {
                Some(c) => Some(c.parse::<Digest>().map_err(|_| BuildError::Expand {
                    rendered: format!("invalid checksum {c:?}: expected sha256:<64 hex digits>"),
                })?),
                None => None,
            };
            let dir = scratch.path().join(format!("url{}", downloads.len()));
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                path: dir.clone(),
                source,
            })?;
            let url_owned = url.clone();
            let dir_owned = dir.clone();
            let downloaded = tokio::task::spawn_blocking(move || {
                copy::http::download(&url_owned, &dir_owned, checksum.as_ref())
            })
            .await
            .map_err(join_error)?
            .map_err(copy::CopyError::from)?;
            key = key.field(
                "url",
                &format!(
                    "{url}\0{}\0{:?}",
                    downloaded.digest, downloaded.last_modified
                ),
            );
            downloads.push((dir, downloaded));
        }
        let heredoc_dir = scratch.path().join("heredocs");
        let heredoc = if heredocs.is_empty() {
            None
        } else {
            std::fs::create_dir_all(&heredoc_dir).map_err(|source| BuildError::Io {
                path: heredoc_dir.clone(),
                source,
            })?;
            let (tree, names) = copy::heredoc_tree(&heredoc_dir, &heredocs)?;
            let prepared = copy::prepare(&tree, &spec(names.clone()))?;
            key = key.field("heredocs", &copy::checksum(&tree, &prepared)?.to_string());
            Some((tree, names))
        };
        let key = key.finish();
        if let Some((result, time)) = lookup(shared, &key) {
            state.time = time;
            apply_result(shared, state, key, &result, created_by);
            return Ok(true);
        }

        let context = shared.context.clone();
        let mut jobs: Vec<(Box<dyn SourceTree + Send>, CopySpec)> = Vec::new();
        if !paths.is_empty() {
            match from_tree.take() {
                Some(tree) => jobs.push((Box::new(tree), spec(paths.clone()))),
                None => jobs.push((Box::new(ContextRef(context)), spec(paths.clone()))),
            }
        }
        for (dir, downloaded) in &downloads {
            let mut s = spec(vec![downloaded.file_name.clone()]);
            s.unpack = Some(false);
            s.select = SelectOptions::default();
            jobs.push((Box::new(DirTree::with_owner(dir, (0, 0))), s));
        }
        if let Some((tree, names)) = heredoc {
            jobs.push((Box::new(tree), spec(names)));
        }
        let result = with_view(shared, state, move |root| async move {
            tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
                for (tree, spec) in &jobs {
                    let prepared = copy::prepare(tree.as_ref(), spec)?;
                    copy::execute(&root, tree.as_ref(), &prepared)?;
                }
                Ok(())
            })
            .await
            .map_err(join_error)?
        })
        .await?;
        drop(from_view);
        drop(scratch);
        let time = chrono::Utc::now();
        cache::record(&shared.store, &key, &result, time)?;
        state.time = time;
        apply_result(shared, state, key, &result, created_by);
        Ok(false)
    })
}

/// The build context as an owned, sendable source tree.
struct ContextRef(Arc<crate::context::BuildContext>);

impl SourceTree for ContextRef {
    fn lstat(&self, rel: &str) -> std::io::Result<Option<crate::source::FileMeta>> {
        self.0.lstat(rel)
    }
    fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        self.0.list(rel)
    }
    fn open(&self, rel: &str) -> std::io::Result<std::fs::File> {
        self.0.open(rel)
    }
    fn host_path(&self, rel: &str) -> std::path::PathBuf {
        self.0.host_path(rel)
    }
    fn forced_owner(&self) -> Option<(u32, u32)> {
        self.0.forced_owner()
    }
    fn content_digest(&self, rel: &str) -> Option<std::io::Result<Digest>> {
        self.0.content_digest(rel)
    }
}

/// The key and layers a `--from` names: a stage of this build or an image.
async fn from_source(
    shared: &Shared,
    from: &str,
    command_index: Option<usize>,
    stage_index: usize,
    mount: Option<usize>,
) -> Result<(Digest, Vec<Layer>), BuildError> {
    let planned = shared.plan.stage(stage_index);
    let resolved = command_index
        .and_then(|ci| {
            planned.and_then(|p| p.refs.iter().find(|r| r.command == ci && r.mount == mount))
        })
        .map(|r| r.source.clone());
    let source = match resolved {
        Some(s) => s,
        // ONBUILD triggers are not planned: a name of this Dockerfile's stages, else an image.
        None => match shared
            .dockerfile
            .stages
            .iter()
            .find(|s| s.name().is_some_and(|n| n.eq_ignore_ascii_case(from)))
        {
            Some(stage) => StageSource::Stage(stage.index),
            None => StageSource::Image(from.to_string()),
        },
    };
    if let StageSource::Image(name) = &source {
        super::ensure_image(shared, name).await?;
    }
    match super::resolve_source(shared, &source)? {
        BaseSource::Scratch => Ok((cache::base_key("scratch", ""), Vec::new())),
        BaseSource::Stage(i) => {
            let out = shared.output(i).ok_or_else(|| BuildError::StageNotBuilt {
                step: format!("COPY --from={from}"),
                name: from.to_string(),
            })?;
            Ok((out.key, out.layers.clone()))
        }
        BaseSource::Image {
            manifest_digest,
            layers,
            ..
        } => {
            super::layer::ensure_snapshots(&shared.store, &layers)?;
            Ok((
                cache::base_key("image", &manifest_digest.to_string()),
                layers,
            ))
        }
    }
}

fn workdir_step<'a>(
    shared: &'a Arc<Shared>,
    state: &'a mut StageState,
    _vertex: usize,
    path: String,
) -> StepFuture<'a> {
    Box::pin(async move {
        let dir = crate::paths::join(&state.workdir(), &path);
        let dir = if path.starts_with('/') {
            crate::paths::clean(&path)
        } else {
            crate::paths::clean(&format!("/{dir}"))
        };
        state.with_config(|c| {
            c.set_working_dir(Some(dir.clone()));
        });
        let created_by = format!("WORKDIR {dir}");
        if dir == "/" {
            state.push_history(shared, created_by, None);
            return Ok(false);
        }
        let user = state.user();
        let key = KeyBuilder::new("workdir", &state.key)
            .field("dir", &dir)
            .field("user", &user)
            .finish();
        if let Some((result, time)) = lookup(shared, &key) {
            state.time = time;
            apply_result(shared, state, key, &result, created_by);
            return Ok(true);
        }
        let result = with_view(shared, state, |root| async move {
            tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
                let owner = if user.is_empty() {
                    (0, 0)
                } else {
                    let u = strata_runtime::resolve_user(&root, &user)?;
                    (u.uid, u.gid)
                };
                let dest = copy::fsops::DestRoot::open(&root).map_err(|source| BuildError::Io {
                    path: root.clone(),
                    source,
                })?;
                let rel = crate::source::resolve_for_create(&DirTree::new(&root), &dir)?;
                dest.mkdir_all(&rel, owner).map_err(copy::CopyError::from)?;
                Ok(())
            })
            .await
            .map_err(join_error)?
        })
        .await?;
        let time = chrono::Utc::now();
        cache::record(&shared.store, &key, &result, time)?;
        state.time = time;
        apply_result(shared, state, key, &result, created_by);
        Ok(false)
    })
}

impl From<crate::source::ResolveError> for BuildError {
    fn from(e: crate::source::ResolveError) -> Self {
        BuildError::Copy(e.into())
    }
}

/// Instructions that only change the config (and history).
fn metadata(shared: &Shared, state: &mut StageState, command: Command) -> Result<(), BuildError> {
    let created_by = match command {
        Command::Env(pairs) => {
            let mut parts = Vec::new();
            for kv in &pairs {
                state.set_env(&kv.key, &kv.value);
                parts.push(format!("{}={}", kv.key, kv.value));
            }
            format!("ENV {}", parts.join(" "))
        }
        Command::Label(pairs) => {
            let mut parts = Vec::new();
            state.with_config(|c| {
                let mut labels = c.labels().clone().unwrap_or_default();
                for kv in &pairs {
                    labels.insert(kv.key.clone(), kv.value.clone());
                    parts.push(format!("{}={}", kv.key, kv.value));
                }
                c.set_labels(Some(labels));
            });
            format!("LABEL {}", parts.join(" "))
        }
        Command::Arg(decls) => {
            let mut parts = Vec::new();
            for decl in &decls {
                state
                    .args
                    .declare(decl, &shared.options.build_args, &shared.plan);
                match state.args.values().iter().find(|(k, _)| *k == decl.name) {
                    Some((k, v)) => parts.push(format!("{k}={v}")),
                    None => parts.push(decl.name.clone()),
                }
            }
            format!("ARG {}", parts.join(" "))
        }
        Command::Cmd(line) => {
            let args = command_vector(state, &line);
            state.with_config(|c| {
                c.set_cmd(Some(args.clone()));
            });
            state.cmd_set = true;
            format!("CMD {}", history::quoted_list(&args))
        }
        Command::Entrypoint(line) => {
            let args = command_vector(state, &line);
            let reset_cmd = !state.cmd_set;
            state.with_config(|c| {
                c.set_entrypoint(Some(args.clone()));
                if reset_cmd {
                    c.set_cmd(None);
                }
            });
            format!("ENTRYPOINT {}", history::quoted_list(&args))
        }
        Command::Expose(words) => {
            let ports =
                strata_dockerfile::exposed_ports(&words).map_err(|e| BuildError::Expand {
                    rendered: e.to_string(),
                })?;
            state.with_config(|c| {
                let mut existing = c.exposed_ports().clone().unwrap_or_default();
                for p in &ports {
                    if !existing.contains(p) {
                        existing.push(p.clone());
                    }
                }
                existing.sort();
                c.set_exposed_ports(Some(existing));
            });
            let mut sorted = ports.clone();
            sorted.sort();
            sorted.dedup();
            format!(
                "EXPOSE map[{}]",
                sorted
                    .iter()
                    .map(|p| format!("{p}:{{}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        Command::Volume(paths) => {
            state.with_config(|c| {
                let mut existing = c.volumes().clone().unwrap_or_default();
                for p in &paths {
                    if !existing.contains(p) {
                        existing.push(p.clone());
                    }
                }
                existing.sort();
                c.set_volumes(Some(existing));
            });
            format!("VOLUME {}", history::plain_list(&paths))
        }
        Command::User(user) => {
            state.with_config(|c| {
                c.set_user(Some(user.clone()));
            });
            format!("USER {user}")
        }
        Command::Stopsignal(signal) => {
            state.with_config(|c| {
                c.set_stop_signal(Some(signal.clone()));
            });
            format!("STOPSIGNAL {signal}")
        }
        Command::Shell(shell) => {
            state.config.docker.shell = Some(shell.clone());
            format!("SHELL {}", history::plain_list(&shell))
        }
        Command::Maintainer(author) => {
            state.config.oci.set_author(Some(author.clone()));
            format!("MAINTAINER {author}")
        }
        Command::Onbuild(trigger) => {
            state
                .config
                .docker
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.expression.clone());
            format!("ONBUILD {}", trigger.expression)
        }
        Command::Healthcheck(check) => {
            let hc = match check {
                Healthcheck::None => strata_image::Healthcheck {
                    test: Some(vec!["NONE".to_string()]),
                    ..Default::default()
                },
                Healthcheck::Check(cfg) => strata_image::Healthcheck {
                    test: Some(cfg.test_vector()),
                    interval: cfg.interval.map(|d| d.as_nanos() as i64),
                    timeout: cfg.timeout.map(|d| d.as_nanos() as i64),
                    start_period: cfg.start_period.map(|d| d.as_nanos() as i64),
                    start_interval: cfg.start_interval.map(|d| d.as_nanos() as i64),
                    retries: cfg.retries.map(i64::from),
                },
            };
            let text = format!(
                "HEALTHCHECK &{{{} {:?} {:?} {:?} {:?} {}}}",
                history::quoted_list(hc.test.as_deref().unwrap_or(&[])),
                go_duration(hc.interval.unwrap_or(0)),
                go_duration(hc.timeout.unwrap_or(0)),
                go_duration(hc.start_period.unwrap_or(0)),
                go_duration(hc.start_interval.unwrap_or(0)),
                hc.retries.unwrap_or(0)
            );
            state.config.docker.healthcheck = Some(hc);
            text
        }
        // FROM is handled by the stage; RUN/COPY/ADD/WORKDIR by their steps.
        Command::From(_)
        | Command::Run(_)
        | Command::Copy(_)
        | Command::Add(_)
        | Command::Workdir(_) => return Ok(()),
    };
    state.push_history(shared, created_by, None);
    Ok(())
}

/// CMD/ENTRYPOINT argv: exec form as is, shell form wrapped in SHELL.
fn command_vector(state: &StageState, line: &CommandLine) -> Vec<String> {
    match line {
        CommandLine::Exec(args) => args.clone(),
        CommandLine::Shell(text) => {
            let mut a = state.shell();
            a.push(text.clone());
            a
        }
    }
}

/// Go's `time.Duration.String()` for whole and fractional seconds (`30s`, `1m30s`, `1.5s`).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let total_secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = total_secs % 60;
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:09}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    }
}
