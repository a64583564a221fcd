//! Typed instructions: what each line of a Dockerfile says, with its words UNEXPANDED.
//!
//! Words keep their quotes, escapes and `$VAR`s exactly as written, because their meaning
//! depends on the environment at build time (an `ENV` may read the base image's config). The
//! build engine calls [`Instruction::expand`] with that environment when it reaches the
//! instruction. Flags whose values BuildKit does not expand (`--network`, `--security`,
//! `--link`, HEALTHCHECK durations, `RUN --mount from=`) are typed and validated at parse time;
//! flags that expand are validated here when they are literal and again after expansion.
//!
//! One module per instruction family, each with its types, parsing and expansion: [`from`],
//! [`run`] (with [`mount`]), [`copy`] (COPY and ADD), [`env`] (ENV, LABEL, ARG) and [`config`]
//! (everything that only changes the image config).

mod config;
mod copy;
mod env;
mod from;
pub(crate) mod mount;
mod run;

pub(crate) use config::check_trigger;
pub use config::{Healthcheck, HealthcheckConfig, OnbuildCommand, exposed_ports};
pub(crate) use copy::expand_copy;
pub use copy::{Chmod, CopyCommand, CopySource};
pub use env::{ArgDecl, KeyValue};
pub(crate) use env::{expand_args, expand_pairs};
pub use from::{FromCommand, StageName};
pub use mount::{Mount, MountSpec, MountType, Sharing};
pub(crate) use run::expand_mount;
pub use run::{NetworkMode, RunCommand, RunProgram, SecurityMode};

use crate::error::{ParseErrorKind, Span};
use crate::flags::Flags;
use crate::json::{JsonArgs, parse_args};
use crate::suggest::suggest;
use crate::syntax::RawInstruction;
use crate::words::whitespace_words;

/// One instruction: where it is, how it was written, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The lines it covers (continuations and heredoc bodies included).
    pub span: Span,
    /// The keyword as written (`run`, `Run`, `RUN`), for the casing checks.
    pub keyword: String,
    /// The logical line with continuations joined (BuildKit's `Node.Original`).
    pub original: String,
    /// Comment lines directly above it.
    pub comments: Vec<String>,
    /// The typed content.
    pub command: Command,
}

/// The typed content of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    From(FromCommand),
    Run(RunCommand),
    Cmd(CommandLine),
    Label(Vec<KeyValue>),
    /// The deprecated MAINTAINER text.
    Maintainer(String),
    /// Port specs as written (`80`, `8080/udp`, `$PORT`).
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(CopyCommand),
    Copy(CopyCommand),
    Entrypoint(CommandLine),
    /// Paths, from JSON or whitespace-separated form.
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(OnbuildCommand),
    Stopsignal(String),
    Healthcheck(Healthcheck),
    /// The shell for shell-form commands (always JSON form).
    Shell(Vec<String>),
}

impl Command {
    /// The canonical upper-case keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Label(_) => "LABEL",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Expose(_) => "EXPOSE",
            Command::Env(_) => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::Stopsignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
        }
    }
}

/// A command in shell form (run through SHELL) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Shell form: the text as written (BuildKit hands it to the shell unchanged).
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

impl CommandLine {
    /// Whether this is the JSON (exec) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }
}

const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];
/// Parses an instruction's arguments by keyword (case-insensitive).
pub(crate) fn parse_command(
    keyword: &str,
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
    escape: char,
) -> Result<Command, ParseErrorKind> {
    // the canonical spelling, found without allocating a lower-case copy per instruction
    let known = KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(keyword))
        .copied();
    Ok(match known.unwrap_or_default() {
        "FROM" => Command::From(from::parse_from(flag_words, rest)?),
        "RUN" => Command::Run(run::parse_run(flag_words, rest, raw)?),
        "CMD" => {
            no_flags(flag_words)?;
            Command::Cmd(command_line(rest)?)
        }
        "ENTRYPOINT" => {
            no_flags(flag_words)?;
            Command::Entrypoint(command_line(rest)?)
        }
        "SHELL" => Command::Shell(config::parse_shell(flag_words, rest)?),
        "ENV" => {
            no_flags(flag_words)?;
            Command::Env(env::key_values(rest, escape, "ENV")?)
        }
        "LABEL" => {
            no_flags(flag_words)?;
            Command::Label(env::key_values(rest, escape, "LABEL")?)
        }
        "ARG" => {
            no_flags(flag_words)?;
            Command::Arg(env::parse_arg(rest, escape)?)
        }
        "COPY" => copy::parse_copy(false, flag_words, rest, raw)?,
        "ADD" => copy::parse_copy(true, flag_words, rest, raw)?,
        "MAINTAINER" => Command::Maintainer(config::one_string(flag_words, rest, "MAINTAINER")?),
        "USER" => Command::User(config::one_string(flag_words, rest, "USER")?),
        "WORKDIR" => Command::Workdir(config::one_string(flag_words, rest, "WORKDIR")?),
        "STOPSIGNAL" => Command::Stopsignal(config::one_string(flag_words, rest, "STOPSIGNAL")?),
        "EXPOSE" => Command::Expose(config::parse_expose(flag_words, rest)?),
        "VOLUME" => Command::Volume(config::parse_volume(flag_words, rest)?),
        "HEALTHCHECK" => Command::Healthcheck(config::parse_healthcheck(flag_words, rest)?),
        "ONBUILD" => Command::Onbuild(config::parse_onbuild(flag_words, rest, raw)?),
        _ => {
            return Err(ParseErrorKind::UnknownInstruction {
                keyword: keyword.to_string(),
                suggestion: suggest(keyword, &KEYWORDS).map(str::to_string),
            });
        }
    })
}

/// Instructions that take no flags still parse them, so a flag there is an "unknown flag".
fn no_flags(flags: &[String]) -> Result<(), ParseErrorKind> {
    Flags::parse(flags, &[]).map(|_| ())
}

/// JSON array or the whole text (RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK CMD).
fn command_line(rest: &str) -> Result<CommandLine, ParseErrorKind> {
    match parse_args(rest) {
        JsonArgs::Strings(args) => Ok(CommandLine::Exec(args)),
        JsonArgs::NotStrings => Err(ParseErrorKind::JsonNotStringArray),
        JsonArgs::NotJson => Ok(CommandLine::Shell(rest.to_string())),
    }
}

/// Words of JSON or whitespace form, and whether they were JSON.
struct Words(Vec<String>, bool);

fn list(rest: &str) -> Result<Words, ParseErrorKind> {
    match parse_args(rest) {
        JsonArgs::Strings(args) => Ok(Words(args, true)),
        JsonArgs::NotStrings => Err(ParseErrorKind::JsonNotStringArray),
        JsonArgs::NotJson => Ok(Words(whitespace_words(rest), false)),
    }
}
