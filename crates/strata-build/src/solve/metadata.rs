//! WORKDIR (a filesystem step: the directory is created for USER) and the instructions that
//! only change the image config and history.

use super::cache::KeyBuilder;
use super::history;
use super::stage::*;
use super::{BuildError, Shared};
use crate::copy::{self};
use crate::source::DirTree;
use std::sync::Arc;
use strata_dockerfile::{Command, CommandLine, Healthcheck};

pub(super) fn workdir_step<'a>(
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
        record_executed(shared, state, &key, &result)?;
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
pub(super) fn metadata(
    shared: &Shared,
    state: &mut StageState,
    command: Command,
) -> Result<(), BuildError> {
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
            // BuildKit marks every CMD `ArgsEscaped` (docker's image spec field, meaningful
            // on Windows only), so `docker inspect` shows `"ArgsEscaped": true` for it.
            state.config.docker.args_escaped = Some(true);
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
pub(super) fn command_vector(state: &StageState, line: &CommandLine) -> Vec<String> {
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
pub(super) fn go_duration(ns: i64) -> String {
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
