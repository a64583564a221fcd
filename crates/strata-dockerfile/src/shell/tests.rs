//! The lexer's specification: the table files in `testdata/shell/*.txt`, plus a few cases tables
//! cannot spell (newlines, the API of [`Env`]).
//!
//! Table format, one case per line (`#` starts a comment line):
//!
//! ```text
//! env NAME=value          defines a variable for the lines that follow (`env NAME` = empty value)
//! escape `                sets the escape character
//! lexer raw_quotes ...    sets lexer options (raw_quotes raw_escapes skip_process_quotes skip_unset_env; `lexer` alone resets)
//! mode value | words      compares the expanded value, or the split words
//! input | expected        expected: a value, `error`, or `error: <message>`
//! input | expected | undefined: A B      also checks the undefined variables, in order
//! ```
//!
//! Fields are trimmed; `«...»` keeps a field verbatim (spaces, `|`, the empty string). In words mode
//! the expected words are separated by `,`, or written as `«w1» «w2»`, and `«»`-alone means no words.

use std::fmt::Write as _;
use std::path::Path;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Value,
    Words,
}

/// Reads one field: trimmed, or verbatim between guillemets.
fn field(text: &str) -> String {
    let text = text.trim();
    match text.strip_prefix('«').and_then(|t| t.strip_suffix('»')) {
        Some(inner) if !inner.contains('»') => inner.to_owned(),
        _ => text.to_owned(),
    }
}

/// Splits a case line into input, expected and the optional third column, on ` | `; a verbatim
/// input (`«...»`) may itself contain ` | `.
fn split_case(line: &str) -> Option<(String, String, Option<String>)> {
    let (input, rest) = match line.trim_start().strip_prefix('«') {
        Some(verbatim) => {
            let end = verbatim.find("» | ")?;
            (verbatim[..end].to_owned(), &verbatim[end + "» | ".len()..])
        }
        None => {
            let (input, rest) = line.split_once(" | ")?;
            (field(input), rest)
        }
    };
    let mut parts = rest.split(" | ");
    let expected = parts.next()?.trim().to_owned();
    let extra = parts.next().map(field);
    if parts.next().is_some() {
        return None;
    }
    Some((input, expected, extra))
}

/// Words mode: `a,b,c`, or `«w1» «w2»` (verbatim words; `«»` alone means no words).
fn expected_words(expected: &str) -> Vec<String> {
    let trimmed = expected.trim();
    if trimmed.is_empty() || trimmed == "«»" {
        return Vec::new();
    }
    if !trimmed.starts_with('«') {
        return trimmed.split(',').map(str::to_owned).collect();
    }
    let mut words = Vec::new();
    let mut rest = trimmed;
    while let Some(open) = rest.find('«') {
        let after = &rest[open + '«'.len_utf8()..];
        let Some(close) = after.find('»') else { break };
        words.push(after[..close].to_owned());
        rest = &after[close + '»'.len_utf8()..];
    }
    words
}

/// Runs one table file, returning one message per failing line.
fn run_table(path: &Path) -> (usize, Vec<String>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return (0, vec![format!("{}: cannot read: {e}", path.display())]),
    };
    let mut env: Vec<(String, String)> = Vec::new();
    let mut lexer = Lexer::new('\\');
    let mut mode = Mode::Value;
    let mut failures = Vec::new();
    let mut cases = 0;
    for (index, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", index + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(definition) = line.strip_prefix("env ") {
            let (key, value) = definition.split_once('=').unwrap_or((definition, ""));
            env.push((key.to_owned(), value.to_owned()));
            continue;
        }
        if line == "env-reset" {
            env.clear();
            continue;
        }
        if let Some(escape) = line.strip_prefix("escape ") {
            let options = lexer;
            lexer = Lexer::new(escape.chars().next().unwrap_or('\\'))
                .raw_quotes(options.raw_quotes)
                .raw_escapes(options.raw_escapes)
                .skip_process_quotes(options.skip_process_quotes)
                .skip_unset_env(options.skip_unset_env);
            continue;
        }
        if line == "lexer" || line.starts_with("lexer ") {
            let mut next = Lexer::new(lexer.escape());
            for option in line.split_whitespace().skip(1) {
                next = match option {
                    "raw_quotes" => next.raw_quotes(true),
                    "raw_escapes" => next.raw_escapes(true),
                    "skip_process_quotes" => next.skip_process_quotes(true),
                    "skip_unset_env" => next.skip_unset_env(true),
                    other => {
                        failures.push(format!("{at}: unknown lexer option {other:?}"));
                        next
                    }
                };
            }
            lexer = next;
            continue;
        }
        if let Some(m) = line.strip_prefix("mode ") {
            mode = match m.trim() {
                "value" => Mode::Value,
                "words" => Mode::Words,
                other => {
                    failures.push(format!("{at}: unknown mode {other:?}"));
                    mode
                }
            };
            continue;
        }
        let Some((input, expected, extra)) = split_case(line) else {
            failures.push(format!("{at}: malformed line {line:?}"));
            continue;
        };
        cases += 1;
        let result = lexer.expand_word(&input, &env);
        let mut problem = String::new();
        match (&result, expected.strip_prefix("error")) {
            (Err(error), Some(message)) => {
                let message = message.strip_prefix(':').map(str::trim);
                if let Some(message) = message
                    && error.kind.to_string() != message
                {
                    let _ = write!(
                        problem,
                        "error {:?}, expected {message:?}",
                        error.kind.to_string()
                    );
                }
            }
            (Ok(expanded), Some(_)) => {
                let _ = write!(
                    problem,
                    "expanded to {:?} / {:?}, expected an error",
                    expanded.value, expanded.words
                );
            }
            (Err(error), None) => {
                let _ = write!(problem, "{error}, expected {expected:?}");
            }
            (Ok(expanded), None) => match mode {
                Mode::Value if expanded.value != field(&expected) => {
                    let _ = write!(
                        problem,
                        "got {:?}, expected {:?}",
                        expanded.value,
                        field(&expected)
                    );
                }
                Mode::Words if expanded.words != expected_words(&expected) => {
                    let _ = write!(
                        problem,
                        "got words {:?}, expected {:?}",
                        expanded.words,
                        expected_words(&expected)
                    );
                }
                _ => {}
            },
        }
        if let (Some(extra), Ok(expanded)) = (&extra, &result) {
            match extra.strip_prefix("undefined:") {
                Some(names) => {
                    let names: Vec<&str> = names.split_whitespace().collect();
                    if expanded.unmatched != names {
                        let _ = write!(
                            problem,
                            " undefined {:?}, expected {names:?}",
                            expanded.unmatched
                        );
                    }
                }
                None => {
                    let _ = write!(problem, " unknown third column {extra:?}");
                }
            }
        }
        if !problem.is_empty() {
            failures.push(format!("{at}: {input:?}: {}", problem.trim()));
        }
    }
    (cases, failures)
}

#[test]
fn table_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/shell");
    let mut paths: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect(),
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    paths.sort();
    assert!(!paths.is_empty(), "no table files in {}", dir.display());
    let mut total = 0;
    let mut failures = Vec::new();
    for path in &paths {
        let (cases, mut fails) = run_table(path);
        total += cases;
        failures.append(&mut fails);
    }
    assert!(
        failures.is_empty(),
        "{} of {total} table cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 300, "only {total} table cases");
}

fn env_of(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn every_env_kind_is_an_env() {
    let lexer = Lexer::default();
    let list = env_of(&[("A", "1"), ("A", "2")]);
    let hash: HashMap<String, String> = list.iter().cloned().collect();
    let tree: BTreeMap<String, String> = list.iter().cloned().collect();
    let slice: &[(String, String)] = &list;
    for env in [&hash as &dyn Env, &tree, &slice, &list] {
        assert_eq!(
            lexer.expand_word("$A", env).map(|e| e.value),
            Ok("2".to_owned())
        );
    }
}

#[test]
fn newlines_are_ordinary_characters_but_split_words() {
    let lexer = Lexer::default();
    let env = env_of(&[("NL", "a\nb")]);
    let expanded = lexer
        .expand_word("x\\\ny $NL \"$NL\"", &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(expanded.value, "x\ny a\nb a\nb");
    assert_eq!(expanded.words, ["x\ny", "a", "b", "a\nb"]);
    // a star does not cross a newline (Go's `.`)
    let env = env_of(&[("V", "one\ntwo")]);
    assert_eq!(
        lexer.expand_word("${V%%o*}", &env).map(|e| e.value),
        Ok("one\ntw".to_owned())
    );
}

#[test]
fn matched_and_unmatched_are_recorded_once_in_order() {
    let lexer = Lexer::default();
    let env = env_of(&[("FOO", "x"), ("BAR", "")]);
    let expanded = lexer
        .expand_word("$FOO $NOPE ${BAR:-$ALSO} $FOO ${NOPE}", &env)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(expanded.matched, ["FOO", "BAR"]);
    assert_eq!(expanded.unmatched, ["NOPE", "ALSO"]);
}

#[test]
fn errors_point_at_the_construct_and_name_the_word() {
    let lexer = Lexer::default();
    let env = env_of(&[]);
    let error = lexer.expand_word("ab'cd", &env).err();
    assert_eq!(
        error.as_ref().map(|e| (e.offset, e.kind.clone())),
        Some((2, ShellErrorKind::UnterminatedSingleQuote))
    );
    let error = lexer.expand_word("x ${V:?is required}", &env).err();
    assert_eq!(error.as_ref().map(|e| e.offset), Some(2));
    assert_eq!(
        error.map(|e| e.to_string()).as_deref(),
        Some("failed to process \"x ${V:?is required}\": V: is required")
    );
}

#[test]
fn a_leading_byte_order_mark_is_ignored() {
    let lexer = Lexer::default();
    assert_eq!(
        lexer
            .expand_word("\u{FEFF}a", &env_of(&[]))
            .map(|e| e.value),
        Ok("a".to_owned())
    );
}

#[test]
fn deep_nesting_is_refused_before_the_stack_runs_out() {
    let env = env_of(&[]);
    let nested = |depth: usize| format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let lexer = Lexer::default();
    assert_eq!(
        lexer
            .expand_word(&nested(MAX_NESTING), &env)
            .map(|e| e.value),
        Ok("x".to_owned())
    );
    // a small thread stack, as async runtimes give their workers
    let deep = nested(50_000);
    let outcome = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            Lexer::default()
                .expand_word(&deep, &env_of(&[]))
                .map_err(|e| e.kind)
        })
        .map(|handle| handle.join());
    assert!(
        matches!(
            outcome,
            Ok(Ok(Err(ShellErrorKind::TooDeep { limit: MAX_NESTING })))
        ),
        "{outcome:?}"
    );
}

#[test]
fn expansion_growth_is_bounded_but_written_text_is_not() {
    let lexer = Lexer::default();
    let half = "x".repeat(MAX_EXPANSION_GROWTH / 2 + 100);
    let env = env_of(&[("A", half.as_str())]);
    // one value of half the bound fits; twice it does not, quoted, nested or in a modifier
    assert_eq!(
        lexer.expand_word("$A", &env).map(|e| e.value.len()),
        Ok(half.len())
    );
    for word in ["$A$A", "\"$A$A\"", "${B:-$A$A}", "${A:+$A}$A"] {
        assert_eq!(
            lexer.expand_word(word, &env).map_err(|e| e.kind),
            Err(ShellErrorKind::ExpansionTooLong {
                limit: MAX_EXPANSION_GROWTH
            }),
            "{word}"
        );
    }
    // a long literal word (a heredoc body) with a small substitution still expands
    let body = format!("{}$B\n", "y".repeat(2 * MAX_EXPANSION_GROWTH));
    let env = env_of(&[("B", "tail")]);
    assert_eq!(
        lexer.expand_word(&body, &env).map(|e| e.value.len()),
        Ok(2 * MAX_EXPANSION_GROWTH + 5)
    );
}
