//! `FROM [--platform=p] image [AS name]`: the start of a stage. The image (and platform) are
//! expanded with the global ARGs when planning, never at build time.

use crate::error::ParseErrorKind;
use crate::flags::{FlagType, Flags};
use crate::words::whitespace_words;

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromCommand {
    /// The base: an image reference, `scratch` or an earlier stage's name; unexpanded
    /// (expanded with the global ARGs when planning).
    pub image: String,
    /// `AS name`, when given.
    pub stage: Option<StageName>,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
}

/// A stage name: matched case-insensitively, validated as `[a-z][a-z0-9-_.]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageName {
    /// Lower-cased: the name stages are matched by.
    pub name: String,
    /// As written.
    pub as_written: String,
    /// The `AS` keyword as written (`AS`, `as`), for FromAsCasing.
    pub as_keyword: String,
}

pub(crate) fn parse_from(flag_words: &[String], rest: &str) -> Result<FromCommand, ParseErrorKind> {
    let flags = Flags::parse(flag_words, &[("platform", FlagType::String)])?;
    let args = whitespace_words(rest);
    let stage = match args.as_slice() {
        [_] => None,
        [_, as_keyword, name] if as_keyword.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(ParseErrorKind::InvalidStageName { name: name.clone() });
            }
            Some(StageName {
                name: lower,
                as_written: name.clone(),
                as_keyword: as_keyword.clone(),
            })
        }
        _ => return Err(ParseErrorKind::FromArguments),
    };
    Ok(FromCommand {
        image: args[0].clone(),
        stage,
        platform: flags.string("platform"),
    })
}

/// `^[a-z][a-z0-9-_.]*$` (on the lower-cased name).
pub(crate) fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}
