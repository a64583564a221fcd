//! The build-time expansion step: an instruction's words, expanded in the environment the
//! instruction sees.
//!
//! BuildKit expands the words of ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
//! WORKDIR and ARG (and `--chown`, `--chmod`, `--exclude`, `--checksum` and the `--mount`
//! fields) with its shell lexer, one word at a time without splitting; RUN, CMD, ENTRYPOINT,
//! SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are left to the shell or the child build. The
//! values an instruction sees are those before it: `ENV a=1 b=$a` gives `b` the previous `a`.
//! COPY/ADD heredoc bodies expand (with quotes kept) unless their delimiter was quoted.
//! `FROM` and `--from` are resolved by [`plan`](crate::plan()), which sees only ARGs.

use crate::copy::{Chmod, valid_checksum};
use crate::error::MountError;
use crate::error::{ParseErrorKind, Span, render_snippet};
use crate::instruction::*;
use crate::mount::{Mount, MountSpec, csv_fields, parse_fields};
use crate::shell::{Env, Lexer, ShellError};

/// An instruction whose words cannot be expanded, or whose expanded flags are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct ExpandError {
    /// The instruction's lines.
    pub span: Span,
    /// What went wrong.
    pub kind: ExpandErrorKind,
}

impl ExpandError {
    /// BuildKit's snippet for this error over the Dockerfile text.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        render_snippet(file_name, source, self.span, &self.to_string())
    }
}

/// Why expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    /// The lexer refused a word (unterminated quote, `${v:?}` unset, bad substitution).
    #[error(transparent)]
    Shell(#[from] ShellError),
    /// The expanded value is not valid for its flag (`--chmod=$MODE` with `MODE=abc`).
    #[error(transparent)]
    Invalid(#[from] ParseErrorKind),
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

impl Instruction {
    /// The command with its words expanded in `env`; `lexer` carries the Dockerfile's escape
    /// token (`Lexer::new(dockerfile.escape())`). After expansion every RUN `MountSpec::mount`
    /// is `Some`, COPY/ADD paths have their quotes removed, heredoc bodies are final.
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Command, ExpandError> {
        self.command.expand(lexer, env).map_err(|kind| ExpandError {
            span: self.span,
            kind,
        })
    }
}

impl Command {
    /// See [`Instruction::expand`]; this variant carries no span.
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Command, ExpandErrorKind> {
        let word = |w: &String| -> Result<String, ExpandErrorKind> {
            Ok(lexer.expand_word(w, env)?.value)
        };
        let words = |ws: &[String]| -> Result<Vec<String>, ExpandErrorKind> {
            ws.iter().map(word).collect()
        };
        let pairs = |kvs: &[KeyValue]| -> Result<Vec<KeyValue>, ExpandErrorKind> {
            kvs.iter()
                .map(|kv| {
                    Ok(KeyValue {
                        key: word(&kv.key)?,
                        value: word(&kv.value)?,
                        legacy: kv.legacy,
                    })
                })
                .collect()
        };
        Ok(match self {
            Command::Env(kvs) => Command::Env(pairs(kvs)?),
            Command::Label(kvs) => Command::Label(pairs(kvs)?),
            Command::Arg(decls) => Command::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: word(&d.name)?,
                            default: d.default.as_ref().map(word).transpose()?,
                        })
                    })
                    .collect::<Result<_, ExpandErrorKind>>()?,
            ),
            Command::Expose(ports) => Command::Expose(words(ports)?),
            Command::Volume(paths) => Command::Volume(words(paths)?),
            Command::User(user) => Command::User(word(user)?),
            Command::Workdir(path) => Command::Workdir(word(path)?),
            Command::Stopsignal(signal) => Command::Stopsignal(word(signal)?),
            Command::Copy(copy) => Command::Copy(expand_copy(copy, lexer, env)?),
            Command::Add(copy) => Command::Add(expand_copy(copy, lexer, env)?),
            Command::Run(run) => {
                let mut run = run.clone();
                for spec in &mut run.mounts {
                    spec.mount = Some(expand_mount(spec, lexer, env)?);
                }
                Command::Run(run)
            }
            Command::From(_)
            | Command::Cmd(_)
            | Command::Entrypoint(_)
            | Command::Shell(_)
            | Command::Healthcheck(_)
            | Command::Maintainer(_)
            | Command::Onbuild(_) => self.clone(),
        })
    }
}

fn expand_copy(
    copy: &CopyCommand,
    lexer: &Lexer,
    env: &dyn Env,
) -> Result<CopyCommand, ExpandErrorKind> {
    let word =
        |w: &str| -> Result<String, ExpandErrorKind> { Ok(lexer.expand_word(w, env)?.value) };
    let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
    // Heredoc bodies keep their quotes: only variables and escapes are processed.
    let body_lexer = Lexer::new(lexer.escape()).skip_process_quotes(true);
    let sources = copy
        .sources
        .iter()
        .map(|source| {
            Ok(match source {
                CopySource::Path(path) => CopySource::Path(word(path)?),
                CopySource::Heredoc(doc) if doc.expand => {
                    let mut doc = doc.clone();
                    doc.raw = body_lexer.expand_word(&doc.content(), env)?.value;
                    doc.chomp = false;
                    CopySource::Heredoc(doc)
                }
                CopySource::Heredoc(doc) => CopySource::Heredoc(doc.clone()),
            })
        })
        .collect::<Result<Vec<_>, ExpandErrorKind>>()?;
    let chmod = opt(&copy.chmod)?;
    if let Some(value) = &chmod
        && Chmod::parse(value).is_none()
    {
        return Err(ParseErrorKind::InvalidChmod {
            value: value.clone(),
        }
        .into());
    }
    let checksum = opt(&copy.checksum)?;
    if let Some(value) = &checksum
        && !valid_checksum(value)
    {
        return Err(ParseErrorKind::InvalidChecksum {
            value: value.clone(),
        }
        .into());
    }
    Ok(CopyCommand {
        sources,
        dest: word(&copy.dest)?,
        exec_form: copy.exec_form,
        from: copy.from.clone(),
        chown: opt(&copy.chown)?,
        chmod,
        link: copy.link,
        exclude: copy
            .exclude
            .iter()
            .map(|p| word(p))
            .collect::<Result<_, _>>()?,
        parents: copy.parents,
        checksum,
        keep_git_dir: copy.keep_git_dir,
        unpack: copy.unpack,
    })
}

impl MountSpec {
    /// This mount with its field values expanded in `env`, then validated.
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Mount, ExpandErrorKind> {
        expand_mount(self, lexer, env)
    }
}

fn expand_mount(spec: &MountSpec, lexer: &Lexer, env: &dyn Env) -> Result<Mount, ExpandErrorKind> {
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
