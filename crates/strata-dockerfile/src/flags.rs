//! Instruction flags (`--name[=value]`) checked against what each instruction accepts.
//!
//! Mirrors BuildKit's `BFlags`: every instruction parses its flags, so a flag on the wrong
//! instruction is an "unknown flag"; booleans accept a bare `--link` or `--link=true|false`;
//! strings need `=value`; only list flags (`--mount`, `--exclude`) may repeat.

use crate::error::ParseErrorKind;
use crate::suggest::suggest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    String,
    List,
}

/// Parsed flags of one instruction.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    /// Parses `words` (each starting with `--`) against the accepted `spec`.
    pub(crate) fn parse(
        words: &[String],
        spec: &[(&'static str, FlagType)],
    ) -> Result<Flags, ParseErrorKind> {
        let mut flags = Flags::default();
        for word in words {
            let body = word.strip_prefix("--").unwrap_or(word);
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let Some(&(known, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                return Err(ParseErrorKind::UnknownFlag {
                    flag: name.to_string(),
                    suggestion: suggest(name, &names).map(str::to_string),
                });
            };
            if kind != FlagType::List && flags.values.iter().any(|(n, _)| *n == known) {
                return Err(ParseErrorKind::DuplicateFlag {
                    flag: known.to_string(),
                });
            }
            let value = match (kind, value) {
                (FlagType::Bool, None) => "true".to_string(),
                (FlagType::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "" => {
                        return Err(ParseErrorKind::FlagMissingValue {
                            flag: known.to_string(),
                        });
                    }
                    lower @ ("true" | "false") => lower.to_string(),
                    _ => {
                        return Err(ParseErrorKind::FlagNotBoolean {
                            flag: known.to_string(),
                            value: v.to_string(),
                        });
                    }
                },
                (_, None) => {
                    return Err(ParseErrorKind::FlagMissingValue {
                        flag: known.to_string(),
                    });
                }
                (_, Some(v)) => v.to_string(),
            };
            match flags.values.iter_mut().find(|(n, _)| *n == known) {
                Some((_, list)) => list.push(value),
                None => flags.values.push((known, vec![value])),
            }
        }
        Ok(flags)
    }

    /// The value of a string flag.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.list(name).last().cloned()
    }

    /// Every value of a list flag, in order.
    pub(crate) fn list(&self, name: &str) -> &[String] {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// A boolean flag: `None` when absent.
    pub(crate) fn boolean(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, FlagType)] = &[
        ("link", FlagType::Bool),
        ("from", FlagType::String),
        ("exclude", FlagType::List),
    ];

    fn words(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepted_flags() {
        let flags = Flags::parse(
            &words(&["--link", "--from=a", "--exclude=x", "--exclude=y"]),
            SPEC,
        )
        .unwrap();
        assert_eq!(flags.boolean("link"), Some(true));
        assert_eq!(flags.string("from").as_deref(), Some("a"));
        assert_eq!(flags.list("exclude"), ["x", "y"]);
        assert_eq!(
            Flags::parse(&words(&["--link=FALSE"]), SPEC)
                .unwrap()
                .boolean("link"),
            Some(false)
        );
    }

    #[test]
    fn refused_flags() {
        let cases = [
            (
                "--bogus",
                ParseErrorKind::UnknownFlag {
                    flag: "bogus".into(),
                    suggestion: None,
                },
            ),
            (
                "--from",
                ParseErrorKind::FlagMissingValue {
                    flag: "from".into(),
                },
            ),
            (
                "--link=",
                ParseErrorKind::FlagMissingValue {
                    flag: "link".into(),
                },
            ),
            (
                "--link=yes",
                ParseErrorKind::FlagNotBoolean {
                    flag: "link".into(),
                    value: "yes".into(),
                },
            ),
        ];
        for (word, want) in cases {
            assert_eq!(
                Flags::parse(&words(&[word]), SPEC).unwrap_err(),
                want,
                "{word}"
            );
        }
        assert_eq!(
            Flags::parse(&words(&["--from=a", "--from=b"]), SPEC).unwrap_err(),
            ParseErrorKind::DuplicateFlag {
                flag: "from".into()
            }
        );
    }
}
