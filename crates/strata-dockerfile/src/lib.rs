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
pub use parse::{Dockerfile, Stage, parse, parse_trigger, parse_triggers};
pub use plan::{
    ArgScope, BuildArgs, PLATFORM_ARGS, PROXY_ARGS, Plan, PlanError, PlanErrorKind, PlannedStage,
    StageRef, StageSource, plan,
};
pub use syntax::{CheckDirective, Directive, Directives};
