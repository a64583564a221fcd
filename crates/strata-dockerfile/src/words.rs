//! Splitting an instruction line into keyword, flags and arguments, as BuildKit does.
//!
//! None of this expands variables or removes quotes from arguments: the words stay as written,
//! and the shell lexer interprets them at build time. Flags are the exception: their quoting is
//! resolved here (BuildKit's `extractBuilderFlags`), their `$VAR`s are not.

/// `[\t\v\f\r ]+`, BuildKit's whitespace between words of whitespace-delimited instructions.
fn is_word_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits a logical line into (keyword, flags, rest).
pub(crate) fn split_command(line: &str) -> (&str, Vec<String>, &str) {
    let (keyword, rest) = split_keyword(line);
    if rest.is_empty() {
        return (keyword, Vec::new(), rest);
    }
    let (flags, rest) = extract_flags(rest);
    (keyword, flags, rest)
}

/// Splits a logical line into its keyword and the text after it (flags not yet extracted).
pub(crate) fn split_keyword(line: &str) -> (&str, &str) {
    let line = line.trim();
    // the separators are ASCII: a byte search finds the same boundary without decoding UTF-8
    match line
        .bytes()
        .position(|b| b.is_ascii() && is_word_space(char::from(b)))
    {
        Some(at) => (&line[..at], line[at..].trim_start_matches(is_word_space)),
        None => (line, ""),
    }
}

/// Leading `--flag[=value]` words (quotes resolved, `\` escapes); a bare `--` ends the flags.
fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return (flags, "");
        };
        if !line[start..].starts_with("--") {
            return (flags, &line[start..]);
        }
        // the unquoted word's length: the usual size, without regrowing char by char
        let hint = line[start..].find(char::is_whitespace);
        let mut word = String::with_capacity(hint.unwrap_or(line.len() - start));
        let mut quote: Option<char> = None;
        let mut blank_ok = false;
        let mut end = line.len();
        while let Some((at, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = at;
                    break;
                }
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        word.push(escaped);
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            let rest = line[end..].trim_start();
            return (flags, rest);
        }
        if blank_ok || !word.is_empty() {
            flags.push(word);
        }
    }
}

/// Whitespace-delimited words, quotes untouched (FROM, EXPOSE, shell-form COPY/ADD/VOLUME).
pub(crate) fn whitespace_words(rest: &str) -> Vec<String> {
    rest.split(is_word_space)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Words separated by whitespace outside quotes, with quotes and escapes kept as written
/// (BuildKit's `parseWords`, used by ENV, LABEL and ARG).
pub(crate) fn quoted_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (blank_ok || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                    blank_ok = false;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    match chars.next() {
                        // An escape token at the very end is dropped.
                        None => continue,
                        Some(next) => {
                            word.push(c);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    match chars.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some(next) => {
                            word.push(c);
                            word.push(next);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Splits off the first whitespace-delimited word (legacy `ENV key value`).
pub(crate) fn split_first_word(rest: &str) -> Option<(&str, &str)> {
    let at = rest.find(is_word_space)?;
    let value = rest[at..].trim_start_matches(is_word_space);
    Some((&rest[..at], value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_command_table() {
        let cases: &[(&str, &str, &[&str], &str)] = &[
            ("RUN echo hi", "RUN", &[], "echo hi"),
            (
                "  copy   --from=a  --chown=\"1 2\" x y ",
                "copy",
                &["--from=a", "--chown=1 2"],
                "x y",
            ),
            (
                "RUN --mount=type=cache,target=/x -- --not-a-flag",
                "RUN",
                &["--mount=type=cache,target=/x"],
                "--not-a-flag",
            ),
            ("RUN --network=none", "RUN", &["--network=none"], ""),
            ("RUN -x", "RUN", &[], "-x"),
            ("FROM", "FROM", &[], ""),
            ("RUN --a=\\\"b", "RUN", &["--a=\"b"], ""),
            ("RUN --e='' x", "RUN", &["--e="], "x"),
        ];
        for (line, keyword, flags, rest) in cases {
            let (k, f, r) = split_command(line);
            assert_eq!(
                (k, f.iter().map(String::as_str).collect::<Vec<_>>(), r),
                (*keyword, flags.to_vec(), *rest),
                "{line:?}"
            );
        }
    }

    #[test]
    fn quoted_words_table() {
        let cases: &[(&str, char, &[&str])] = &[
            ("a=1 b=2", '\\', &["a=1", "b=2"]),
            ("a=\"x y\" b='p q'", '\\', &["a=\"x y\"", "b='p q'"]),
            ("a=x\\ y", '\\', &["a=x\\ y"]),
            ("a=\"x\\\"y\"", '\\', &["a=\"x\\\"y\""]),
            ("a='x\\' b", '\\', &["a='x\\'", "b"]),
            ("a=x` y", '`', &["a=x` y"]),
            ("\"\"", '\\', &["\"\""]),
            ("a \\", '\\', &["a"]),
        ];
        for (text, escape, want) in cases {
            assert_eq!(quoted_words(text, *escape), *want, "{text:?}");
        }
    }
}
