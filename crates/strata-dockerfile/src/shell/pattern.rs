//! Shell patterns for `${v#p}`, `${v%p}` and `${v/p/r}`, matched the way BuildKit matches them.
//!
//! BuildKit turns a pattern into a Go regular expression (`*` becomes `.*` or `.*?`, `?` becomes `.`,
//! everything else literal, bracket expressions included) and lets Go's leftmost-first engine pick the
//! match. To give byte-identical results we compile the pattern to a tiny instruction program and run
//! it in a Pike VM with thread priorities, which yields exactly the leftmost-first match (the one a
//! backtracking engine would find) in time linear in the value. As in Go, `.` never matches a newline.
//!
//! The escape character of a pattern is always a backslash, even under `# escape=``: the lexer keeps
//! escapes raw in pattern words and this module interprets them.

/// Why a pattern operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// A backslash before this character (`None`: a lone backslash at the end).
    Escape(Option<char>),
    /// `${v//p/r}` would produce more than [`MAX_REPLACED_LEN`] bytes.
    TooLong,
}

/// The largest result of a replace-all, in bytes. Replacing every match multiplies lengths, so
/// nested `${v//p/${v//p/...}}` grows exponentially; this bounds the memory a word can claim.
pub const MAX_REPLACED_LEN: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
}

/// A compiled pattern: a program for the Pike VM, or the plain text when it has no wildcard.
#[derive(Debug)]
pub(crate) struct Pattern {
    program: Vec<Inst>,
    /// The pattern's characters when it is all literals (the common case), searched directly.
    literal: Option<Vec<char>>,
}

#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    /// Any character except a newline (Go's `.` without the `s` flag).
    AnyNotNewline,
    /// Try `first`, then `second` (priority order).
    Split(usize, usize),
    Jump(usize),
    Match,
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                // `**` means the same as `*` for every match this module reports (only where the
                // whole match ends matters), and collapsing keeps the program small.
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
            }
            '?' => tokens.push(Token::AnyChar),
            '\\' => match chars.peek().copied() {
                // `}` and `/` had to be escaped to fit in `${...}`; the escape is not part of the pattern
                Some('}') | Some('/') => {}
                Some(next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    tokens.push(Token::Literal(next));
                }
                other => return Err(PatternError::Escape(other)),
            },
            other => tokens.push(Token::Literal(other)),
        }
    }
    Ok(tokens)
}

impl Pattern {
    /// Compiles `pattern`; `greedy` makes `*` match the longest run instead of the shortest.
    pub(crate) fn compile(pattern: &str, greedy: bool) -> Result<Pattern, PatternError> {
        let tokens = tokenize(pattern)?;
        let literal = tokens
            .iter()
            .map(|t| match t {
                Token::Literal(c) => Some(*c),
                Token::AnyChar | Token::Star => None,
            })
            .collect();
        let mut program = Vec::with_capacity(tokens.len() * 3 + 1);
        for token in tokens {
            match token {
                Token::Literal(c) => program.push(Inst::Char(c)),
                Token::AnyChar => program.push(Inst::AnyNotNewline),
                Token::Star => {
                    let split = program.len();
                    let (body, exit) = (split + 1, split + 3);
                    program.push(if greedy {
                        Inst::Split(body, exit)
                    } else {
                        Inst::Split(exit, body)
                    });
                    program.push(Inst::AnyNotNewline);
                    program.push(Inst::Jump(split));
                }
            }
        }
        program.push(Inst::Match);
        Ok(Pattern { program, literal })
    }

    /// A search state for this pattern, reusable across searches over the same or other texts.
    pub(crate) fn searcher(&self) -> Searcher<'_> {
        Searcher {
            pattern: self,
            current: Threads::new(self.program.len()),
            next: Threads::new(self.program.len()),
            stack: Vec::new(),
        }
    }

    /// See [`Searcher::find`].
    #[cfg(test)]
    pub(crate) fn find(
        &self,
        text: &[char],
        from: usize,
        anchored: bool,
    ) -> Option<(usize, usize)> {
        self.searcher().find(text, from, anchored)
    }
}

/// The buffers of a Pike VM run, kept between searches.
#[derive(Debug)]
pub(crate) struct Searcher<'p> {
    pattern: &'p Pattern,
    current: Threads,
    next: Threads,
    stack: Vec<usize>,
}

impl Searcher<'_> {
    /// The leftmost-first match starting at or after `from` (only at `from` when `anchored`),
    /// as a char index range into `text`.
    pub(crate) fn find(
        &mut self,
        text: &[char],
        from: usize,
        anchored: bool,
    ) -> Option<(usize, usize)> {
        if let Some(literal) = &self.pattern.literal {
            return find_literal(literal, text, from, anchored);
        }
        let program = &self.pattern.program;
        let (current, next, stack) = (&mut self.current, &mut self.next, &mut self.stack);
        current.clear();
        next.clear();
        let mut found = None;
        let mut pos = from;
        loop {
            if found.is_none() && (!anchored || pos == from) {
                // a thread starting here has the lowest priority: leftmost matches win
                current.add(program, 0, pos, stack);
            }
            if current.is_empty() && (found.is_some() || anchored) {
                break;
            }
            let ch = text.get(pos).copied();
            for i in 0..current.list.len() {
                let (pc, start) = current.list[i];
                match program[pc] {
                    Inst::Match => {
                        found = Some((start, pos));
                        // every remaining thread has a lower priority than this match
                        break;
                    }
                    Inst::Char(c) => {
                        if ch == Some(c) {
                            next.add(program, pc + 1, start, stack);
                        }
                    }
                    Inst::AnyNotNewline => {
                        if matches!(ch, Some(c) if c != '\n') {
                            next.add(program, pc + 1, start, stack);
                        }
                    }
                    Inst::Split(..) | Inst::Jump(_) => {}
                }
            }
            if pos >= text.len() {
                break;
            }
            std::mem::swap(current, next);
            next.clear();
            pos += 1;
        }
        found
    }
}

fn find_literal(
    literal: &[char],
    text: &[char],
    from: usize,
    anchored: bool,
) -> Option<(usize, usize)> {
    let rest = text.get(from..)?;
    if anchored {
        return rest
            .starts_with(literal)
            .then_some((from, from + literal.len()));
    }
    if literal.is_empty() {
        return Some((from, from));
    }
    rest.windows(literal.len())
        .position(|window| window == literal)
        .map(|i| (from + i, from + i + literal.len()))
}

/// An ordered set of VM threads (program counter, match start), in priority order. `seen`
/// holds the generation in which a state was added, so clearing is O(1).
#[derive(Debug)]
struct Threads {
    list: Vec<(usize, usize)>,
    seen: Vec<u32>,
    generation: u32,
}

impl Threads {
    fn new(len: usize) -> Threads {
        Threads {
            list: Vec::new(),
            seen: vec![0; len],
            generation: 1,
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn clear(&mut self) {
        self.list.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // after 4 billion steps the stamps could collide: start over
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }

    /// Follows jumps and splits from `pc` in priority order, adding the consuming states.
    fn add(&mut self, program: &[Inst], pc: usize, start: usize, stack: &mut Vec<usize>) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if self.seen[pc] == self.generation {
                continue;
            }
            self.seen[pc] = self.generation;
            match program[pc] {
                Inst::Jump(to) => stack.push(to),
                Inst::Split(first, second) => {
                    stack.push(second);
                    stack.push(first);
                }
                Inst::Char(_) | Inst::AnyNotNewline | Inst::Match => self.list.push((pc, start)),
            }
        }
    }
}

/// Reverses a pattern but keeps each backslash in front of the character it escapes
/// (`a\*c` becomes `c\*a`), so that a suffix search can run as a prefix search.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let at = last - i;
        if chars[i] == '\\' && i != last {
            out[at - 1] = '\\';
            out[at] = chars[i + 1];
            i += 2;
        } else {
            out[at] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `${value#pattern}` (shortest) and `${value##pattern}` (`greedy`).
pub(crate) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let compiled = Pattern::compile(pattern, greedy)?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match compiled.searcher().find(&chars, 0, true) {
        Some((_, end)) => chars[end..].iter().collect(),
        None => value.to_owned(),
    })
}

/// `${value%pattern}` (shortest) and `${value%%pattern}` (`greedy`): a prefix trim of the reversed
/// value with the reversed pattern.
pub(crate) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, PatternError> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// `${value/pattern/replacement}`: the first match replaced by the literal replacement.
pub(crate) fn replace_first(
    pattern: &str,
    value: &str,
    replacement: &str,
) -> Result<String, PatternError> {
    let compiled = Pattern::compile(pattern, true)?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match compiled.searcher().find(&chars, 0, false) {
        Some((start, end)) => {
            let mut out: String = chars[..start].iter().collect();
            out.push_str(replacement);
            out.extend(&chars[end..]);
            out
        }
        None => value.to_owned(),
    })
}

/// `${value//pattern/replacement}`: every match replaced, with Go's rules for empty matches (one
/// after every character, none right after a previous match) and Go's `$0`/`${0}`/`$$` template
/// syntax in the replacement, because BuildKit hands the replacement to `ReplaceAllString`.
pub(crate) fn replace_all(
    pattern: &str,
    value: &str,
    replacement: &str,
) -> Result<String, PatternError> {
    let compiled = Pattern::compile(pattern, true)?;
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    let mut searcher = compiled.searcher();
    while search <= chars.len() {
        let Some((start, end)) = searcher.find(&chars, search, false) else {
            break;
        };
        out.extend(&chars[last_end..start]);
        if end > last_end || start == 0 {
            expand_template(replacement, &chars[start..end], &mut out);
        }
        if out.len() > MAX_REPLACED_LEN {
            return Err(PatternError::TooLong);
        }
        last_end = end;
        search = if search + 1 > end { search + 1 } else { end };
    }
    out.extend(&chars[last_end.min(chars.len())..]);
    if out.len() > MAX_REPLACED_LEN {
        return Err(PatternError::TooLong);
    }
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern with no capture groups: `$$` is a dollar, `$0`/`${0}` the whole
/// match, any other well-formed reference empty, a malformed one literal.
fn expand_template(template: &str, matched: &[char], out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_reference(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.extend(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Parses `name` or `{name}` after a `$` (letters, digits, underscore), returning it and the rest.
fn template_reference(text: &str) -> Option<(&str, &str)> {
    let (body, braced) = match text.strip_prefix('{') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_patterns_keep_escapes_in_front() {
        for (pattern, expected) in [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("\\\\b", "b\\\\"),
            ("", ""),
        ] {
            assert_eq!(reverse_pattern(pattern), expected, "pattern {pattern:?}");
        }
    }

    #[test]
    fn invalid_escapes_are_refused() {
        for pattern in ["\\", "\\x", "\\\\\\", "a\\b"] {
            assert!(
                Pattern::compile(pattern, true).is_err(),
                "pattern {pattern:?}"
            );
        }
    }

    #[test]
    fn leftmost_first_with_lazy_and_greedy_stars() {
        let text: Vec<char> = "xxyy".chars().collect();
        let lazy = Pattern::compile("*x*y", false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(lazy.find(&text, 0, true), Some((0, 3)));
        let greedy = Pattern::compile("*x*y", true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(greedy.find(&text, 0, true), Some((0, 4)));
        let unanchored = Pattern::compile("y", true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(unanchored.find(&text, 0, false), Some((2, 3)));
        assert_eq!(unanchored.find(&text, 3, false), Some((3, 4)));
        assert_eq!(unanchored.find(&text, 4, false), None);
    }

    #[test]
    fn literal_search_agrees_with_the_vm() {
        let texts = ["", "a", "abcabc", "a\nb\nab", "xxyy", "한국어한국"];
        let patterns = ["", "a", "ab", "b\nab", "bc", "국", "yy", "zz", "\\*"];
        for pattern in patterns {
            let mut compiled = Pattern::compile(pattern, true).unwrap_or_else(|e| panic!("{e:?}"));
            for text in texts {
                let text: Vec<char> = text.chars().collect();
                for from in 0..=text.len() {
                    for anchored in [false, true] {
                        let fast = compiled.find(&text, from, anchored);
                        let literal = compiled.literal.take();
                        let slow = compiled.find(&text, from, anchored);
                        compiled.literal = literal;
                        assert_eq!(
                            fast, slow,
                            "{pattern:?} in {text:?} from {from} anchored {anchored}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn stars_and_question_marks_stop_at_newlines() {
        assert_eq!(trim_prefix("*", "a\nb", true).as_deref(), Ok("\nb"));
        assert_eq!(trim_prefix("?", "\nb", true).as_deref(), Ok("\nb"));
    }

    #[test]
    fn replace_all_follows_go_for_empty_matches() {
        assert_eq!(replace_all("", "xy", "-").as_deref(), Ok("-x-y-"));
        assert_eq!(replace_all("*", "xy", "-").as_deref(), Ok("-"));
        assert_eq!(replace_all("x*", "axxb", "-").as_deref(), Ok("a-"));
        assert_eq!(replace_all("", "", "-").as_deref(), Ok("-"));
    }

    #[test]
    fn replace_all_results_are_bounded() {
        let value = "x".repeat(1000);
        let replacement = "y".repeat(2000);
        assert_eq!(
            replace_all("x", &value, &replacement),
            Err(PatternError::TooLong)
        );
        assert!(replace_all("x", &value, "yy").is_ok());
    }

    #[test]
    fn replace_all_expands_go_templates() {
        assert_eq!(replace_all("b", "abc", "[$0]").as_deref(), Ok("a[b]c"));
        assert_eq!(replace_all("b", "abc", "[${0}]").as_deref(), Ok("a[b]c"));
        assert_eq!(replace_all("b", "abc", "$$").as_deref(), Ok("a$c"));
        assert_eq!(replace_all("b", "abc", "$1x").as_deref(), Ok("ac"));
        assert_eq!(replace_all("b", "abc", "$").as_deref(), Ok("a$c"));
        assert_eq!(replace_all("b", "abc", "${0").as_deref(), Ok("a${0c"));
        assert_eq!(replace_first("b", "abc", "$0").as_deref(), Ok("a$0c"));
    }
}
