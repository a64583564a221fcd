//! `RUN [--mount=...]... [--network=...] [--security=...] command`: the command (never
//! expanded by the frontend), its heredocs, and its typed flags.

use super::CommandLine;
use super::mount::{Mount, MountSpec, csv_fields, parse_fields};
use crate::error::{MountError, ParseErrorKind};
use crate::expand::ExpandErrorKind;
use crate::flags::{FlagType, Flags};
use crate::heredoc::Heredoc;
use crate::shell::{Env, Lexer, ShellError};
use crate::syntax::RawInstruction;

/// `RUN [--mount=...]... [--network=...] [--security=...] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand {
    /// The command; never expanded by the frontend (the shell does it).
    pub command: CommandLine,
    /// Heredocs opened on the line (`RUN <<EOF`, `RUN python3 <<PY > /out`).
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values, in order.
    pub mounts: Vec<MountSpec>,
    /// `--network`, when given.
    pub network: Option<NetworkMode>,
    /// `--security`, when given.
    pub security: Option<SecurityMode>,
}

/// What a RUN executes, with heredocs resolved the way BuildKit's `dispatchRun` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunProgram {
    /// Exec form: run these arguments as given.
    Exec(Vec<String>),
    /// Shell form: hand this text to the SHELL (`["/bin/sh", "-c", text]` by default). A
    /// command that is exactly one heredoc runs the heredoc's (tab-stripped) body; a command
    /// with heredocs among other words gets each body and delimiter appended after a newline,
    /// so the shell itself reads them.
    Shell(String),
    /// A command that is exactly one heredoc whose body starts with `#!`: write `content` to a
    /// file `name` (mode 0755) mounted read-only in `/dev/pipes/`, and run
    /// `/dev/pipes/<name>` through the SHELL.
    Script { name: String, content: String },
}

impl RunCommand {
    /// The program to run (see [`RunProgram`]).
    pub fn program(&self) -> RunProgram {
        let text = match &self.command {
            CommandLine::Exec(args) => return RunProgram::Exec(args.clone()),
            CommandLine::Shell(text) => text,
        };
        let Some(first) = self.heredocs.first() else {
            return RunProgram::Shell(text.clone());
        };
        let whole = crate::heredoc::marker(text.trim()).filter(|m| m.name == first.name);
        if whole.is_some() {
            if first.raw.starts_with("#!") {
                return RunProgram::Script {
                    name: first.name.clone(),
                    content: first.content(),
                };
            }
            return RunProgram::Shell(first.content());
        }
        let mut script = text.clone();
        for doc in &self.heredocs {
            script.push('\n');
            script.push_str(&doc.raw);
            script.push_str(&doc.name);
        }
        RunProgram::Shell(script)
    }
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

impl NetworkMode {
    /// The flag value (`default`, `none`, `host`).
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

impl SecurityMode {
    /// The flag value (`sandbox`, `insecure`).
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Sandbox => "sandbox",
            SecurityMode::Insecure => "insecure",
        }
    }
}

pub(crate) fn parse_run(
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
) -> Result<RunCommand, ParseErrorKind> {
    let flags = Flags::parse(
        flag_words,
        &[
            ("mount", FlagType::List),
            ("network", FlagType::String),
            ("security", FlagType::String),
        ],
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
        command: super::command_line(rest)?,
        heredocs: raw.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

enum FieldError {
    Shell(ShellError),
    Mount(MountError),
}

impl From<MountError> for FieldError {
    fn from(error: MountError) -> Self {
        FieldError::Mount(error)
    }
}

impl MountSpec {
    /// This mount with its field values expanded in `env`, then validated.
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Mount, ExpandErrorKind> {
        expand_mount(self, lexer, env)
    }
}

pub(crate) fn expand_mount(
    spec: &MountSpec,
    lexer: &Lexer,
    env: &dyn Env,
) -> Result<Mount, ExpandErrorKind> {
    let invalid = |reason| ParseErrorKind::InvalidMount {
        mount: spec.raw.clone(),
        reason,
    };
    let fields = csv_fields(&spec.raw).map_err(invalid)?;
    let mut expand = |_key: &str, value: &str| -> Result<String, FieldError> {
        lexer
            .expand_word(value, env)
            .map(|e| e.value)
            .map_err(FieldError::Shell)
    };
    match parse_fields(&fields, &mut expand) {
        Ok(mount) => Ok(mount),
        Err(FieldError::Shell(error)) => Err(error.into()),
        Err(FieldError::Mount(reason)) => Err(invalid(reason).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruction::Command;
    use crate::parse::parse;

    fn program(source: &str) -> RunProgram {
        let df = parse(&format!("FROM scratch\n{source}")).expect("parses");
        match &df.stages[0].commands[0].command {
            Command::Run(run) => run.program(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_programs_follow_buildkit_heredoc_rules() {
        let cases = [
            ("RUN echo hi\n", RunProgram::Shell("echo hi".into())),
            (
                "RUN [\"a\", \"b\"]\n",
                RunProgram::Exec(vec!["a".into(), "b".into()]),
            ),
            (
                "RUN <<EOF\necho a\necho b\nEOF\n",
                RunProgram::Shell("echo a\necho b\n".into()),
            ),
            (
                "RUN <<-EOF\n\techo tab\n\tEOF\n",
                RunProgram::Shell("echo tab\n".into()),
            ),
            (
                "RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n",
                RunProgram::Script {
                    name: "EOF".into(),
                    content: "#!/usr/bin/env python3\nprint(1)\n".into(),
                },
            ),
            (
                "RUN python3 <<PY > /out\nprint(1)\nPY\n",
                RunProgram::Shell("python3 <<PY > /out\nprint(1)\nPY".into()),
            ),
            (
                "RUN <<A cat && <<B cat\n1\nA\n2\nB\n",
                RunProgram::Shell("<<A cat && <<B cat\n1\nA\n2\nB".into()),
            ),
        ];
        for (source, want) in cases {
            assert_eq!(program(source), want, "{source:?}");
        }
    }
}
