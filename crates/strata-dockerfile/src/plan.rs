//! Planning: global ARGs, stage names and stage references → the stages a target needs.
//!
//! BuildKit's rules, which this module follows:
//! - ARGs before the first FROM are global: they expand in FROM lines (image and `--platform`)
//!   and are visible inside a stage only when redeclared there (`ARG NAME` without a value takes
//!   the global value). `--build-arg` overrides a declared ARG's default. The platform ARGs
//!   ([`PLATFORM_ARGS`], linux/amd64 here) are automatic in the global scope; the proxy ARGs
//!   ([`PROXY_ARGS`]) need no declaration and are kept out of the image history.
//! - Stage names are case-insensitive and unique. `FROM <name>` refers to an EARLIER stage only
//!   (otherwise it names an image); `COPY --from` and `RUN --mount from=` accept a stage name
//!   (earlier or later in the file), a numeric stage index, or an image. Cycles are refused.
//! - Only the stages the target reaches are planned; stages with no path between them can run
//!   in parallel ([`Plan::groups`]).

use crate::error::{Span, render_snippet};
use crate::instruction::{ArgDecl, Command, Instruction};
use crate::parse::{Dockerfile, Stage};
use crate::shell::{Lexer, ShellError};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// The proxy build arguments: usable without `ARG`, never recorded in the history.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The automatic platform ARGs and their values on this host (linux/amd64).
pub const PLATFORM_ARGS: [(&str, &str); 8] = [
    ("TARGETPLATFORM", "linux/amd64"),
    ("TARGETOS", "linux"),
    ("TARGETARCH", "amd64"),
    ("TARGETVARIANT", ""),
    ("BUILDPLATFORM", "linux/amd64"),
    ("BUILDOS", "linux"),
    ("BUILDARCH", "amd64"),
    ("BUILDVARIANT", ""),
];

/// `--build-arg NAME=VALUE` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildArgs {
    values: BTreeMap<String, String>,
}

impl BuildArgs {
    /// No build args.
    pub fn new() -> BuildArgs {
        BuildArgs::default()
    }

    /// Sets `name` (a later value replaces an earlier one, as with repeated `--build-arg`).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// The value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// All values, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value an `ARG` declaration (already expanded) takes in a stage: the build arg, else
    /// its default, else the global value of the same name (redeclaration), else unset.
    pub fn resolve(&self, decl: &ArgDecl, plan: &Plan) -> Option<String> {
        self.get(&decl.name)
            .map(str::to_string)
            .or_else(|| decl.default.clone())
            .or_else(|| plan.global_value(&decl.name).map(str::to_string))
    }
}

impl BuildArgs {
    /// The proxy build args that were given (`HTTP_PROXY`, ...): they reach RUN's environment
    /// without an ARG and never the image history or config.
    pub fn proxy_env(&self) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| PROXY_ARGS.contains(k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// The ARGs in scope in one stage, built as the engine walks the stage: each `ARG` (expanded
/// with [`Instruction::expand`](crate::Instruction::expand)) is declared in order. Its values
/// feed word expansion (through [`Scope`](crate::Scope), below ENV) and RUN's environment; they
/// are never persisted in the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgScope {
    values: Vec<(String, String)>,
}

impl ArgScope {
    /// A stage's scope at its FROM: empty (global ARGs need a redeclaration).
    pub fn new() -> ArgScope {
        ArgScope::default()
    }

    /// Declares an (expanded) ARG: it takes the build arg, else its default, else the global
    /// value of the same name; declared without any value, it stays undefined.
    pub fn declare(&mut self, decl: &ArgDecl, build_args: &BuildArgs, plan: &Plan) {
        self.values.retain(|(k, _)| *k != decl.name);
        if let Some(value) = build_args.resolve(decl, plan) {
            self.values.push((decl.name.clone(), value));
        }
    }

    /// The defined ARGs in declaration order.
    pub fn values(&self) -> &[(String, String)] {
        &self.values
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for BuildArgs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut args = BuildArgs::new();
        for (k, v) in iter {
            args.set(k, v);
        }
        args
    }
}

/// What a FROM or a `--from` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageSource {
    /// `scratch`: an empty filesystem.
    Scratch,
    /// An image reference (expanded).
    Image(String),
    /// Another stage, by index.
    Stage(usize),
}

/// A resolved `COPY --from` or `RUN --mount from=` in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRef {
    /// Index of the instruction in [`Stage::commands`].
    pub command: usize,
    /// For RUN: the index of the mount in `RunCommand::mounts`.
    pub mount: Option<usize>,
    /// What it refers to.
    pub source: StageSource,
}

/// One stage of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    /// Index of the stage in [`Dockerfile::stages`].
    pub index: usize,
    /// The stage name (lower-cased).
    pub name: Option<String>,
    /// The FROM, expanded with the global ARGs and resolved.
    pub base: StageSource,
    /// `FROM --platform`, expanded.
    pub platform: Option<String>,
    /// `--from` references, resolved.
    pub refs: Vec<StageRef>,
    /// The stages this one needs (base stage and referenced stages), ascending.
    pub deps: Vec<usize>,
}

/// The stages a build of `target` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The target stage's index.
    pub target: usize,
    /// The needed stages in a topological order (dependencies first, then by file order).
    pub stages: Vec<PlannedStage>,
    /// Stage indices grouped by depth: the stages of one group depend only on earlier groups
    /// and can run in parallel.
    pub groups: Vec<Vec<usize>>,
    /// The global ARGs with a value (platform ARGs first, then the file's), in order.
    pub global_args: Vec<(String, String)>,
    /// Build args no ARG of the file declares (docker warns about them); proxy ARGs excluded.
    pub unused_build_args: Vec<String>,
}

impl Plan {
    /// The value of a global ARG.
    pub fn global_value(&self, name: &str) -> Option<&str> {
        self.global_args
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The planned stage for a Dockerfile stage index.
    pub fn stage(&self, index: usize) -> Option<&PlannedStage> {
        self.stages.iter().find(|s| s.index == index)
    }
}

/// A planning failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct PlanError {
    /// The lines at fault (`None` for a `--target` that names no stage).
    pub span: Option<Span>,
    /// What went wrong.
    pub kind: PlanErrorKind,
}

impl PlanError {
    /// BuildKit's snippet for this error (only the `ERROR:` line when there is no span).
    pub fn render(&self, file_name: &str, source: &str) -> String {
        match self.span {
            Some(span) => render_snippet(file_name, source, span, &self.to_string()),
            None => format!("ERROR: {self}\n"),
        }
    }
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanErrorKind {
    #[error("dockerfile contains no stages to build (no FROM instruction)")]
    NoStages,
    #[error("target stage {target:?} could not be found")]
    UnknownTarget { target: String },
    #[error("duplicate stage name {name:?} (first defined on line {first})")]
    DuplicateStageName { name: String, first: usize },
    #[error("base name ({image}) should not be blank")]
    EmptyBaseName { image: String },
    #[error("invalid stage index {index} in {value:?}: the Dockerfile has {stages} stages")]
    InvalidStageIndex {
        value: String,
        index: i64,
        stages: usize,
    },
    #[error("circular dependency detected on stage: {stage}")]
    CircularDependency { stage: String },
    #[error(transparent)]
    Expand(#[from] ShellError),
}

fn error(span: Span, kind: PlanErrorKind) -> PlanError {
    PlanError {
        span: Some(span),
        kind,
    }
}

/// Plans the build of `target` (the last stage when `None`).
pub fn plan(
    dockerfile: &Dockerfile,
    build_args: &BuildArgs,
    target: Option<&str>,
) -> Result<Plan, PlanError> {
    let lexer = Lexer::new(dockerfile.escape());
    let expand = |word: &str, env: &Vec<(String, String)>, span: Span| {
        lexer
            .expand_word(word, env)
            .map(|e| e.value)
            .map_err(|e| error(span, e.into()))
    };
    let globals = global_args(dockerfile, build_args, &lexer)?;

    let stages = &dockerfile.stages;
    let Some(last) = stages.last() else {
        // Only global ARGs: point at the last one.
        return Err(PlanError {
            span: dockerfile.global_args.last().map(|i| i.span),
            kind: PlanErrorKind::NoStages,
        });
    };
    let mut names: BTreeMap<&str, &Stage> = BTreeMap::new();
    for stage in stages {
        if let Some(name) = stage.name()
            && let Some(first) = names.insert(name, stage)
        {
            return Err(error(
                stage.instruction.span,
                PlanErrorKind::DuplicateStageName {
                    name: name.to_string(),
                    first: first.instruction.span.start,
                },
            ));
        }
    }
    let target = match target {
        None => last.index,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            names
                .get(lower.as_str())
                .map(|s| s.index)
                .ok_or(PlanError {
                    span: None,
                    kind: PlanErrorKind::UnknownTarget {
                        target: t.to_string(),
                    },
                })?
        }
    };

    let resolve = |value: &str, span: Span| -> Result<StageSource, PlanError> {
        if let Ok(index) = value.parse::<i64>() {
            return match usize::try_from(index) {
                Ok(i) if i < stages.len() => Ok(StageSource::Stage(i)),
                _ => Err(error(
                    span,
                    PlanErrorKind::InvalidStageIndex {
                        value: value.to_string(),
                        index,
                        stages: stages.len(),
                    },
                )),
            };
        }
        Ok(match names.get(value.to_ascii_lowercase().as_str()) {
            Some(stage) => StageSource::Stage(stage.index),
            None => StageSource::Image(value.to_string()),
        })
    };

    let mut planned = Vec::with_capacity(stages.len());
    for stage in stages {
        let span = stage.instruction.span;
        let image = expand(&stage.from.image, &globals, span)?;
        if image.is_empty() {
            return Err(error(
                span,
                PlanErrorKind::EmptyBaseName {
                    image: stage.from.image.clone(),
                },
            ));
        }
        let platform = stage
            .from
            .platform
            .as_deref()
            .map(|p| expand(p, &globals, span))
            .transpose()?;
        let base = match names.get(image.to_ascii_lowercase().as_str()) {
            Some(earlier) if earlier.index < stage.index => StageSource::Stage(earlier.index),
            _ if image == "scratch" => StageSource::Scratch,
            _ => StageSource::Image(image),
        };
        let refs = stage_refs(stage, &globals, build_args, &lexer, &resolve)?;
        let mut deps: Vec<usize> = std::iter::once(&base)
            .chain(refs.iter().map(|r| &r.source))
            .filter_map(|source| match source {
                StageSource::Stage(i) => Some(*i),
                _ => None,
            })
            .collect();
        deps.sort_unstable();
        deps.dedup();
        planned.push(PlannedStage {
            index: stage.index,
            name: stage.name().map(str::to_string),
            base,
            platform,
            refs,
            deps,
        });
    }

    let needed = needed_stages(target, stages, &planned)?;
    let order = file_order_topological(&needed, &planned);
    let mut level = vec![0usize; stages.len()];
    for &i in &order {
        level[i] = planned[i]
            .deps
            .iter()
            .map(|&d| level[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let depth = order.iter().map(|&i| level[i]).max().unwrap_or(0);
    let mut groups = vec![Vec::new(); depth + 1];
    for &i in &order {
        groups[level[i]].push(i);
    }
    groups.iter_mut().for_each(|g| g.sort_unstable());
    let mut by_index: Vec<Option<PlannedStage>> = planned.into_iter().map(Some).collect();
    let stages_out = order
        .iter()
        .filter_map(|&i| by_index.get_mut(i).and_then(Option::take))
        .collect();

    let declared: Vec<&str> = dockerfile
        .instructions()
        .filter_map(|i| match &i.command {
            Command::Arg(decls) => Some(decls.iter().map(|d| d.name.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    let unused_build_args = build_args
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !declared.contains(k) && !PROXY_ARGS.contains(k))
        .map(str::to_string)
        .collect();

    Ok(Plan {
        target,
        stages: stages_out,
        groups,
        global_args: globals,
        unused_build_args,
    })
}

/// The global ARGs: the automatic platform ARGs, then each ARG before the first FROM with its
/// build arg or (expanded) default; an ARG with neither stays undefined.
fn global_args(
    dockerfile: &Dockerfile,
    build_args: &BuildArgs,
    lexer: &Lexer,
) -> Result<Vec<(String, String)>, PlanError> {
    let mut globals: Vec<(String, String)> = PLATFORM_ARGS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for instruction in &dockerfile.global_args {
        let Command::Arg(decls) = &instruction.command else {
            continue;
        };
        let expand = |word: &str, env: &Vec<(String, String)>| {
            lexer
                .expand_word(word, env)
                .map(|e| e.value)
                .map_err(|e| error(instruction.span, e.into()))
        };
        for decl in decls {
            let name = expand(&decl.name, &globals)?;
            let value = match build_args.get(&name) {
                Some(value) => Some(value.to_string()),
                None => decl
                    .default
                    .as_deref()
                    .map(|d| expand(d, &globals))
                    .transpose()?,
            };
            if let Some(value) = value {
                globals.push((name, value));
            }
        }
    }
    Ok(globals)
}

/// Resolves a stage's `COPY --from` (expanded with the global ARGs and the ARGs declared in the
/// stage so far) and `RUN --mount from=` (never expanded).
fn stage_refs(
    stage: &Stage,
    globals: &[(String, String)],
    build_args: &BuildArgs,
    lexer: &Lexer,
    resolve: &dyn Fn(&str, Span) -> Result<StageSource, PlanError>,
) -> Result<Vec<StageRef>, PlanError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut refs = Vec::new();
    for (command, instruction) in stage.commands.iter().enumerate() {
        let span = instruction.span;
        let expand = |word: &str, env: &Vec<(String, String)>| {
            lexer
                .expand_word(word, env)
                .map(|e| e.value)
                .map_err(|e| error(span, e.into()))
        };
        match &instruction.command {
            Command::Arg(decls) => {
                for decl in decls {
                    let name = expand(&decl.name, &env)?;
                    let value = match build_args.get(&name) {
                        Some(v) => Some(v.to_string()),
                        None => match &decl.default {
                            Some(d) => Some(expand(d, &env)?),
                            None => globals
                                .iter()
                                .rev()
                                .find(|(k, _)| *k == name)
                                .map(|(_, v)| v.clone()),
                        },
                    };
                    if let Some(value) = value {
                        env.push((name, value));
                    }
                }
            }
            Command::Copy(copy) => {
                if let Some(from) = &copy.from {
                    let value = expand(from, &env)?;
                    refs.push(StageRef {
                        command,
                        mount: None,
                        source: resolve(&value, span)?,
                    });
                }
            }
            Command::Run(run) => {
                for (mount, spec) in run.mounts.iter().enumerate() {
                    if let Some(from) = &spec.from {
                        refs.push(StageRef {
                            command,
                            mount: Some(mount),
                            source: resolve(from, span)?,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(refs)
}

/// Kahn's algorithm over the needed stages, always taking the ready stage that comes first in
/// the file: dependencies first, otherwise file order.
fn file_order_topological(needed: &[usize], planned: &[PlannedStage]) -> Vec<usize> {
    let mut pending = vec![0usize; planned.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); planned.len()];
    for &stage in needed {
        pending[stage] = planned[stage].deps.len();
        for &dep in &planned[stage].deps {
            dependents[dep].push(stage);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = needed
        .iter()
        .filter(|&&s| pending[s] == 0)
        .map(|&s| Reverse(s))
        .collect();
    let mut order = Vec::with_capacity(needed.len());
    while let Some(Reverse(stage)) = ready.pop() {
        order.push(stage);
        for &dependent in &dependents[stage] {
            pending[dependent] -= 1;
            if pending[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    order
}

/// The stages reachable from the target (depth-first), refusing cycles.
fn needed_stages(
    target: usize,
    stages: &[Stage],
    planned: &[PlannedStage],
) -> Result<Vec<usize>, PlanError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; planned.len()];
    let mut order = Vec::new();
    // Explicit stack (stage, next dep position) so deep chains cannot overflow.
    let mut stack: Vec<(usize, usize)> = vec![(target, 0)];
    marks[target] = Mark::Active;
    while let Some(&mut (stage, ref mut next)) = stack.last_mut() {
        if let Some(&dep) = planned[stage].deps.get(*next) {
            *next += 1;
            match marks[dep] {
                Mark::Done => {}
                Mark::Active => {
                    let span = reference_span(&stages[stage], &planned[stage], dep);
                    let name = stages[dep]
                        .name()
                        .map_or_else(|| dep.to_string(), str::to_string);
                    return Err(error(
                        span,
                        PlanErrorKind::CircularDependency { stage: name },
                    ));
                }
                Mark::New => {
                    marks[dep] = Mark::Active;
                    stack.push((dep, 0));
                }
            }
        } else {
            marks[stage] = Mark::Done;
            order.push(stage);
            stack.pop();
        }
    }
    Ok(order)
}

/// The lines of the instruction through which `stage` depends on `dep`.
fn reference_span(stage: &Stage, planned: &PlannedStage, dep: usize) -> Span {
    planned
        .refs
        .iter()
        .find(|r| r.source == StageSource::Stage(dep))
        .and_then(|r| stage.commands.get(r.command))
        .map_or(stage.instruction.span, |i: &Instruction| i.span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    #[test]
    fn arg_scope_follows_buildkit_precedence() {
        let df = parse("ARG GLOBAL=g\nARG OVERRIDDEN=g\nFROM scratch\n").unwrap();
        let args: BuildArgs = [("OVERRIDDEN", "cli"), ("LOCAL", "cli"), ("HTTP_PROXY", "p")]
            .into_iter()
            .collect();
        let plan = plan(&df, &args, None).unwrap();
        let decl = |name: &str, default: Option<&str>| ArgDecl {
            name: name.to_string(),
            default: default.map(str::to_string),
        };
        let mut scope = ArgScope::new();
        scope.declare(&decl("GLOBAL", None), &args, &plan);
        scope.declare(&decl("OVERRIDDEN", None), &args, &plan);
        scope.declare(&decl("LOCAL", Some("default")), &args, &plan);
        scope.declare(&decl("DEFAULTED", Some("d")), &args, &plan);
        scope.declare(&decl("UNSET", None), &args, &plan);
        scope.declare(&decl("TARGETARCH", None), &args, &plan);
        let got: Vec<(&str, &str)> = scope
            .values()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("GLOBAL", "g"),
                ("OVERRIDDEN", "cli"),
                ("LOCAL", "cli"),
                ("DEFAULTED", "d"),
                ("TARGETARCH", "amd64"),
            ]
        );
        assert_eq!(
            args.proxy_env(),
            [("HTTP_PROXY".to_string(), "p".to_string())]
        );
        assert_eq!(plan.unused_build_args, ["LOCAL"]);
    }
}
