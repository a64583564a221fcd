//! Hand-written glob matching with Go's `path/filepath` semantics.
//!
//! Two dialects share one small NFA:
//! - [`GoGlob`]: Go's `filepath.Match`, used for COPY/ADD source wildcards. `*` matches any run of
//!   non-`/` characters, `?` one non-`/` character, `[...]` a class (`^` negates; `!` is a plain
//!   character as in Go), `\` escapes the next character.
//! - the `.dockerignore` dialect of moby/patternmatcher (see [`crate::ignore`]), which adds `**`
//!   (`**/` = any number of directories, a trailing `**` = anything) on top of the same tokens.
//!
//! Matching is a set-of-states simulation (no backtracking), so hostile patterns such as
//! `*a*a*a*a*b` stay linear in the path length.

use thiserror::Error;

/// A pattern that is not valid Go `filepath.Match` syntax.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("syntax error in pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A literal character.
    Lit(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    Any,
    /// `[...]`: one character in (or, negated, out of) the ranges; like Go, a negated class
    /// can match `/`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// patternmatcher's `**/` and inner `**`: the regexp `(.*/)?`.
    DirStar,
    /// patternmatcher's trailing `**` in a regexp pattern: the regexp `.*`.
    AnyRun,
    /// patternmatcher passes `^` unescaped to Go's regexp, where it is a start-of-text anchor.
    Anchor,
}

/// Parses a bracket class starting right after `[`; returns the token and the index after `]`.
/// Follows Go's `filepath.Match`: a class item is a character or `lo-hi`, where a character is
/// anything but `-`, `]` and `\`, or `\` followed by any character; at least one item.
pub(crate) fn parse_class(
    chars: &[char],
    mut i: usize,
    pattern: &str,
) -> Result<(Token, usize), PatternError> {
    let bad = |reason| PatternError {
        pattern: pattern.to_string(),
        reason,
    };
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        match chars.get(i) {
            None => return Err(bad("unterminated character class")),
            Some(']') if !ranges.is_empty() => {
                return Ok((Token::Class { negated, ranges }, i + 1));
            }
            _ => {}
        }
        let (lo, next) = class_char(chars, i).ok_or_else(|| bad("bad character in class"))?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1).ok_or_else(|| bad("bad range in class"))?;
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        '-' | ']' => None,
        '\\' => chars.get(i + 1).map(|c| (*c, i + 2)),
        c => Some((*c, i + 1)),
    }
}

/// Compiles a Go `filepath.Match` pattern.
fn compile_go(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                // Consecutive stars are one star in Go.
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                tokens.push(Token::Any);
                i += 1;
            }
            '[' => {
                let (token, next) = parse_class(&chars, i + 1, pattern)?;
                tokens.push(token);
                i = next;
            }
            '\\' => {
                let c = chars.get(i + 1).ok_or_else(|| PatternError {
                    pattern: pattern.to_string(),
                    reason: "trailing backslash",
                })?;
                tokens.push(Token::Lit(*c));
                i += 2;
            }
            c => {
                tokens.push(Token::Lit(c));
                i += 1;
            }
        }
    }
    Ok(tokens)
}

/// Checks a pattern for Go `filepath.Match` syntax errors (what Go reports as `ErrBadPattern`).
pub fn validate_go_pattern(pattern: &str) -> Result<(), PatternError> {
    compile_go(pattern).map(|_| ())
}

/// A compiled Go `filepath.Match` pattern.
#[derive(Debug, Clone)]
pub struct GoGlob {
    tokens: Vec<Token>,
}

impl GoGlob {
    /// Compiles `pattern`; errors are Go's `ErrBadPattern` cases.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        Ok(Self {
            tokens: compile_go(pattern)?,
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        run(&self.tokens, name)
    }
}

/// Whether `name` contains a wildcard character (`*`, `?`, `[`), skipping `\`-escaped ones:
/// BuildKit's `containsWildcards`.
pub fn contains_wildcards(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Removes the `\` escapes from a wildcard-free pattern (the literal path it names).
pub fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            } else {
                out.push(c);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the token NFA over `text`, requiring a match of the whole text.
///
/// States are token positions; `DirStar` has an extra "inside `.*`" state, stored at
/// `tokens.len() + 1 + index`.
pub(crate) fn run(tokens: &[Token], text: &str) -> bool {
    let n = tokens.len();
    let width = 2 * (n + 1);
    let mut current = vec![false; width];
    let mut next = vec![false; width];
    add_state(tokens, &mut current, 0, true);
    for c in text.chars() {
        next.iter_mut().for_each(|s| *s = false);
        let mut any = false;
        for state in 0..width {
            if !current[state] {
                continue;
            }
            if state > n {
                // Inside the `.*` of `(.*/)?`.
                let index = state - n - 1;
                if c != '\n' {
                    next[state] = true;
                    any = true;
                }
                if c == '/' {
                    add_state(tokens, &mut next, index + 1, false);
                    any = true;
                }
                continue;
            }
            if state == n {
                continue;
            }
            match &tokens[state] {
                Token::Lit(l) => {
                    if *l == c {
                        add_state(tokens, &mut next, state + 1, false);
                        any = true;
                    }
                }
                Token::Any => {
                    if c != '/' {
                        add_state(tokens, &mut next, state + 1, false);
                        any = true;
                    }
                }
                Token::Star => {
                    if c != '/' {
                        add_state(tokens, &mut next, state, false);
                        any = true;
                    }
                }
                Token::AnyRun => {
                    if c != '\n' {
                        add_state(tokens, &mut next, state, false);
                        any = true;
                    }
                }
                Token::Class { negated, ranges } => {
                    let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                    if inside != *negated {
                        add_state(tokens, &mut next, state + 1, false);
                        any = true;
                    }
                }
                // Epsilon-only tokens were expanded by add_state.
                Token::DirStar | Token::Anchor => {}
            }
        }
        if !any {
            return false;
        }
        std::mem::swap(&mut current, &mut next);
    }
    current[n]
}

/// Adds `state` and everything reachable from it without consuming a character.
fn add_state(tokens: &[Token], set: &mut [bool], state: usize, at_start: bool) {
    let n = tokens.len();
    if set[state] {
        return;
    }
    set[state] = true;
    if state == n {
        return;
    }
    match &tokens[state] {
        Token::Star | Token::AnyRun => add_state(tokens, set, state + 1, at_start),
        Token::DirStar => {
            set[n + 1 + state] = true;
            add_state(tokens, set, state + 1, at_start);
        }
        Token::Anchor if at_start => add_state(tokens, set, state + 1, at_start),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pattern | name | expected` rows checked against Go's `filepath.Match` documentation and
    /// its test table.
    #[test]
    fn go_filepath_match_table() {
        let rows: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[!a]", "!", Ok(true)),
            ("[!a]", "b", Ok(false)),
            ("[^a]", "/", Ok(true)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[-x]", "x", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, expected) in rows {
            let got = GoGlob::new(pattern)
                .map(|g| g.matches(name))
                .map_err(|_| ());
            assert_eq!(&got, expected, "pattern {pattern:?} name {name:?}");
        }
    }

    #[test]
    fn wildcard_detection_skips_escapes() {
        assert!(contains_wildcards("a*"));
        assert!(contains_wildcards("x/[ab]"));
        assert!(!contains_wildcards("plain/path"));
        assert!(!contains_wildcards("a\\*b"));
        assert_eq!(unescape("a\\*b"), "a*b");
    }

    #[test]
    fn hostile_pattern_is_linear() {
        let glob = GoGlob::new("*a*a*a*a*a*a*a*a*a*a*b").unwrap();
        let text = "a".repeat(5000);
        assert!(!glob.matches(&text));
    }
}
