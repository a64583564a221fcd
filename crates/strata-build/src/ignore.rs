//! `.dockerignore`: reading the file and matching paths, a port of moby/patternmatcher.
//!
//! Reading ([`parse_ignore_file`]) follows `ignorefile.ReadAll`: a UTF-8 BOM is dropped, a line
//! whose first character is `#` is a comment (a `#` after leading blanks is not), lines are
//! trimmed, `!` marks an exception, each pattern goes through `path.Clean` and loses a leading
//! `/` (the context root is both `.` and `/`).
//!
//! Matching ([`PatternMatcher`]) follows `patternmatcher.New` and `MatchesOrParentMatches`:
//! patterns are anchored at the context root, `*` and `?` never cross `/`, `**` spans any number
//! of directories, a pattern also matches everything under a directory it matches, and the last
//! matching pattern wins, so `!keep` re-includes a file that an earlier pattern excluded, even
//! inside an excluded directory. patternmatcher compiles to Go regexps with three fast paths
//! (exact, `prefix/**`, `**/suffix`); the fast paths are reproduced exactly, quirks included
//! (`**foo` matches `afoo`). Characters inside a class are taken literally, where Go's regexp
//! would also interpret a few escapes such as `\d` (a pattern nobody writes on purpose).

use crate::glob::{self, Token};
use crate::paths;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a set of ignore patterns was refused.
#[derive(Debug, Error)]
pub enum IgnoreError {
    /// A bare `!` (nothing to re-include).
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclamation,
    /// A pattern that Go's `filepath.Match` rejects.
    #[error(transparent)]
    Syntax(#[from] glob::PatternError),
    /// The ignore file exists but could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The ignore file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// Parses the text of a `.dockerignore` file into patterns (exceptions keep their `!`).
pub fn parse_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = paths::clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        patterns.push(cleaned);
    }
    patterns
}

/// Finds and reads the ignore file for a build, as BuildKit does: `<Dockerfile>.dockerignore`
/// next to the Dockerfile wins over `.dockerignore` at the context root. Returns the file used
/// (if any) and its patterns.
pub fn load_ignore_patterns(
    context_dir: &Path,
    dockerfile: Option<&Path>,
) -> Result<Option<(PathBuf, Vec<String>)>, IgnoreError> {
    let mut candidates = Vec::new();
    if let Some(dockerfile) = dockerfile
        && let Some(name) = dockerfile.file_name()
    {
        let mut specific = name.to_os_string();
        specific.push(".dockerignore");
        candidates.push(dockerfile.with_file_name(specific));
    }
    candidates.push(context_dir.join(".dockerignore"));
    for candidate in candidates {
        match std::fs::read(&candidate) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                return Ok(Some((candidate, parse_ignore_file(&text))));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IgnoreError::Read {
                    path: candidate,
                    source,
                });
            }
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    match_type: MatchType,
    tokens: Vec<Token>,
    depth: usize,
}

impl Pattern {
    fn compile(cleaned: String, exclusion: bool) -> Result<Self, IgnoreError> {
        // patternmatcher validates with filepath.Match before compiling its regexp.
        glob::validate_go_pattern(&cleaned)?;
        let chars: Vec<char> = cleaned.chars().collect();
        let mut tokens = Vec::new();
        let mut detected = MatchType::Exact;
        let mut i = 0;
        let mut first = true;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        if detected == MatchType::Exact {
                            detected = MatchType::Prefix;
                        } else {
                            tokens.push(Token::AnyRun);
                            detected = MatchType::Regexp;
                        }
                    } else {
                        tokens.push(Token::DirStar);
                        detected = MatchType::Regexp;
                    }
                    if first {
                        detected = MatchType::Suffix;
                    }
                }
                '*' => {
                    tokens.push(Token::Star);
                    detected = MatchType::Regexp;
                }
                '?' => {
                    tokens.push(Token::Any);
                    detected = MatchType::Regexp;
                }
                '\\' => match chars.get(i) {
                    Some(next) => {
                        tokens.push(Token::Lit(*next));
                        i += 1;
                        detected = MatchType::Regexp;
                    }
                    None => tokens.push(Token::Lit('\\')),
                },
                '[' => {
                    let (token, next) = glob::parse_class(&chars, i, &cleaned)?;
                    tokens.push(token);
                    i = next;
                    detected = MatchType::Regexp;
                }
                ']' => {
                    tokens.push(Token::Lit(']'));
                    detected = MatchType::Regexp;
                }
                // Passed unescaped into the Go regexp, where it anchors at the start.
                '^' => tokens.push(Token::Anchor),
                c => tokens.push(Token::Lit(c)),
            }
            first = false;
        }
        let depth = cleaned.split('/').count();
        Ok(Self {
            cleaned,
            exclusion,
            match_type: detected,
            tokens,
            depth,
        })
    }

    /// The cleaned pattern text (without the `!`).
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> bool {
        match self.match_type {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchType::Regexp => glob::run(&self.tokens, path),
        }
    }
}

/// Per-pattern results for a directory, passed down while walking a tree
/// (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of patterns where the last match wins.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles patterns as `patternmatcher.New` does (trim, clean, `!` prefix, syntax check).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        for pattern in patterns {
            let trimmed = pattern.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut cleaned = paths::clean(trimmed);
            let mut exclusion = false;
            if let Some(rest) = cleaned.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(IgnoreError::BareExclamation);
                }
                exclusion = true;
                exclusions = true;
                cleaned = rest.to_string();
            }
            compiled.push(Pattern::compile(cleaned, exclusion)?);
        }
        Ok(Self {
            patterns: compiled,
            exclusions,
        })
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `path` (slash-separated, relative to the root) is excluded: the last pattern that
    /// matches it or one of its parent directories decides.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let parent = paths::dir(path);
        let parent_dirs: Vec<&str> = if parent == "." {
            Vec::new()
        } else {
            parent.split('/').collect()
        };
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit {
                for i in 1..=parent_dirs.len() {
                    if pattern.matches(&parent_dirs[..i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether `path` itself (no parent matching) is excluded.
    pub fn matches_exact(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(path) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// The walking form of [`Self::matches_or_parent_matches`]: the caller passes the
    /// [`MatchInfo`] of the parent directory (default for a top-level entry) and gets the one
    /// for this path, so each pattern is evaluated once per path instead of once per ancestor.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let mut info = MatchInfo::default();
        let matched = self.matches_using_parent_results_into(path, parent, &mut info);
        (matched, info)
    }

    /// [`Self::matches_using_parent_results`] writing the path's [`MatchInfo`] into `info`,
    /// whose buffer is reused: a walk keeps one for the files of a directory and copies it
    /// only for subdirectories.
    pub fn matches_using_parent_results_into(
        &self,
        path: &str,
        parent: &MatchInfo,
        info: &mut MatchInfo,
    ) -> bool {
        info.parent_matched.clear();
        info.parent_matched.resize(self.patterns.len(), false);
        let parent_known = parent.parent_matched.len() == self.patterns.len();
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = parent_known && parent.parent_matched[i];
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && !parent_known {
                    let parent_path = paths::dir(path);
                    if parent_path != "." {
                        let dirs: Vec<&str> = parent_path.split('/').collect();
                        hit = (1..=dirs.len()).any(|n| pattern.matches(&dirs[..n].join("/")));
                    }
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// For an excluded directory: whether the walk must still descend because an exception
    /// could re-include something inside it. With only wildcard-free exceptions this is exact
    /// (an exception must start with `dir/`), as in fsutil; with wildcard exceptions any
    /// excluded directory may hide a re-included file.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            glob::contains_wildcards(&p.cleaned)
                || format!("{}/", p.cleaned).starts_with(&dir_slash)
        })
    }

    /// The depth (number of `/`-separated parts) of the deepest pattern; exposed for callers
    /// that want to bound work.
    pub fn max_depth(&self) -> usize {
        self.patterns.iter().map(|p| p.depth).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(text: &str) -> PatternMatcher {
        PatternMatcher::new(&parse_ignore_file(text)).expect("valid patterns")
    }

    /// `.dockerignore text | path | excluded?` rows (MatchesOrParentMatches semantics).
    #[test]
    fn dockerignore_table() {
        let rows: &[(&str, &str, bool)] = &[
            // plain names are anchored at the root
            ("foo", "foo", true),
            ("foo", "a/foo", false),
            ("foo", "foo/bar", true),
            ("foo", "foobar", false),
            ("foo/bar", "foo/bar", true),
            ("foo/bar", "foo/bar/baz", true),
            ("foo/bar", "foo", false),
            // a leading slash and ./ are the same root
            ("/foo", "foo", true),
            ("./foo", "foo", true),
            ("foo/", "foo/x", true),
            ("foo/../bar", "bar", true),
            ("foo//bar", "foo/bar", true),
            ("/", "x", false),
            // * and ? do not cross directories
            ("*.log", "a.log", true),
            ("*.log", "sub/a.log", false),
            ("*/*.log", "sub/a.log", true),
            ("*/*.log", "a/b/c.log", false),
            ("?.txt", "a.txt", true),
            ("?.txt", "ab.txt", false),
            ("?.txt", "a/b.txt", false),
            ("a?c", "a/c", false),
            ("*", "anything", true),
            ("*", "dir/file", true),
            // ** spans directories
            ("**/*.log", "a.log", true),
            ("**/*.log", "x/y/a.log", true),
            ("**/foo", "foo", true),
            ("**/foo", "a/b/foo", true),
            ("**/foo", "a/xfoo", false),
            ("**foo", "afoo", true),
            ("**", "any/thing", true),
            ("foo/**", "foo/x", true),
            ("foo/**", "foo/x/y", true),
            ("foo/**", "foo", false),
            ("foo/**", "foobar", false),
            ("foo**", "foobar/x", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/y/c", false),
            ("a/**/b", "a/x/b/c", true),
            ("a**b", "ab", true),
            ("a**b", "ax/b", true),
            ("a**b", "axb", false),
            ("**/a/**", "x/a/y", true),
            ("**/a/**", "a/y", true),
            ("*/**", "x/y", true),
            // classes: [!...] is a literal !, [^...] negates
            ("[ab].txt", "a.txt", true),
            ("[ab].txt", "c.txt", false),
            ("[!a]bc", "!bc", true),
            ("[!a]bc", "xbc", false),
            ("[!a]bc", "abc", true),
            ("[^a]bc", "xbc", true),
            ("[^a]bc", "abc", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            // escapes
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("\\[x\\]", "[x]", true),
            ("a.b", "a.b", true),
            ("a.b", "axb", false),
            ("*.b", "axb", false),
            ("(x)", "(x)", true),
            ("a+b", "a+b", true),
            ("a$b", "a$b", true),
            ("{a}", "{a}", true),
            ("a|b", "a", false),
            // exceptions: last match wins
            ("*.md\n!README.md", "README.md", false),
            ("*.md\n!README.md", "CHANGES.md", true),
            ("!README.md\n*.md", "README.md", true),
            ("docs\n!docs/keep.txt", "docs/keep.txt", false),
            ("docs\n!docs/keep.txt", "docs/other.txt", true),
            ("docs\n!docs/keep.txt\ndocs/keep.txt", "docs/keep.txt", true),
            ("**\n!src", "src/main.rs", false),
            ("**\n!src", "Cargo.toml", true),
            ("*\n!src/**\nsrc/gen", "src/gen/x", true),
            ("*\n!src/**\nsrc/gen", "src/lib.rs", false),
            ("dir\n!dir/sub\ndir/sub/x", "dir/sub/y", false),
            ("dir\n!dir/sub\ndir/sub/x", "dir/sub/x", true),
            // comments and whitespace
            ("# foo\nbar", "# foo", false),
            ("# foo\nbar", "bar", true),
            ("  # foo", "# foo", true),
            ("  foo  ", "foo", true),
            ("\tfoo\t\n", "foo", true),
            ("foo\r\n", "foo", true),
            ("\u{feff}foo", "foo", true),
            ("! foo\n*", "foo", true),
            ("*\n! foo", "foo", false),
            // a pattern that is a parent of the path excludes it
            ("node_modules", "node_modules/a/b/c.js", true),
            ("*/node_modules", "pkg/node_modules/x", true),
            ("*/node_modules", "node_modules/x", false),
            // the Go regexp anchor quirk: ^ in a regexp pattern only matches at the start
            ("^a*", "abc", true),
            ("x^a*", "x^abc", false),
            ("x^a", "x^a", true),
        ];
        assert!(rows.len() >= 80, "the table covers at least 80 cases");
        for (text, path, expected) in rows {
            let m = matcher(text);
            assert_eq!(
                m.matches_or_parent_matches(path),
                *expected,
                "patterns {text:?} path {path:?}"
            );
            // The walking form agrees with the one-shot form when fed parent results.
            let mut info = MatchInfo::default();
            let mut result = false;
            let parts: Vec<&str> = path.split('/').collect();
            for n in 1..=parts.len() {
                let (r, next) = m.matches_using_parent_results(&parts[..n].join("/"), &info);
                result = r;
                info = next;
            }
            assert_eq!(
                result, *expected,
                "walking form: patterns {text:?} path {path:?}"
            );
        }
    }

    #[test]
    fn reading_cleans_and_strips() {
        assert_eq!(
            parse_ignore_file("# c\n\n /a/b/ \n!./c\n!\n  \nx/../y\n/\n"),
            vec!["a/b", "!c", "!", "y", "/"]
        );
    }

    #[test]
    fn bare_exclamation_is_an_error() {
        let err = PatternMatcher::new(&parse_ignore_file("!\n")).unwrap_err();
        assert_eq!(err.to_string(), "illegal exclusion pattern: \"!\"");
        assert!(PatternMatcher::new(&["! "]).is_err());
    }

    #[test]
    fn bad_syntax_is_an_error() {
        for bad in ["[", "a[", "[]", "[-a]", "x\\"] {
            assert!(
                matches!(PatternMatcher::new(&[bad]), Err(IgnoreError::Syntax(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn exceptions_force_descending_into_excluded_dirs() {
        let m = matcher("docs\n!docs/keep.txt");
        assert!(m.may_reinclude_under("docs"));
        assert!(!m.may_reinclude_under("other"));
        let m = matcher("build\n!**/*.keep");
        assert!(m.may_reinclude_under("build"));
        let m = matcher("build");
        assert!(!m.may_reinclude_under("build"));
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "root-rule\n").unwrap();
        std::fs::create_dir(dir.path().join("build")).unwrap();
        let dockerfile = dir.path().join("build/app.Dockerfile");
        std::fs::write(&dockerfile, "FROM scratch\n").unwrap();

        let (used, patterns) = load_ignore_patterns(dir.path(), Some(&dockerfile))
            .unwrap()
            .unwrap();
        assert_eq!(used, dir.path().join(".dockerignore"));
        assert_eq!(patterns, vec!["root-rule"]);

        std::fs::write(
            dir.path().join("build/app.Dockerfile.dockerignore"),
            "specific\n",
        )
        .unwrap();
        let (used, patterns) = load_ignore_patterns(dir.path(), Some(&dockerfile))
            .unwrap()
            .unwrap();
        assert_eq!(used, dir.path().join("build/app.Dockerfile.dockerignore"));
        assert_eq!(patterns, vec!["specific"]);

        let empty = tempfile::tempdir().unwrap();
        assert!(load_ignore_patterns(empty.path(), None).unwrap().is_none());
    }
}
