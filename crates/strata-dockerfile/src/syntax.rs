//! The line layer: physical lines → logical instructions, as BuildKit's `parser.Parse` reads them.
//!
//! This is where the quirks live: parser directives only on the first lines (a comment, an empty
//! line or an instruction ends them), the escape token doubling as line continuation (unless it
//! is itself escaped), comments and blank lines skipped inside a continuation (blank ones with a
//! warning), a continuation still open at end of file accepted, and heredoc bodies read after the
//! line that opens them. Each logical instruction keeps its line span and its joined text.

use crate::error::{ParseError, ParseErrorKind, Span, Warning, WarningKind};
use crate::heredoc::{self, Heredoc};

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` value, when present (accepted and reported; strata is its own frontend).
    pub syntax: Option<Directive>,
    /// `# escape=` value (`\` by default, or `` ` ``).
    pub escape: char,
    /// The `# escape=` line, when present.
    pub escape_directive: Option<Directive>,
    /// `# check=` configuration, when present.
    pub check: Option<CheckDirective>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            escape_directive: None,
            check: None,
        }
    }
}

/// One directive line: its value and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The value, trimmed.
    pub value: String,
    /// The directive's line.
    pub span: Span,
}

/// `# check=skip=RuleA,RuleB;error=true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckDirective {
    /// Rule names to skip, as written.
    pub skip: Vec<String>,
    /// `skip=all`: every rule is skipped.
    pub skip_all: bool,
    /// `error=true`: warnings fail the build.
    pub error: bool,
    /// The directive's line.
    pub span: Span,
}

/// A logical line: one instruction's text with its span, before instruction-specific parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawInstruction {
    pub span: Span,
    /// The joined line (continuations removed), as BuildKit's `Node.Original`.
    pub line: String,
    /// Comment lines directly above the instruction, `#` and surrounding spaces removed.
    pub comments: Vec<String>,
    /// Heredoc bodies read after the line, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug)]
pub(crate) struct Lines {
    pub directives: Directives,
    pub instructions: Vec<RawInstruction>,
    pub warnings: Vec<Warning>,
}

struct DirectiveState {
    done: bool,
    seen_syntax: bool,
    seen_escape: bool,
    seen_check: bool,
}

/// Splits `source` into logical instructions. Heredocs are read for the instructions that
/// `wants_heredocs` accepts (RUN/COPY/ADD in shell form, also behind ONBUILD).
pub(crate) fn read_lines(
    source: &str,
    wants_heredocs: &dyn Fn(&str, char) -> bool,
) -> Result<Lines, ParseError> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let physical: Vec<&str> = physical_lines(source);
    let mut directives = Directives::default();
    let mut state = DirectiveState {
        done: false,
        seen_syntax: false,
        seen_escape: false,
        seen_check: false,
    };
    // at most one instruction per physical line: one allocation instead of repeated growth
    // (the list is moved out and dropped by the parser)
    let mut instructions = Vec::with_capacity(physical.len());
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut index = 0;

    while index < physical.len() {
        let raw = trim_newline(physical[index]);
        index += 1;
        let line_number = index;
        let stripped = raw.trim_start();
        if !state.done && directive_line(stripped, line_number, &mut state, &mut directives)? {
            continue;
        }
        if let Some(comment) = stripped.strip_prefix('#') {
            comments.push(comment.trim().to_string());
            continue;
        }
        let escape = directives.escape;
        let (first, mut complete) = trim_continuation(stripped, escape);
        if complete && first.is_empty() {
            // An empty line ends the comment block that belongs to the next instruction.
            comments.clear();
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !complete && index < physical.len() {
            let next = trim_newline(physical[index]);
            index += 1;
            if !state.done {
                state.done = true;
            }
            let trimmed = next.trim_start();
            if trimmed.starts_with('#') {
                continue;
            }
            if trimmed.is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, done) = trim_continuation(next, escape);
            line.push_str(part);
            complete = done;
        }
        let mut span = Span::new(line_number, index);
        if empty_continuation {
            warnings.push(Warning {
                span,
                kind: WarningKind::EmptyContinuationLine {
                    instruction: line.clone(),
                },
            });
        }
        let mut heredocs = Vec::new();
        if wants_heredocs(&line, escape) {
            for marker in heredoc::markers(&line) {
                let mut body = String::new();
                let mut terminated = false;
                while index < physical.len() {
                    let text = physical[index];
                    index += 1;
                    let mut candidate = trim_newline(text);
                    if marker.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    body.push_str(text);
                }
                if !terminated {
                    return Err(ParseError::new(
                        Span::new(line_number, index),
                        ParseErrorKind::UnterminatedHeredoc { name: marker.name },
                    ));
                }
                heredocs.push(Heredoc::new(marker, body));
            }
            span = Span::new(line_number, index);
        }
        instructions.push(RawInstruction {
            span,
            line,
            comments: std::mem::take(&mut comments),
            heredocs,
        });
    }
    if instructions.is_empty() {
        return Err(ParseError::new(
            Span::line(physical.len().max(1)),
            ParseErrorKind::NoInstructions,
        ));
    }
    Ok(Lines {
        directives,
        instructions,
        warnings,
    })
}

/// Lines with their terminators kept (heredoc bodies are byte-exact).
fn physical_lines(source: &str) -> Vec<&str> {
    source.split_inclusive('\n').collect()
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Strips a trailing escape token (line continuation). Returns the line and whether it is
/// complete. The token continues the line only when it is the last non-blank character and is
/// not itself escaped (`foo \\` ends the line with a literal backslash pair).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    // char comparisons: `strip_suffix(char)` calls memcmp for every line of the file
    let mut body = line.trim_end_matches([' ', '\t']).chars();
    if body.next_back() == Some(escape) {
        let before = body.as_str();
        // not itself escaped (`ends_with` would be the memcmp again)
        if !matches!(before.chars().next_back(), Some(c) if c == escape) {
            return (before, false);
        }
    }
    (line, true)
}

/// Recognizes `# key=value` at the top of the file; anything else ends directive parsing.
/// Returns whether the line was a directive.
fn directive_line(
    stripped: &str,
    line: usize,
    state: &mut DirectiveState,
    directives: &mut Directives,
) -> Result<bool, ParseError> {
    let Some((key, value)) = split_directive(stripped) else {
        state.done = true;
        return Ok(false);
    };
    let span = Span::line(line);
    let key = key.to_ascii_lowercase();
    let seen = match key.as_str() {
        "syntax" => &mut state.seen_syntax,
        "escape" => &mut state.seen_escape,
        "check" => &mut state.seen_check,
        _ => {
            state.done = true;
            return Ok(false);
        }
    };
    if *seen {
        return Err(ParseError::new(
            span,
            ParseErrorKind::DuplicateDirective { name: key },
        ));
    }
    *seen = true;
    let directive = Directive {
        value: value.to_string(),
        span,
    };
    match key.as_str() {
        "syntax" => directives.syntax = Some(directive),
        "escape" => {
            directives.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::new(
                        span,
                        ParseErrorKind::InvalidEscapeToken {
                            value: value.to_string(),
                        },
                    ));
                }
            };
            directives.escape_directive = Some(directive);
        }
        _ => directives.check = Some(parse_check(value, span)?),
    }
    Ok(true)
}

/// `#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

fn parse_check(value: &str, span: Span) -> Result<CheckDirective, ParseError> {
    let mut check = CheckDirective {
        span,
        ..CheckDirective::default()
    };
    let invalid = |option: &str| {
        ParseError::new(
            span,
            ParseErrorKind::InvalidCheckOption {
                directive: value.to_string(),
                option: option.to_string(),
            },
        )
    };
    for part in value.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, option)) = part.split_once('=') else {
            return Err(invalid(part));
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "skip" => {
                for rule in option.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    if rule.eq_ignore_ascii_case("all") {
                        check.skip_all = true;
                    } else {
                        check.skip.push(rule.to_string());
                    }
                }
            }
            "error" => {
                check.error = match option.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "t" => true,
                    "false" | "0" | "f" => false,
                    _ => return Err(invalid(part)),
                }
            }
            _ => return Err(invalid(part)),
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_heredocs(_: &str, _: char) -> bool {
        false
    }

    #[test]
    fn continuation_table() {
        let cases = [
            ("RUN a \\", '\\', "RUN a ", false),
            ("RUN a \\  \t", '\\', "RUN a ", false),
            ("\\", '\\', "", false),
            ("RUN a \\\\", '\\', "RUN a \\\\", true),
            ("RUN a `", '`', "RUN a ", false),
            ("RUN a \\", '`', "RUN a \\", true),
            ("RUN a", '\\', "RUN a", true),
        ];
        for (line, escape, want, complete) in cases {
            assert_eq!(
                trim_continuation(line, escape),
                (want, complete),
                "{line:?}"
            );
        }
    }

    #[test]
    fn directive_table() {
        let cases = [
            ("# escape=`", Some(("escape", "`"))),
            ("#escape = \\ ", Some(("escape", "\\"))),
            (
                "# Syntax=docker/dockerfile:1",
                Some(("Syntax", "docker/dockerfile:1")),
            ),
            (
                "# check=skip=all;error=true",
                Some(("check", "skip=all;error=true")),
            ),
            ("# not a directive", None),
            ("# 1x=2", None),
            ("# key=", None),
        ];
        for (line, want) in cases {
            assert_eq!(split_directive(line), want, "{line:?}");
        }
    }

    #[test]
    fn directives_stop_after_first_non_directive_line() {
        let lines = read_lines("# syntax=x\n\n# escape=`\nFROM a\n", &no_heredocs).unwrap();
        assert_eq!(lines.directives.escape, '\\');
        assert_eq!(lines.directives.syntax.unwrap().value, "x");
    }

    #[test]
    fn duplicate_directive_is_refused() {
        let err = read_lines("# escape=`\n# ESCAPE=\\\nFROM a\n", &no_heredocs).unwrap_err();
        assert_eq!(err.span, Span::line(2));
        assert_eq!(
            err.kind,
            ParseErrorKind::DuplicateDirective {
                name: "escape".into()
            }
        );
    }

    #[test]
    fn comments_and_blank_lines_inside_continuations() {
        let lines = read_lines(
            "FROM a\nRUN one \\\n  # comment\n\n  two \\\n",
            &no_heredocs,
        )
        .unwrap();
        assert_eq!(lines.instructions[1].line, "RUN one   two ");
        assert_eq!(lines.instructions[1].span, Span::new(2, 5));
        assert_eq!(lines.warnings.len(), 1);
    }
}
