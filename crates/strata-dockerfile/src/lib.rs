//! The Dockerfile frontend: text → typed instructions with spans → a plan of stages, as
//! BuildKit's Dockerfile frontend 1.x defines the language. Pure: no filesystem, no clock.
//!
//! - [`parse`] reads directives, comments, continuations, heredocs, JSON/shell forms and flags
//!   into [`Instruction`]s whose words stay unexpanded; errors carry line [`Span`]s and render
//!   BuildKit's snippet ([`ParseError::render`]).
//! - [`Instruction::expand`] is the build-time step: the engine calls it with the environment the
//!   instruction sees (image config env + ENV + ARGs in scope), through the [`shell`] lexer.
//! - [`plan`] resolves global ARGs, stage names and `--from` references into the stages a target
//!   needs, their dependencies, a topological order and groups that can run in parallel.
//! - [`lint`] runs BuildKit's build checks.
//!
//! How the build engine walks a Dockerfile:
//!
//! ```
//! use strata_dockerfile::{ArgScope, BuildArgs, Command, Scope, StageSource, parse, plan};
//!
//! let source = "ARG VERSION=1.35\n\
//!               FROM busybox:${VERSION} AS build\n\
//!               ARG VERSION\n\
//!               ENV OUT=/out/v$VERSION\n\
//!               RUN --mount=type=cache,target=/cache make\n\
//!               FROM scratch\n\
//!               COPY --from=build ${OUT:-/out} /\n";
//! let dockerfile = parse(source).map_err(|e| e.render("Dockerfile", source)).unwrap();
//! let build_args: BuildArgs = [("VERSION", "1.36")].into_iter().collect();
//! let plan = plan(&dockerfile, &build_args, None).unwrap();
//! assert_eq!(plan.groups, [vec![0], vec![1]]);
//! assert_eq!(plan.stages[0].base, StageSource::Image("busybox:1.36".into()));
//!
//! let lexer = dockerfile.lexer();
//! let stage = &dockerfile.stages[0];
//! let mut env: Vec<(String, String)> = Vec::new(); // the base image's config env
//! let mut args = ArgScope::new();
//! for instruction in &stage.commands {
//!     let scope = Scope { env: &env, args: args.values() };
//!     match instruction.expand(&lexer, &scope).unwrap() {
//!         Command::Arg(decls) => decls.iter().for_each(|d| args.declare(d, &build_args, &plan)),
//!         Command::Env(pairs) => env.extend(pairs.into_iter().map(|kv| (kv.key, kv.value))),
//!         Command::Run(run) => assert!(run.mounts[0].mount.is_some()),
//!         _ => {}
//!     }
//! }
//! assert_eq!(env, [("OUT".to_string(), "/out/v1.36".to_string())]);
//! ```

pub mod lint;
pub mod shell;

mod duration;
mod error;
mod expand;
mod flags;
mod heredoc;
mod instruction;
mod json;
mod parse;
mod plan;
mod suggest;
mod syntax;
mod words;

pub mod dump;

pub use error::{
    MountError, ParseError, ParseErrorKind, Span, Warning, WarningKind, render_snippet,
};
pub use expand::{ExpandError, ExpandErrorKind, Scope};
pub use heredoc::Heredoc;
pub use instruction::{
    ArgDecl, Chmod, Command, CommandLine, CopyCommand, CopySource, FromCommand, Healthcheck,
    HealthcheckConfig, Instruction, KeyValue, Mount, MountSpec, MountType, NetworkMode,
    OnbuildCommand, RunCommand, RunProgram, SecurityMode, Sharing, StageName, exposed_ports,
};
pub use parse::{Dockerfile, Stage, parse, parse_bytes, parse_trigger, parse_triggers};
pub use plan::{
    ArgScope, BuildArgs, PLATFORM_ARGS, PROXY_ARGS, Plan, PlanError, PlanErrorKind, PlannedStage,
    StageRef, StageSource, plan,
};
pub use syntax::{CheckDirective, Directive, Directives};
