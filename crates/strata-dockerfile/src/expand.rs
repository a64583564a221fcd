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

use crate::error::{ParseErrorKind, Span, render_snippet};
use crate::instruction::{
    Command, Instruction, expand_args, expand_copy, expand_mount, expand_pairs, exposed_ports,
};
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

/// The variables an instruction sees in a stage: ENV values (the base image's config env and
/// the stage's ENVs) take precedence over ARG values, as in BuildKit.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `NAME=value` from the image config and ENV instructions; the last definition wins.
    pub env: &'a [(String, String)],
    /// ARGs in scope with their resolved values; the last definition wins.
    pub args: &'a [(String, String)],
}

impl Env for Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.env.lookup(name).or_else(|| self.args.lookup(name))
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
        Ok(match self {
            Command::Env(kvs) => Command::Env(expand_pairs(kvs, lexer, env)?),
            Command::Label(kvs) => Command::Label(expand_pairs(kvs, lexer, env)?),
            Command::Arg(decls) => Command::Arg(expand_args(decls, lexer, env)?),
            Command::Expose(ports) => {
                let ports = words(ports)?;
                exposed_ports(&ports)?;
                Command::Expose(ports)
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruction::{CommandLine, CopySource};
    use crate::parse::parse;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Parses `line` as the second instruction of a one-stage file and expands it.
    fn expand_line(line: &str, env: &[(&str, &str)]) -> Result<Command, ExpandError> {
        let source = format!("FROM scratch\n{line}\n");
        let df = parse(&source).expect("parses");
        let lexer = df.lexer();
        df.stages[0].commands[0].expand(&lexer, &vars(env))
    }

    #[test]
    fn env_and_label_expand_keys_and_values_with_quotes_removed() {
        let got = expand_line(r#"ENV A="x $B" $K=v C='$B'"#, &[("B", "b"), ("K", "key")]).unwrap();
        let Command::Env(kvs) = got else {
            panic!("{got:?}")
        };
        let pairs: Vec<(&str, &str)> = kvs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
            .collect();
        assert_eq!(pairs, [("A", "x b"), ("key", "v"), ("C", "$B")]);
    }

    #[test]
    fn run_bodies_are_never_expanded_but_mounts_are() {
        let got = expand_line(
            "RUN --mount=type=cache,target=$HOME/.cache,id=${ID:-x} echo $HOME",
            &[("HOME", "/root")],
        )
        .unwrap();
        let Command::Run(run) = got else {
            panic!("{got:?}")
        };
        assert_eq!(run.command, CommandLine::Shell("echo $HOME".into()));
        let mount = run.mounts[0].mount.as_ref().expect("expanded");
        assert_eq!(mount.target.as_deref(), Some("/root/.cache"));
        assert_eq!(mount.id.as_deref(), Some("x"));
    }

    #[test]
    fn copy_paths_flags_and_heredocs() {
        let line = "COPY --chown=$U:$G --chmod=$M --exclude=*.$EXT \"a.$EXT\" <<EOF <<'RAW' $DEST\nhello \"$U\"\nEOF\nkeep $U\nRAW";
        let env = [
            ("U", "app"),
            ("G", "staff"),
            ("M", "0640"),
            ("EXT", "tmp"),
            ("DEST", "/srv/"),
        ];
        let got = expand_line(line, &env).unwrap();
        let Command::Copy(copy) = got else {
            panic!("{got:?}")
        };
        assert_eq!(copy.chown.as_deref(), Some("app:staff"));
        assert_eq!(copy.literal_chmod(), Some(crate::Chmod::Octal(0o640)));
        assert_eq!(copy.exclude, ["*.tmp"]);
        assert_eq!(copy.dest, "/srv/");
        let [
            CopySource::Path(path),
            CopySource::Heredoc(doc),
            CopySource::Heredoc(raw),
        ] = copy.sources.as_slice()
        else {
            panic!("{:?}", copy.sources)
        };
        assert_eq!(path, "a.tmp");
        assert_eq!(doc.content(), "hello \"app\"\n");
        assert_eq!(raw.content(), "keep $U\n");
    }

    #[test]
    fn expanded_flags_are_validated() {
        let err = expand_line("COPY --chmod=$M a b", &[("M", "rwx")]).unwrap_err();
        assert_eq!(err.span, Span::line(2));
        assert_eq!(
            err.kind,
            ExpandErrorKind::Invalid(ParseErrorKind::InvalidChmod {
                value: "rwx".into()
            })
        );
        let err = expand_line("RUN --mount=type=$T,target=/x true", &[("T", "nfs")]).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ExpandErrorKind::Invalid(ParseErrorKind::InvalidMount { .. })
            ),
            "{err:?}"
        );
        let err = expand_line("WORKDIR ${DIR:?must be set}", &[]).unwrap_err();
        assert!(matches!(err.kind, ExpandErrorKind::Shell(_)), "{err:?}");
    }

    #[test]
    fn scope_prefers_env_over_args() {
        let env = vars(&[("V", "from-env")]);
        let args = vars(&[("V", "from-arg"), ("A", "arg-only")]);
        let scope = Scope {
            env: &env,
            args: &args,
        };
        assert_eq!(scope.lookup("V"), Some("from-env"));
        assert_eq!(scope.lookup("A"), Some("arg-only"));
        assert_eq!(scope.lookup("X"), None);
    }

    #[test]
    fn copy_heredoc_bodies_escape_with_backslash_under_backtick_escape() {
        let source = "# escape=`\nFROM scratch\nCOPY <<EOF /x\n$D `$D \\$D C:\\t\nEOF\n";
        let df = parse(source).unwrap();
        let got = df.stages[0].commands[0]
            .expand(&df.lexer(), &vars(&[("D", "dir")]))
            .unwrap();
        let Command::Copy(copy) = got else {
            panic!("{got:?}")
        };
        let [CopySource::Heredoc(doc)] = copy.sources.as_slice() else {
            panic!("{:?}", copy.sources)
        };
        assert_eq!(doc.content(), "dir `dir $D C:t\n");
    }

    #[test]
    fn env_doubling_itself_is_refused_at_its_line_instead_of_growing_exponentially() {
        // 30 doublings would reach 1 GiB: walk the stage as the engine does
        let source = format!("FROM scratch\nENV A=x\n{}", "ENV A=$A$A\n".repeat(30));
        let df = parse(&source).unwrap();
        let lexer = df.lexer();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut failure = None;
        for instruction in &df.stages[0].commands {
            match instruction.expand(&lexer, &env) {
                Ok(Command::Env(pairs)) => {
                    env.extend(pairs.into_iter().map(|kv| (kv.key, kv.value)));
                }
                Ok(other) => panic!("{other:?}"),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let err = failure.expect("the doubling is refused");
        // "x" doubled 21 times is 2 MiB: line 2 + 21
        assert_eq!(err.span, Span::line(23));
        assert_eq!(
            err.kind,
            ExpandErrorKind::Shell(crate::shell::ShellError {
                word: "$A$A".into(),
                offset: 2,
                kind: crate::shell::ShellErrorKind::ExpansionTooLong {
                    limit: crate::shell::MAX_EXPANSION_GROWTH
                },
            })
        );
        let rendered = err.render("Dockerfile", &source);
        assert!(
            rendered.starts_with("Dockerfile:23\n") && rendered.contains(" 23 | >>> ENV A=$A$A\n"),
            "{rendered}"
        );
    }

    #[test]
    fn backtick_escape_applies_to_expansion() {
        let source = "# escape=`\nFROM scratch\nWORKDIR C:\\$D`$X\n";
        let df = parse(source).unwrap();
        let got = df.stages[0].commands[0]
            .expand(&df.lexer(), &vars(&[("D", "dir")]))
            .unwrap();
        assert_eq!(got, Command::Workdir("C:\\dir$X".into()));
    }
}
