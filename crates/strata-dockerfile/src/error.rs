//! Errors and warnings with source spans, and BuildKit's snippet rendering.
//!
//! Every failure of the frontend points at the lines that caused it. [`render_snippet`] prints
//! the same block BuildKit (through buildx) prints, so users see the output they already know:
//! the file name and first failing line, a 20-dash rule, up to two context lines on each side of a
//! single failing line (one on each side of a multi-line range), `>>>` on the failing lines.

use crate::suggest::did_you_mean;
use std::fmt;

/// An inclusive range of 1-based source lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First line (1-based).
    pub start: usize,
    /// Last line (1-based, inclusive, `>= start`).
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`; an `end` before `start` collapses to `start`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// A single line.
    pub fn line(line: usize) -> Span {
        Span::new(line, line)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "line {}", self.start)
        } else {
            write!(f, "lines {}-{}", self.start, self.end)
        }
    }
}

/// Renders BuildKit's source snippet for `span` in `source`, followed by `ERROR: {message}`.
///
/// The layout follows BuildKit's `errdefs.Source.Print`: the text is split on `\n` (so a final
/// newline yields a last empty line), the context grows around the failing range until four lines
/// (single failing line) or two lines (a range) were added, and each row is ` %3d | >>> text`.
pub fn render_snippet(file_name: &str, source: &str, span: Span, message: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = source.split('\n').collect();
    let (mut start, mut end) = (span.start, span.end);
    if start >= 1 && start <= lines.len() {
        end = end.min(lines.len());
        let pad = if start == end { 4 } else { 2 };
        let first = start;
        let mut added = 0;
        while added < pad {
            if start > 1 {
                start -= 1;
                added += 1;
            }
            if end != lines.len() {
                end += 1;
                added += 1;
            }
            added += 1;
        }
        out.push_str(&format!("{file_name}:{first}\n--------------------\n"));
        for (number, text) in lines.iter().enumerate().take(end).skip(start - 1) {
            let number = number + 1;
            let marker = if number >= span.start && number <= span.end {
                ">>>"
            } else {
                "   "
            };
            // Source lines may end in '\r' (CRLF files); BuildKit prints them raw.
            out.push_str(&format!(" {number:3} | {marker} {text}\n"));
        }
        out.push_str("--------------------\n");
    }
    out.push_str(&format!("ERROR: {message}\n"));
    out
}

/// A parse failure: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {}: {kind}", span.start)]
pub struct ParseError {
    /// The lines of the failing instruction (or directive).
    pub span: Span,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(span: Span, kind: ParseErrorKind) -> ParseError {
        ParseError { span, kind }
    }

    /// BuildKit's snippet for this error over `source` (the text given to [`crate::parse`]).
    pub fn render(&self, file_name: &str, source: &str) -> String {
        render_snippet(file_name, source, self.span, &self.to_string())
    }
}

/// The reasons a Dockerfile (or one instruction of it) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("file with no instructions")]
    NoInstructions,
    #[error("only one {name} parser directive can be used")]
    DuplicateDirective { name: String },
    #[error("invalid escape token '{value}' does not match ` or \\")]
    InvalidEscapeToken { value: String },
    #[error("invalid check option {option:?} in check directive {directive:?}")]
    InvalidCheckOption { directive: String, option: String },
    #[error("{instruction} cannot accept a heredoc as a destination")]
    HeredocDestination { instruction: &'static str },
    #[error("unterminated heredoc {name:?}")]
    UnterminatedHeredoc { name: String },
    #[error("unknown instruction: {keyword}{}", did_you_mean(suggestion))]
    UnknownInstruction {
        keyword: String,
        suggestion: Option<String>,
    },
    #[error("no build stage in current context: {keyword} must come after a FROM")]
    NoBuildStage { keyword: String },
    #[error("unknown flag: {flag}{}", did_you_mean(suggestion))]
    UnknownFlag {
        flag: String,
        suggestion: Option<String>,
    },
    #[error("missing a value on flag: {flag}")]
    FlagMissingValue { flag: String },
    #[error("expecting boolean value for flag {flag}, not: {value}")]
    FlagNotBoolean { flag: String, value: String },
    #[error("duplicate flag specified: {flag}")]
    DuplicateFlag { flag: String },
    #[error("{instruction} requires at least one argument")]
    AtLeastOneArgument { instruction: &'static str },
    #[error("{instruction} requires exactly one argument")]
    ExactlyOneArgument { instruction: &'static str },
    #[error(
        "{instruction} requires at least two arguments, but only one was provided; destination could not be determined"
    )]
    NoDestination { instruction: &'static str },
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error(
        "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName { name: String },
    #[error("{instruction} must have two arguments")]
    MissingValue { instruction: &'static str },
    #[error("syntax error - can't find = in {word:?}; must be of the form: name=value")]
    MissingEquals { word: String },
    #[error("{instruction} names can not be blank")]
    BlankName { instruction: &'static str },
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStringArray,
    #[error("{instruction} requires the arguments to be in JSON form")]
    NotJson { instruction: &'static str },
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    #[error("unknown type {kind:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType { kind: String },
    #[error("missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    #[error("invalid duration {value:?} for --{flag}: {reason}")]
    InvalidDuration {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("interval --{flag} cannot be less than 1ms (got {value:?})")]
    DurationTooShort { flag: &'static str, value: String },
    #[error("invalid value {value:?} for --retries: must be an integer of at least 1")]
    InvalidRetries { value: String },
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChaining,
    #[error("{keyword} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger { keyword: String },
    #[error("unsupported network mode {value:?} (expected default, none or host)")]
    UnsupportedNetwork { value: String },
    #[error("unsupported security mode {value:?} (expected sandbox or insecure)")]
    UnsupportedSecurity { value: String },
    #[error(
        "invalid chmod parameter: {value:?}; it should be an octal string like 0644 or symbolic like u+x"
    )]
    InvalidChmod { value: String },
    #[error(
        "invalid checksum {value:?}: expected <algorithm>:<hex> with sha256, sha384 or sha512, or a git commit id"
    )]
    InvalidChecksum { value: String },
    #[error("invalid port {value:?}: expected <port>[-<port>][/tcp|udp|sctp]")]
    InvalidPort { value: String },
    #[error("invalid --mount {mount:?}: {reason}")]
    InvalidMount { mount: String, reason: MountError },
}

/// Why a `RUN --mount` value is refused (messages follow BuildKit's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    #[error("failed to parse csv: {reason}")]
    Csv { reason: &'static str },
    #[error("unsupported mount type {value:?}{}", did_you_mean(suggestion))]
    UnsupportedType {
        value: String,
        suggestion: Option<String>,
    },
    #[error("invalid field {field:?} must be a key=value pair")]
    NotKeyValue { field: String },
    #[error("unexpected key {key:?} in {field:?}{}", did_you_mean(suggestion))]
    UnknownKey {
        key: String,
        field: String,
        suggestion: Option<String>,
    },
    #[error("unexpected key {key:?} for mount type {kind:?}")]
    KeyNotAllowed { key: String, kind: &'static str },
    #[error("invalid value for {key}: {value}")]
    InvalidValue { key: String, value: String },
    #[error("unsupported sharing value {value:?}")]
    UnsupportedSharing { value: String },
    #[error("{key} not allowed for {kind:?} type mounts")]
    FieldNotAllowed {
        key: &'static str,
        kind: &'static str,
    },
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    FromVariable,
    #[error("secret mount should not have a from")]
    SecretFrom,
    #[error("invalid secret mount: one of source, target, id or env required")]
    SecretTarget,
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    #[error("{kind} mount requires a target")]
    MissingTarget { kind: &'static str },
}

/// A non-fatal finding of the parser (the linter adds its own, with the same span shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Lines the warning is about.
    pub span: Span,
    /// What was found.
    pub kind: WarningKind,
}

/// The parser's own warnings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarningKind {
    /// An empty line inside a line continuation (BuildKit warns; a future release will refuse).
    #[error("empty continuation line found in: {instruction}")]
    EmptyContinuationLine { instruction: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_single_line_gets_two_lines_of_context_each_side() {
        let source =
            "FROM a\nRUN 1\nRUN 2\nRUN 3\nRUN 4\nRUN 5\nRUN --bogus x\nRUN 8\nRUN 9\nRUN 10\n";
        let got = render_snippet("Dockerfile", source, Span::line(7), "boom");
        let want = "Dockerfile:7\n--------------------\n   5 |     RUN 4\n   6 |     RUN 5\n   7 | >>> RUN --bogus x\n   8 |     RUN 8\n   9 |     RUN 9\n--------------------\nERROR: boom\n";
        assert_eq!(got, want);
    }

    #[test]
    fn snippet_at_file_start_extends_only_downwards() {
        let source = "FROM a\nRUN 1\nRUN 2\nRUN 3\n";
        let got = render_snippet("Dockerfile", source, Span::line(1), "boom");
        let want = "Dockerfile:1\n--------------------\n   1 | >>> FROM a\n   2 |     RUN 1\n   3 |     RUN 2\n--------------------\nERROR: boom\n";
        assert_eq!(got, want);
    }

    #[test]
    fn snippet_range_gets_one_line_of_context() {
        let source = "FROM a\nRUN 1\nRUN a \\\n  b\nRUN 3\nRUN 4\n";
        let got = render_snippet("Dockerfile", source, Span::new(3, 4), "boom");
        let want = "Dockerfile:3\n--------------------\n   2 |     RUN 1\n   3 | >>> RUN a \\\n   4 | >>>   b\n   5 |     RUN 3\n--------------------\nERROR: boom\n";
        assert_eq!(got, want);
    }

    #[test]
    fn snippet_out_of_range_prints_only_the_error() {
        assert_eq!(
            render_snippet("Dockerfile", "", Span::line(9), "boom"),
            "ERROR: boom\n"
        );
    }
}
