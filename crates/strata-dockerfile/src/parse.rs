//! Logical lines → typed instructions → a [`Dockerfile`] of global ARGs and stages.

use crate::copy::{Chmod, valid_checksum};
use crate::duration::parse_go_duration;
use crate::error::{ParseError, ParseErrorKind, Span, Warning};
use crate::flags::{FlagType, Flags};
use crate::heredoc;
use crate::instruction::*;
use crate::json::{JsonArgs, parse_args};
use crate::mount::MountSpec;
use crate::suggest::suggest;

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
use crate::syntax::{Directives, RawInstruction, read_lines};
use crate::words::{quoted_words, split_command, split_first_word, whitespace_words};
use std::time::Duration;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The parser directives (`syntax`, `escape`, `check`).
    pub directives: Directives,
    /// `ARG` instructions before the first `FROM` (usable in `FROM` lines).
    pub global_args: Vec<Instruction>,
    /// The build stages, in file order.
    pub stages: Vec<Stage>,
    /// The parser's warnings (the linter adds its own).
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// Every instruction in file order (global ARGs, then each stage's FROM and body).
    pub fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.global_args.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.instruction).chain(s.commands.iter())),
        )
    }

    /// The stage named `name` (case-insensitive).
    pub fn stage_named(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name() == Some(lower.as_str()))
    }

    /// The escape token in effect.
    pub fn escape(&self) -> char {
        self.directives.escape
    }

    /// The shell lexer for this file's words (its escape token).
    pub fn lexer(&self) -> crate::shell::Lexer {
        crate::shell::Lexer::new(self.directives.escape)
    }
}

/// One build stage: its `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position in the file (0-based): what `--from=<n>` refers to.
    pub index: usize,
    /// The FROM line.
    pub instruction: Instruction,
    /// The FROM line's content.
    pub from: FromCommand,
    /// The stage body.
    pub commands: Vec<Instruction>,
}

impl Stage {
    /// The lower-cased stage name, when the stage has one.
    pub fn name(&self) -> Option<&str> {
        self.from.stage.as_ref().map(|s| s.name.as_str())
    }
}

/// Parses Dockerfile text. Never panics; every error carries the lines it is about.
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    let lines = read_lines(source, &wants_heredocs)?;
    let escape = lines.directives.escape;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for raw in &lines.instructions {
        let instruction = parse_instruction(raw, escape)?;
        match (&instruction.command, stages.last_mut()) {
            (Command::From(from), _) => stages.push(Stage {
                index: stages.len(),
                from: from.clone(),
                instruction,
                commands: Vec::new(),
            }),
            (_, Some(stage)) => stage.commands.push(instruction),
            (Command::Arg(_), None) => global_args.push(instruction),
            (_, None) => {
                return Err(ParseError::new(
                    instruction.span,
                    ParseErrorKind::NoBuildStage {
                        keyword: instruction.command.name().to_string(),
                    },
                ));
            }
        }
    }
    Ok(Dockerfile {
        directives: lines.directives,
        global_args,
        stages,
        warnings: lines.warnings,
    })
}

/// Parses one ONBUILD trigger (as stored in a base image's config) with the same parser, for
/// a child image that runs it right after its FROM.
pub fn parse_trigger(expression: &str) -> Result<Instruction, ParseError> {
    let mut triggers = parse_triggers(&[expression])?;
    // parse_triggers refuses empty input, so there is at least one instruction.
    Ok(triggers.swap_remove(0))
}

/// Parses a base image's ONBUILD triggers (one instruction each, heredoc bodies allowed).
pub fn parse_triggers(expressions: &[&str]) -> Result<Vec<Instruction>, ParseError> {
    let source = expressions.join("\n");
    let lines = read_lines(&source, &wants_heredocs)?;
    let escape = lines.directives.escape;
    lines
        .instructions
        .iter()
        .map(|raw| {
            let instruction = parse_instruction(raw, escape)?;
            check_trigger(&instruction.keyword, instruction.span)?;
            Ok(instruction)
        })
        .collect()
}

fn check_trigger(keyword: &str, span: Span) -> Result<(), ParseError> {
    let upper = keyword.to_ascii_uppercase();
    match upper.as_str() {
        "ONBUILD" => Err(ParseError::new(span, ParseErrorKind::OnbuildChaining)),
        "FROM" | "MAINTAINER" => Err(ParseError::new(
            span,
            ParseErrorKind::OnbuildTrigger { keyword: upper },
        )),
        _ => Ok(()),
    }
}

/// RUN, COPY and ADD in shell form read heredoc bodies (also behind ONBUILD).
fn wants_heredocs(line: &str, _escape: char) -> bool {
    let (keyword, _, rest) = split_command(line);
    let (keyword, rest) = if keyword.eq_ignore_ascii_case("onbuild") {
        let (keyword, _, rest) = split_command(rest);
        (keyword, rest)
    } else {
        (keyword, rest)
    };
    ["run", "copy", "add"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
        && !matches!(parse_args(rest), JsonArgs::Strings(_))
}

pub(crate) fn parse_instruction(
    raw: &RawInstruction,
    escape: char,
) -> Result<Instruction, ParseError> {
    let (keyword, flag_words, rest) = split_command(&raw.line);
    let fail = |kind| ParseError::new(raw.span, kind);
    let command = parse_command(keyword, &flag_words, rest, raw, escape).map_err(fail)?;
    Ok(Instruction {
        span: raw.span,
        keyword: keyword.to_string(),
        original: raw.line.clone(),
        comments: raw.comments.clone(),
        command,
    })
}

use FlagType::{Bool, List, String as Str};

fn no_flags(flags: &[String]) -> Result<(), ParseErrorKind> {
    Flags::parse(flags, &[]).map(|_| ())
}

fn parse_command(
    keyword: &str,
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
    escape: char,
) -> Result<Command, ParseErrorKind> {
    let lower = keyword.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "from" => Command::From(parse_from(flag_words, rest)?),
        "run" => Command::Run(parse_run(flag_words, rest, raw)?),
        "cmd" => {
            no_flags(flag_words)?;
            Command::Cmd(command_line(rest)?)
        }
        "entrypoint" => {
            no_flags(flag_words)?;
            Command::Entrypoint(command_line(rest)?)
        }
        "shell" => {
            no_flags(flag_words)?;
            match command_line(rest)? {
                CommandLine::Exec(args) if !args.is_empty() => Command::Shell(args),
                CommandLine::Exec(_) => {
                    return Err(ParseErrorKind::AtLeastOneArgument {
                        instruction: "SHELL",
                    });
                }
                CommandLine::Shell(_) => {
                    return Err(ParseErrorKind::NotJson {
                        instruction: "SHELL",
                    });
                }
            }
        }
        "env" => {
            no_flags(flag_words)?;
            Command::Env(key_values(rest, escape, "ENV")?)
        }
        "label" => {
            no_flags(flag_words)?;
            Command::Label(key_values(rest, escape, "LABEL")?)
        }
        "arg" => {
            no_flags(flag_words)?;
            Command::Arg(parse_arg(rest, escape)?)
        }
        "copy" | "add" => parse_copy(&lower, flag_words, rest, raw)?,
        "maintainer" => Command::Maintainer(one_string(flag_words, rest, "MAINTAINER")?),
        "user" => Command::User(one_string(flag_words, rest, "USER")?),
        "workdir" => Command::Workdir(one_string(flag_words, rest, "WORKDIR")?),
        "stopsignal" => Command::Stopsignal(one_string(flag_words, rest, "STOPSIGNAL")?),
        "expose" => {
            no_flags(flag_words)?;
            let ports = whitespace_words(rest);
            if ports.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument {
                    instruction: "EXPOSE",
                });
            }
            Command::Expose(ports)
        }
        "volume" => {
            no_flags(flag_words)?;
            let volumes = list(rest)?;
            if volumes.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument {
                    instruction: "VOLUME",
                });
            }
            let mut paths = Vec::with_capacity(volumes.0.len());
            for volume in volumes.0 {
                let volume = volume.trim();
                if volume.is_empty() {
                    return Err(ParseErrorKind::EmptyVolume);
                }
                paths.push(volume.to_string());
            }
            Command::Volume(paths)
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(flag_words, rest)?),
        "onbuild" => {
            no_flags(flag_words)?;
            if rest.is_empty() {
                return Err(ParseErrorKind::AtLeastOneArgument {
                    instruction: "ONBUILD",
                });
            }
            let (trigger, _, _) = split_command(rest);
            check_trigger(trigger, raw.span).map_err(|e| e.kind)?;
            // Heredoc bodies travel with the trigger so a child build can parse it alone.
            let mut expression = rest.to_string();
            for doc in &raw.heredocs {
                expression.push('\n');
                expression.push_str(&doc.raw);
                if !doc.raw.is_empty() && !doc.raw.ends_with('\n') {
                    expression.push('\n');
                }
                expression.push_str(&doc.name);
            }
            Command::Onbuild(OnbuildCommand { expression })
        }
        _ => {
            return Err(ParseErrorKind::UnknownInstruction {
                keyword: keyword.to_string(),
                suggestion: suggest(keyword, &KEYWORDS).map(str::to_string),
            });
        }
    })
}

fn one_string(
    flag_words: &[String],
    rest: &str,
    instruction: &'static str,
) -> Result<String, ParseErrorKind> {
    no_flags(flag_words)?;
    if rest.is_empty() {
        return Err(ParseErrorKind::ExactlyOneArgument { instruction });
    }
    Ok(rest.to_string())
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

impl Words {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn list(rest: &str) -> Result<Words, ParseErrorKind> {
    match parse_args(rest) {
        JsonArgs::Strings(args) => Ok(Words(args, true)),
        JsonArgs::NotStrings => Err(ParseErrorKind::JsonNotStringArray),
        JsonArgs::NotJson => Ok(Words(whitespace_words(rest), false)),
    }
}

fn parse_from(flag_words: &[String], rest: &str) -> Result<FromCommand, ParseErrorKind> {
    let flags = Flags::parse(flag_words, &[("platform", Str)])?;
    let args = whitespace_words(rest);
    let stage = match args.as_slice() {
        [_] => None,
        [_, as_keyword, name] if as_keyword.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(ParseErrorKind::InvalidStageName { name: name.clone() });
            }
            Some(StageName {
                name: lower,
                as_written: name.clone(),
                as_keyword: as_keyword.clone(),
            })
        }
        _ => return Err(ParseErrorKind::FromArguments),
    };
    Ok(FromCommand {
        image: args[0].clone(),
        stage,
        platform: flags.string("platform"),
    })
}

/// `^[a-z][a-z0-9-_.]*$` (on the lower-cased name).
pub(crate) fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn parse_run(
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
) -> Result<RunCommand, ParseErrorKind> {
    let flags = Flags::parse(
        flag_words,
        &[("mount", List), ("network", Str), ("security", Str)],
    )?;
    let mounts = flags
        .list("mount")
        .iter()
        .map(|value| {
            MountSpec::parse(value).map_err(|reason| ParseErrorKind::InvalidMount {
                mount: value.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let network = match flags.string("network").as_deref() {
        None => None,
        Some("default") => Some(NetworkMode::Default),
        Some("none") => Some(NetworkMode::None),
        Some("host") => Some(NetworkMode::Host),
        Some(other) => {
            return Err(ParseErrorKind::UnsupportedNetwork {
                value: other.to_string(),
            });
        }
    };
    let security = match flags.string("security").as_deref() {
        None => None,
        Some("sandbox") => Some(SecurityMode::Sandbox),
        Some("insecure") => Some(SecurityMode::Insecure),
        Some(other) => {
            return Err(ParseErrorKind::UnsupportedSecurity {
                value: other.to_string(),
            });
        }
    };
    Ok(RunCommand {
        command: command_line(rest)?,
        heredocs: raw.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

fn parse_copy(
    keyword: &str,
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
) -> Result<Command, ParseErrorKind> {
    let is_add = keyword == "add";
    let instruction = if is_add { "ADD" } else { "COPY" };
    let common: &[(&str, FlagType)] = &[
        ("chown", Str),
        ("chmod", Str),
        ("link", Bool),
        ("exclude", List),
        ("parents", Bool),
    ];
    let extra: &[(&str, FlagType)] = if is_add {
        &[("checksum", Str), ("keep-git-dir", Bool), ("unpack", Bool)]
    } else {
        &[("from", Str)]
    };
    let spec: Vec<(&'static str, FlagType)> = common.iter().chain(extra).copied().collect();
    let flags = Flags::parse(flag_words, &spec)?;
    let words = list(rest)?;
    let exec_form = words.1;
    let mut args = words.0;
    if args.len() < 2 {
        return Err(ParseErrorKind::NoDestination { instruction });
    }
    let dest = args.pop().unwrap_or_default();
    if heredoc::marker(&dest).is_some() {
        return Err(ParseErrorKind::HeredocDestination { instruction });
    }
    let sources = args
        .into_iter()
        .map(|word| {
            let doc =
                heredoc::marker(&word).and_then(|m| raw.heredocs.iter().find(|h| h.name == m.name));
            match doc {
                Some(doc) => CopySource::Heredoc(doc.clone()),
                None => CopySource::Path(word),
            }
        })
        .collect();
    let chmod = flags.string("chmod");
    if let Some(value) = &chmod
        && !value.contains('$')
        && Chmod::parse(value).is_none()
    {
        return Err(ParseErrorKind::InvalidChmod {
            value: value.clone(),
        });
    }
    let checksum = flags.string("checksum");
    if let Some(value) = &checksum
        && !value.contains('$')
        && !valid_checksum(value)
    {
        return Err(ParseErrorKind::InvalidChecksum {
            value: value.clone(),
        });
    }
    let copy = CopyCommand {
        sources,
        dest,
        exec_form,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod,
        link: flags.boolean("link").unwrap_or(false),
        exclude: flags.list("exclude").to_vec(),
        parents: flags.boolean("parents").unwrap_or(false),
        checksum,
        keep_git_dir: flags.boolean("keep-git-dir"),
        unpack: flags.boolean("unpack"),
    };
    Ok(if is_add {
        Command::Add(copy)
    } else {
        Command::Copy(copy)
    })
}

/// ENV/LABEL: `k=v k2="v 2"` or the legacy `ENV k v`.
fn key_values(
    rest: &str,
    escape: char,
    instruction: &'static str,
) -> Result<Vec<KeyValue>, ParseErrorKind> {
    let words = quoted_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(ParseErrorKind::AtLeastOneArgument { instruction });
    };
    if !first.contains('=') {
        let Some((key, value)) = split_first_word(rest) else {
            return Err(ParseErrorKind::MissingValue { instruction });
        };
        return Ok(vec![KeyValue {
            key: key.to_string(),
            value: value.to_string(),
            legacy: true,
        }]);
    }
    words
        .into_iter()
        .map(|word| {
            let Some((key, value)) = word.split_once('=') else {
                return Err(ParseErrorKind::MissingEquals { word });
            };
            if key.is_empty() {
                return Err(ParseErrorKind::BlankName { instruction });
            }
            Ok(KeyValue {
                key: key.to_string(),
                value: value.to_string(),
                legacy: false,
            })
        })
        .collect()
}

fn parse_arg(rest: &str, escape: char) -> Result<Vec<ArgDecl>, ParseErrorKind> {
    let words = quoted_words(rest, escape);
    if words.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument { instruction: "ARG" });
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(ParseErrorKind::BlankName { instruction: "ARG" }),
            Some((name, default)) => Ok(ArgDecl {
                name: name.to_string(),
                default: Some(default.to_string()),
            }),
            None => Ok(ArgDecl {
                name: word,
                default: None,
            }),
        })
        .collect()
}

fn parse_healthcheck(flag_words: &[String], rest: &str) -> Result<Healthcheck, ParseErrorKind> {
    let (kind, args) = match rest.find(char::is_whitespace) {
        Some(at) => (&rest[..at], rest[at..].trim_start()),
        None => (rest, ""),
    };
    if kind.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument {
            instruction: "HEALTHCHECK",
        });
    }
    let kind_upper = kind.to_ascii_uppercase();
    if kind_upper == "NONE" {
        if !args.is_empty() {
            return Err(ParseErrorKind::HealthcheckNoneArguments);
        }
        no_flags(flag_words)?;
        return Ok(Healthcheck::None);
    }
    let flags = Flags::parse(
        flag_words,
        &[
            ("interval", Str),
            ("timeout", Str),
            ("start-period", Str),
            ("start-interval", Str),
            ("retries", Str),
        ],
    )?;
    if kind_upper != "CMD" {
        return Err(ParseErrorKind::HealthcheckType {
            kind: kind.to_string(),
        });
    }
    let test = command_line(args)?;
    let empty = match &test {
        CommandLine::Shell(text) => text.is_empty(),
        CommandLine::Exec(args) => args.is_empty(),
    };
    if empty {
        return Err(ParseErrorKind::HealthcheckMissingCommand);
    }
    let duration = |flag: &'static str| -> Result<Option<Duration>, ParseErrorKind> {
        let Some(value) = flags.string(flag) else {
            return Ok(None);
        };
        let nanos =
            parse_go_duration(&value).map_err(|reason| ParseErrorKind::InvalidDuration {
                flag,
                value: value.clone(),
                reason,
            })?;
        if nanos < 1_000_000 {
            return Err(ParseErrorKind::DurationTooShort { flag, value });
        }
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        Ok(Some(Duration::from_nanos(nanos)))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(value) => Some(
            value
                .parse::<u32>()
                .ok()
                .filter(|&r| r >= 1 && i32::try_from(r).is_ok())
                .ok_or(ParseErrorKind::InvalidRetries { value })?,
        ),
    };
    Ok(Healthcheck::Check(HealthcheckConfig {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    }))
}
