//! RUN: argv (SHELL or exec form, heredoc scripts), the environment the process sees, its
//! cache key (bind-mounted content included), and the run itself on a writable view.

use super::cache::KeyBuilder;
use super::copy_step::from_source;
use super::history;
use super::layer::{Layer, ReadView};
use super::mounts::{cache_mount_dir, lock_cache_mount, private_cache_mount, run_mount};
use super::stage::*;
use super::{BuildError, Shared};
use crate::copy::{self, CopySpec};
use crate::progress::{Event, Stream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use strata_dockerfile::{Instruction, MountType, NetworkMode, RunCommand, RunProgram};
use strata_runtime::{Mount, MountKind, Network, ProcessSpec, Stdio};

pub(super) fn run_env(shared: &Shared, state: &StageState) -> Vec<String> {
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
pub(super) fn history_args(state: &StageState) -> Vec<(String, String)> {
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

pub(super) fn run_step<'a>(
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
        // the key of a stage or image source. So is the `from` of a cache mount (BuildKit: an
        // input of the exec op), whose snapshot also seeds and names the cache instance.
        let mut bind_layers: Vec<Option<Vec<Layer>>> = vec![None; mounts.len()];
        let mut cache_seeds: Vec<Option<strata_image::Digest>> = vec![None; mounts.len()];
        let mut bind_keys = Vec::new();
        for (i, mount) in mounts.iter().enumerate() {
            if let (MountType::Cache, Some(from)) = (mount.kind, &mount.from) {
                let (source_key, layers) =
                    from_source(shared, from, command_index, stage_index, Some(i)).await?;
                bind_keys.push(format!("{i}:cache-from:{source_key}"));
                // An empty tree (scratch) seeds nothing: BuildKit has no ref for it either.
                if let Some(top) = layers.last() {
                    cache_seeds[i] = Some(top.chain_id);
                    bind_layers[i] = Some(layers);
                }
                continue;
            }
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
                    let sum = copy::prepare_checksum(shared.context.as_ref(), &spec)?;
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
                let view = read_view(shared, layers).await?;
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
                    let base = cache_mount_dir(&shared, mount, target, cache_seeds[i].as_ref());
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
        record_executed(shared, state, &key, &result)?;
        apply_result(shared, state, key, &result, created_by);
        Ok(false)
    })
}

pub(super) fn tempdir_in(base: &std::path::Path) -> Result<TempDir, BuildError> {
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

pub(super) fn write_file(
    path: &std::path::Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, bytes).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}
