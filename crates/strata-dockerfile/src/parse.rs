//! Logical lines → typed instructions → a [`Dockerfile`] of global ARGs and stages.

use crate::error::{ParseError, ParseErrorKind, Warning};
use crate::instruction::{Command, FromCommand, Instruction, check_trigger, parse_command};
use crate::json::{JsonArgs, parse_args};
use crate::syntax::{Directives, RawInstruction, read_lines};
use crate::words::{split_command, split_keyword};

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
    // Where each FROM is, so that every stage body is allocated once at its final size (an
    // `Instruction` is large; growing the vectors copied each one several times).
    let froms: Vec<usize> = (lines.instructions.iter().enumerate())
        .filter(|(_, raw)| split_keyword(&raw.line).0.eq_ignore_ascii_case("from"))
        .map(|(at, _)| at)
        .collect();
    let count = lines.instructions.len();
    let body_len = |stage: usize| match froms.get(stage) {
        Some(&from) => froms
            .get(stage + 1)
            .unwrap_or(&count)
            .saturating_sub(from + 1),
        None => 0,
    };
    let mut global_args = Vec::with_capacity(froms.first().copied().unwrap_or(0));
    let mut stages: Vec<Stage> = Vec::with_capacity(froms.len());
    for raw in lines.instructions {
        let instruction = parse_instruction(raw, escape)?;
        match (&instruction.command, stages.last_mut()) {
            (Command::From(from), _) => stages.push(Stage {
                index: stages.len(),
                from: from.clone(),
                instruction,
                commands: Vec::with_capacity(body_len(stages.len())),
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

/// Parses Dockerfile bytes: invalid UTF-8 sequences become U+FFFD (a Dockerfile's syntax is
/// ASCII; only words can carry other bytes), so any input gives a Dockerfile or an error.
pub fn parse_bytes(source: &[u8]) -> Result<Dockerfile, ParseError> {
    parse(&String::from_utf8_lossy(source))
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
        .into_iter()
        .map(|raw| {
            let instruction = parse_instruction(raw, escape)?;
            check_trigger(&instruction.keyword)
                .map_err(|kind| ParseError::new(instruction.span, kind))?;
            Ok(instruction)
        })
        .collect()
}

/// RUN, COPY and ADD in shell form read heredoc bodies (also behind ONBUILD).
fn wants_heredocs(line: &str, _escape: char) -> bool {
    if !line.contains("<<") {
        return false;
    }
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

/// Types one logical line; the line's text and comments move into the instruction.
pub(crate) fn parse_instruction(
    raw: RawInstruction,
    escape: char,
) -> Result<Instruction, ParseError> {
    let (keyword, flag_words, rest) = split_command(&raw.line);
    let command = parse_command(keyword, &flag_words, rest, &raw, escape)
        .map_err(|kind| ParseError::new(raw.span, kind))?;
    let keyword = keyword.to_string();
    Ok(Instruction {
        span: raw.span,
        keyword,
        original: raw.line,
        comments: raw.comments,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruction::{CommandLine, OnbuildCommand};

    #[test]
    fn onbuild_triggers_round_trip_through_the_parser() {
        let source = "FROM alpine\nONBUILD RUN <<EOF\necho triggered\nEOF\nONBUILD COPY --chown=app . /src\n";
        let df = parse(source).unwrap();
        let expressions: Vec<&str> = df.stages[0]
            .commands
            .iter()
            .filter_map(|i| match &i.command {
                Command::Onbuild(OnbuildCommand { expression }) => Some(expression.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            expressions,
            ["RUN <<EOF\necho triggered\nEOF", "COPY --chown=app . /src"]
        );
        let triggers = parse_triggers(&expressions).unwrap();
        let Command::Run(run) = &triggers[0].command else {
            panic!("{:?}", triggers[0]);
        };
        assert_eq!(run.command, CommandLine::Shell("<<EOF".into()));
        assert_eq!(run.heredocs[0].content(), "echo triggered\n");
        let Command::Copy(copy) = &triggers[1].command else {
            panic!("{:?}", triggers[1]);
        };
        assert_eq!(copy.chown.as_deref(), Some("app"));
    }

    #[test]
    fn stage_bodies_are_allocated_at_their_final_size() {
        // a large Instruction used to be copied on every growth of these vectors
        let source = "ARG A\nARG B\nfrom a AS one\nRUN x\nRUN y\n  FROM\tb\nCOPY <<EOF /x\nFROM c\nEOF\nFrom c\n";
        let df = parse(source).unwrap();
        assert_eq!(df.global_args.capacity(), 2);
        let bodies: Vec<(usize, usize)> = df
            .stages
            .iter()
            .map(|s| (s.commands.len(), s.commands.capacity()))
            .collect();
        assert_eq!(bodies, [(2, 2), (1, 1), (0, 0)]);
    }

    #[test]
    fn forbidden_triggers_are_refused() {
        for (trigger, want) in [
            ("ONBUILD RUN x", ParseErrorKind::OnbuildChaining),
            (
                "from alpine",
                ParseErrorKind::OnbuildTrigger {
                    keyword: "FROM".into(),
                },
            ),
            (
                "MAINTAINER me",
                ParseErrorKind::OnbuildTrigger {
                    keyword: "MAINTAINER".into(),
                },
            ),
        ] {
            assert_eq!(parse_trigger(trigger).unwrap_err().kind, want, "{trigger}");
        }
        assert!(parse_trigger("").is_err());
    }
}
