//! BuildKit's shell-word lexer: quote removal, escapes and `$VAR` expansion for Dockerfile words.
//!
//! The Dockerfile frontend does not run a shell to expand `ADD`, `COPY`, `ENV`, `FROM`, `WORKDIR`, ...
//! arguments; it runs a small lexer that mimics `sh` closely enough (quotes, escapes, `$var`,
//! `${var}` and the `${var:-word}` family of modifiers) and is otherwise its own language. Users
//! move Dockerfiles between BuildKit and strata, so this module reproduces that lexer's behaviour,
//! quirks included: `$1`, `$@`, `$$` and other special parameters are looked up like any other name
//! (and are normally unset, hence empty); a `$` that starts no name stays literal; an unset variable
//! is empty rather than an error; `${v:#p}` behaves like `${v#p}`; the replacement of `${v//p/r}` goes
//! through Go's template syntax (`$0` is the match) while the one of `${v/p/r}` does not.
//!
//! The lexer is a pure function of the word and an [`Env`]; it records which variables it looked up
//! ([`Expanded::matched`]) and which were undefined ([`Expanded::unmatched`]) so that the linter can
//! report `UndefinedVar`.

mod pattern;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

pub use self::pattern::MAX_REPLACED_LEN;
use self::pattern::PatternError;

/// Variables visible to an expansion. Keys are compared exactly (Linux semantics).
pub trait Env {
    /// The value of `name`, or `None` when it is not defined (an empty value is defined).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An ordered list of definitions; the last definition of a name wins, as in `KEY=value` lists.
impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: Env + ?Sized> Env for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// The result of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The expanded word with quotes removed; whitespace is kept.
    pub value: String,
    /// The word split on unquoted whitespace after expansion (BuildKit's `ProcessWords`); empty
    /// quoted strings do not produce words.
    pub words: Vec<String>,
    /// Variables that were referenced and defined, in order of first reference.
    pub matched: Vec<String>,
    /// Variables that were referenced but not defined, in order of first reference.
    pub unmatched: Vec<String>,
}

/// A word that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {kind}")]
pub struct ShellError {
    /// The whole word being expanded.
    pub word: String,
    /// Byte offset in `word` of the construct at fault (the opening quote, the `$` of `${`).
    pub offset: usize,
    /// What is wrong.
    pub kind: ShellErrorKind,
}

/// The ways a word can fail to expand; the messages are BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellErrorKind {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:x}`, `${{x}` and `${}x}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${v=x}`, `${v:x}`, `${v!}`, ...: `modifier` is the text after the name.
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier { modifier: String },
    /// `${v?message}` with `v` unset, or `${v:?message}` with `v` unset or empty.
    #[error("{name}: {}", required_message(message.as_deref(), *empty))]
    Required {
        name: String,
        /// The expanded message word, `None` when it was empty.
        message: Option<String>,
        /// The variable was set to the empty string (only an error with `:?`).
        empty: bool,
    },
    /// `${a:-${b:-${c:-...}}}` nested deeper than [`MAX_NESTING`]: refused so that a hostile
    /// word cannot exhaust the stack (BuildKit, in Go, has no limit; real Dockerfiles nest a few
    /// levels).
    #[error("substitutions nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// `${v//p/r}` would produce more than [`MAX_REPLACED_LEN`] bytes (nested replacements grow
    /// exponentially; BuildKit has no limit and runs out of memory).
    #[error("substitution result longer than {limit} bytes")]
    TooLong { limit: usize },
    /// Variables would make the word more than `limit` ([`MAX_EXPANSION_GROWTH`]) bytes longer
    /// than its text: values that feed on themselves (`ARG A=$A$A` line after line) double
    /// each time (BuildKit has no limit and runs out of memory).
    #[error("expanded value more than {limit} bytes longer than the word")]
    ExpansionTooLong { limit: usize },
    /// A `#`, `%` or `/` pattern with a backslash before something other than `*`, `?`, `\`, `}` or `/`.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{}'", escaped.unwrap_or('\u{FFFD}'))]
    InvalidPattern {
        pattern: String,
        escaped: Option<char>,
    },
}

fn required_message(message: Option<&str>, empty: bool) -> &str {
    match message {
        Some(message) => message,
        None if empty => "is not allowed to be empty",
        None => "is not allowed to be unset",
    }
}

/// BuildKit's shell-word lexer, configured with the Dockerfile's escape character.
///
/// The options mirror BuildKit's and are off by default; the frontend turns them on for special
/// cases (heredoc bodies keep their quotes and escapes, some callers keep unset variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer whose escape character is `escape` (`\` by default, `` ` `` after `# escape=``).
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep the quote characters in the result (quoted text is still protected from splitting).
    pub fn raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the result.
    pub fn raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters.
    pub fn skip_process_quotes(mut self, on: bool) -> Lexer {
        self.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables in the text (`$X`, `${X:-y}`) instead of expanding them.
    pub fn skip_unset_env(mut self, on: bool) -> Lexer {
        self.skip_unset_env = on;
        self
    }

    /// Expands `word` against `env`: quotes removed, escapes applied, variables substituted.
    pub fn expand_word(&self, word: &str, env: &dyn Env) -> Result<Expanded, ShellError> {
        let mut scan = Scan::new(self, word, env);
        let result = scan
            .process_stop_on(None, self.raw_escapes)
            .and_then(|(value, words)| {
                // the scan checks as it substitutes; literal text after the last substitution
                // can still pass the bound by at most the word's length
                if value.len() > scan.max_len {
                    return Err((
                        scan.pos,
                        ShellErrorKind::ExpansionTooLong {
                            limit: MAX_EXPANSION_GROWTH,
                        },
                    ));
                }
                Ok((value, words))
            });
        match result {
            Ok((value, words)) => Ok(Expanded {
                value,
                words: words.finish(),
                matched: scan.matched,
                unmatched: scan.unmatched,
            }),
            Err((offset, kind)) => Err(ShellError {
                word: word.to_owned(),
                offset,
                kind,
            }),
        }
    }

    /// Expands `word` and splits the result on unquoted whitespace (BuildKit's `ProcessWords`):
    /// whitespace coming from a variable's value splits too, quoted or escaped whitespace does not.
    pub fn expand_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.expand_word(word, env).map(|expanded| expanded.words)
    }
}

/// An error with the byte offset of the construct it belongs to.
type Failure = (usize, ShellErrorKind);

/// The words being collected while a word is processed.
#[derive(Debug, Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// An unquoted, unescaped character: whitespace ends the current word.
    fn push_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.push_raw_char(c);
        }
    }

    fn push_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    /// Text from a variable: split like unquoted text.
    fn push_str(&mut self, text: &str) {
        text.chars().for_each(|c| self.push_char(c));
    }

    /// Quoted text: never split, even when empty it opens a word.
    fn push_raw_str(&mut self, text: &str) {
        self.word.push_str(text);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

/// How deeply `${...}` may nest inside another `${...}`'s word.
pub const MAX_NESTING: usize = 100;

/// How many bytes longer than its text an expanded word may be. Every caller (planning, the
/// engine's per-instruction expansion, the linter) goes through [`Lexer::expand_word`], so this
/// one bound keeps self-feeding definitions from growing exponentially; text written in the
/// Dockerfile itself (a large heredoc body) is never refused.
pub const MAX_EXPANSION_GROWTH: usize = 1 << 20;

/// The state of one expansion.
struct Scan<'a> {
    lexer: &'a Lexer,
    source: &'a str,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    /// Current `${...}` nesting.
    depth: usize,
    /// The longest value allowed (the word's length plus [`MAX_EXPANSION_GROWTH`]).
    max_len: usize,
    matched: Vec<String>,
    unmatched: Vec<String>,
}

impl<'a> Scan<'a> {
    fn new(lexer: &'a Lexer, source: &'a str, env: &'a dyn Env) -> Scan<'a> {
        // Go's text/scanner, which BuildKit reads words with, skips a leading byte order mark
        let pos = if source.starts_with('\u{FEFF}') {
            '\u{FEFF}'.len_utf8()
        } else {
            0
        };
        Scan {
            lexer,
            source,
            pos,
            env,
            raw_escapes: lexer.raw_escapes,
            depth: 0,
            max_len: source.len().saturating_add(MAX_EXPANSION_GROWTH),
            matched: Vec::new(),
            unmatched: Vec::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.source[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.source.len()
    }

    /// Processes characters until `stop` (consumed) or the end of the word when `stop` is `None`.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Words), Failure> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_until(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_until(&mut self, stop: Option<char>) -> Result<(String, Words), Failure> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.next();
                return Ok((result, words));
            }
            match c {
                '$' => {
                    let value = self.process_substitution(&result)?;
                    words.push_str(&value);
                    result.push_str(&value);
                }
                '\'' if quotes => {
                    let value = self.process_single_quote()?;
                    words.push_raw_str(&value);
                    result.push_str(&value);
                }
                '"' if quotes => {
                    let value = self.process_double_quote()?;
                    words.push_raw_str(&value);
                    result.push_str(&value);
                }
                _ => {
                    self.next();
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            words.push_raw_char(c);
                            result.push(c);
                        }
                        // an escape at the very end of the word escapes nothing and disappears
                        let Some(escaped) = self.next() else { break };
                        words.push_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.push_char(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            // callers turn this into their own message; it only happens at the end of the word
            Some(_) => Err((self.pos, ShellErrorKind::MissingBrace)),
            None => Ok((result, words)),
        }
    }

    /// `'...'`: everything literal, no escapes (a single quote cannot be quoted inside).
    fn process_single_quote(&mut self) -> Result<String, Failure> {
        let start = self.pos;
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err((start, ShellErrorKind::UnterminatedSingleQuote)),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"..."`: literal except `$` expansions; the escape character only escapes `"`, `$` and itself.
    fn process_double_quote(&mut self) -> Result<String, Failure> {
        let start = self.pos;
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err((start, ShellErrorKind::UnterminatedDoubleQuote)),
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_substitution(&result)?;
                    result.push_str(&value);
                }
                Some(c) => {
                    self.next();
                    let mut c = c;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            // the missing closing quote is reported on the next turn
                            None => continue,
                            Some(next)
                                if next == '"' || next == '$' || next == self.lexer.escape =>
                            {
                                self.next();
                                c = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// A `$` substitution to be appended to `result`, refused when the two together would pass
    /// the word's length bound (checked before appending, so nothing large is ever built).
    fn process_substitution(&mut self, result: &str) -> Result<String, Failure> {
        let start = self.pos;
        let value = self.process_dollar()?;
        if result.len().saturating_add(value.len()) > self.max_len {
            return Err((
                start,
                ShellErrorKind::ExpansionTooLong {
                    limit: MAX_EXPANSION_GROWTH,
                },
            ));
        }
        Ok(value)
    }

    /// `$name`, `${name}` and `${name<modifier>word}`, at most [`MAX_NESTING`] levels deep.
    fn process_dollar(&mut self) -> Result<String, Failure> {
        if self.depth >= MAX_NESTING {
            return Err((self.pos, ShellErrorKind::TooDeep { limit: MAX_NESTING }));
        }
        self.depth += 1;
        let result = self.process_dollar_at_depth();
        self.depth -= 1;
        result
    }

    fn process_dollar_at_depth(&mut self) -> Result<String, Failure> {
        let start = self.pos;
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err((start, ShellErrorKind::MissingBrace)),
            Some('{' | '}' | ':') => return Err((start, ShellErrorKind::BadSubstitution)),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(first) = self.next() else {
            // BuildKit reports an "unsupported modifier" made of the end-of-input marker here; the
            // missing brace is the useful message
            return Err((start, ShellErrorKind::MissingBrace));
        };
        match first {
            '}' => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut modifier = String::from(first);
                let null_is_unset = first == ':';
                let op = if null_is_unset {
                    let op = self.next();
                    modifier.push(op.unwrap_or('\u{FFFD}'));
                    op
                } else {
                    Some(first)
                };
                let raw = matches!(op, Some('#' | '%'));
                let (word, _) = self.process_stop_on(Some('}'), raw).map_err(|failure| {
                    self.at_end_means(start, failure, ShellErrorKind::MissingBrace)
                })?;
                let value = self.get_env(&name);
                if value.is_none() && self.lexer.skip_unset_env {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let unset_or_null = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    Some('-') => Ok(if unset_or_null {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if unset_or_null { String::new() } else { word }),
                    Some('?') => {
                        if unset_or_null {
                            let message = (!word.is_empty()).then_some(word);
                            Err((
                                start,
                                ShellErrorKind::Required {
                                    name,
                                    message,
                                    empty: value.is_some(),
                                },
                            ))
                        } else {
                            Ok(value.unwrap_or_default())
                        }
                    }
                    Some(op @ ('#' | '%')) => {
                        // `##` and `%%` match the longest text; the check runs on the expanded word
                        let (pattern, greedy) = match word.strip_prefix(op) {
                            Some(rest) => (rest, true),
                            None => (word.as_str(), false),
                        };
                        let value = value.unwrap_or_default();
                        let trimmed = if op == '%' {
                            pattern::trim_suffix(pattern, &value, greedy)
                        } else {
                            pattern::trim_prefix(pattern, &value, greedy)
                        };
                        trimmed.map_err(|e| (start, invalid_pattern(pattern, e)))
                    }
                    _ => Err((start, ShellErrorKind::UnsupportedModifier { modifier })),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|failure| {
                    self.at_end_means(start, failure, ShellErrorKind::MissingSlash)
                })?;
                let (replacement, _) =
                    self.process_stop_on(Some('}'), true).map_err(|failure| {
                        self.at_end_means(start, failure, ShellErrorKind::MissingBrace)
                    })?;
                let value = self.get_env(&name);
                if value.is_none() && self.lexer.skip_unset_env {
                    // BuildKit writes a single slash back even for `//`
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value = value.unwrap_or_default();
                let replaced = if replace_all {
                    pattern::replace_all(&pattern, &value, &replacement)
                } else {
                    pattern::replace_first(&pattern, &value, &replacement)
                };
                replaced.map_err(|e| (start, invalid_pattern(&pattern, e)))
            }
            other => Err((
                start,
                ShellErrorKind::UnsupportedModifier {
                    modifier: other.to_string(),
                },
            )),
        }
    }

    /// A nested word that failed at the end of the input failed because this `${` is unclosed.
    fn at_end_means(&self, start: usize, failure: Failure, kind: ShellErrorKind) -> Failure {
        if self.at_end() {
            (start, kind)
        } else {
            failure
        }
    }

    /// A variable name: letters, digits and `_` not starting with a digit; or a run of digits
    /// (positional parameter); or one special parameter character.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|d| is_digit(*d)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_parameter(c) {
                self.next();
                name.push(c);
                return name;
            }
            if !c.is_alphabetic() && !is_digit(c) && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let found = self.env.lookup(name).map(str::to_owned);
        let seen = if found.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !seen.iter().any(|n| n == name) {
            seen.push(name.to_owned());
        }
        found
    }
}

fn invalid_pattern(pattern: &str, error: PatternError) -> ShellErrorKind {
    match error {
        PatternError::Escape(escaped) => ShellErrorKind::InvalidPattern {
            pattern: pattern.to_owned(),
            escaped,
        },
        PatternError::TooLong => ShellErrorKind::TooLong {
            limit: MAX_REPLACED_LEN,
        },
    }
}

/// Go's `unicode.IsDigit` (decimal digits of any script).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// POSIX special parameters (`$@ $* $# $? $- $$ $! $0`).
fn is_special_parameter(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}
