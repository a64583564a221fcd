//! Heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) as BuildKit recognizes them.
//!
//! A heredoc marker is a whole shell word of the instruction line matching `[fd]<<[-]word`; the
//! body follows the line up to a line equal to the word (after stripping leading tabs for `<<-`).
//! Quoting any part of the word disables expansion of the body, as in a POSIX shell.

/// A heredoc marker found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub fd: Option<u32>,
    pub chomp: bool,
    pub expand: bool,
}

/// A heredoc: its delimiter, flags and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), when given.
    pub fd: Option<u32>,
    /// `<<-`: leading tabs are stripped from body lines (and the delimiter line).
    pub chomp: bool,
    /// The delimiter was unquoted: COPY/ADD bodies are expanded.
    pub expand: bool,
    /// The body as written, line terminators included, delimiter line excluded.
    pub raw: String,
}

impl Heredoc {
    pub(crate) fn new(marker: Marker, raw: String) -> Heredoc {
        Heredoc {
            name: marker.name,
            fd: marker.fd,
            chomp: marker.chomp,
            expand: marker.expand,
            raw,
        }
    }

    /// The body with `<<-` tab stripping applied: the content a file or script receives.
    pub fn content(&self) -> String {
        if !self.chomp {
            return self.raw.clone();
        }
        self.raw
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// The heredoc markers on `line`, in order.
pub(crate) fn markers(line: &str) -> Vec<Marker> {
    raw_words(line)
        .iter()
        .filter_map(|word| marker(word))
        .collect()
}

/// Parses one word as a heredoc marker (`^(\d*)<<(-?)([^<]*)$`).
pub(crate) fn marker(word: &str) -> Option<Marker> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (fd, rest) = word.split_at(digits);
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest);
    if name.is_empty() {
        return None;
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Some(Marker {
        expand: quotes(&name) == quotes(rest),
        name,
        fd: fd.parse().ok(),
        chomp,
    })
}

/// Splits a line into shell words keeping quotes and escapes as written (BuildKit's lexer with
/// raw quotes and raw escapes); the heredoc detection always uses `\` as escape, as BuildKit does.
pub(crate) fn raw_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                word.push(c);
                for q in chars.by_ref() {
                    word.push(q);
                    if q == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                in_word = true;
                word.push(c);
                while let Some(q) = chars.next() {
                    word.push(q);
                    if q == '\\' {
                        if let Some(escaped) = chars.next() {
                            word.push(escaped);
                        }
                    } else if q == '"' {
                        break;
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(c);
                if let Some(escaped) = chars.next() {
                    word.push(escaped);
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Removes shell quoting from a word: `'..'` literal, `".."` with `\` escapes, bare `\x` → `x`.
fn unquote(word: &str) -> String {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.extend(chars.by_ref().take_while(|&q| q != '\'')),
            '"' => {
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => out.extend(chars.next()),
                        _ => out.push(q),
                    }
                }
            }
            '\\' => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_table() {
        // word | name, fd, chomp, expand (None: not a heredoc)
        type Want = Option<(&'static str, Option<u32>, bool, bool)>;
        let cases: &[(&str, Want)] = &[
            ("<<EOF", Some(("EOF", None, false, true))),
            ("<<-EOF", Some(("EOF", None, true, true))),
            ("<<\"EOF\"", Some(("EOF", None, false, false))),
            ("<<'EOF'", Some(("EOF", None, false, false))),
            ("<<-'E'OF", Some(("EOF", None, true, false))),
            ("3<<FILE", Some(("FILE", Some(3), false, true))),
            ("<<", None),
            ("<<''", None),
            ("<<<EOF", None),
            ("cat<<EOF", None),
            ("'<<EOF'", None),
        ];
        for (word, want) in cases {
            let got = marker(word).map(|m| (m.name, m.fd, m.chomp, m.expand));
            let want = want.map(|(n, fd, c, e)| (n.to_string(), fd, c, e));
            assert_eq!(got, want, "{word:?}");
        }
    }

    #[test]
    fn markers_on_a_line() {
        let names: Vec<String> = markers("RUN <<A cat > /x && python3 <<\"B\" > /out 'x <<C'")
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn chomp_strips_leading_tabs_only() {
        let marker = marker("<<-EOF").unwrap();
        let doc = Heredoc::new(marker, "\t\tone\n  two\n\tthree\n".into());
        assert_eq!(doc.content(), "one\n  two\nthree\n");
    }
}
