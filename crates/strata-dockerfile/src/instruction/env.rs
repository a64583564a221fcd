//! `ENV`, `LABEL` (`key=value` pairs, or the legacy `KEY value`) and `ARG name[=default]`.
//! Keys and values keep their quotes until expansion, which processes both.

use crate::error::ParseErrorKind;
use crate::expand::ExpandErrorKind;
use crate::shell::{Env, Lexer};
use crate::words::{quoted_words, split_first_word};

/// `key=value` of ENV/LABEL, unexpanded (quotes kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written in the legacy `ENV key value` form.
    pub legacy: bool,
}

/// `ARG name[=default]`, unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// ENV/LABEL: `k=v k2="v 2"` or the legacy `ENV k v`.
pub(crate) fn key_values(
    rest: &str,
    escape: char,
    instruction: &'static str,
) -> Result<Vec<KeyValue>, ParseErrorKind> {
    let words = quoted_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(ParseErrorKind::AtLeastOneArgument { instruction });
    };
    if !first.contains('=') {
        let Some((key, value)) = split_first_word(rest) else {
            return Err(ParseErrorKind::MissingValue { instruction });
        };
        return Ok(vec![KeyValue {
            key: key.to_string(),
            value: value.to_string(),
            legacy: true,
        }]);
    }
    words
        .into_iter()
        .map(|word| {
            let Some((key, value)) = word.split_once('=') else {
                return Err(ParseErrorKind::MissingEquals { word });
            };
            if key.is_empty() {
                return Err(ParseErrorKind::BlankName { instruction });
            }
            Ok(KeyValue {
                key: key.to_string(),
                value: value.to_string(),
                legacy: false,
            })
        })
        .collect()
}

pub(crate) fn parse_arg(rest: &str, escape: char) -> Result<Vec<ArgDecl>, ParseErrorKind> {
    let words = quoted_words(rest, escape);
    if words.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument { instruction: "ARG" });
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(ParseErrorKind::BlankName { instruction: "ARG" }),
            Some((name, default)) => Ok(ArgDecl {
                name: name.to_string(),
                default: Some(default.to_string()),
            }),
            None => Ok(ArgDecl {
                name: word,
                default: None,
            }),
        })
        .collect()
}

/// ENV/LABEL pairs with keys and values expanded.
pub(crate) fn expand_pairs(
    kvs: &[KeyValue],
    lexer: &Lexer,
    env: &dyn Env,
) -> Result<Vec<KeyValue>, ExpandErrorKind> {
    let word =
        |w: &str| -> Result<String, ExpandErrorKind> { Ok(lexer.expand_word(w, env)?.value) };
    kvs.iter()
        .map(|kv| {
            Ok(KeyValue {
                key: word(&kv.key)?,
                value: word(&kv.value)?,
                legacy: kv.legacy,
            })
        })
        .collect()
}

/// ARG declarations with names and defaults expanded.
pub(crate) fn expand_args(
    decls: &[ArgDecl],
    lexer: &Lexer,
    env: &dyn Env,
) -> Result<Vec<ArgDecl>, ExpandErrorKind> {
    let word =
        |w: &str| -> Result<String, ExpandErrorKind> { Ok(lexer.expand_word(w, env)?.value) };
    decls
        .iter()
        .map(|d| {
            Ok(ArgDecl {
                name: word(&d.name)?,
                default: d.default.as_deref().map(word).transpose()?,
            })
        })
        .collect()
}
