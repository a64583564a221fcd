//! The instructions that only change the image config: `SHELL`, `USER`, `WORKDIR`,
//! `STOPSIGNAL`, `MAINTAINER`, `VOLUME`, `EXPOSE`, `HEALTHCHECK` and `ONBUILD` (CMD and
//! ENTRYPOINT are plain [`CommandLine`]s).

use super::CommandLine;
use crate::duration::parse_go_duration;
use crate::error::ParseErrorKind;
use crate::flags::{FlagType, Flags};
use crate::syntax::RawInstruction;
use crate::words::{split_command, whitespace_words};
use std::time::Duration;

/// `ONBUILD <instruction>`: recorded verbatim in the image config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnbuildCommand {
    /// The trigger text (the line without `ONBUILD`), as stored in the image's `OnBuild`.
    pub expression: String,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// Disable any healthcheck inherited from the base image.
    None,
    /// A check command with its timing.
    Check(HealthcheckConfig),
}

/// A healthcheck; `None` durations mean "inherit/default", as in docker's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckConfig {
    /// `CMD-SHELL` (shell form) or `CMD` (exec form).
    pub test: CommandLine,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

impl HealthcheckConfig {
    /// Docker's `Test` vector: `["CMD-SHELL", cmd]` or `["CMD", args...]`.
    pub fn test_vector(&self) -> Vec<String> {
        match &self.test {
            CommandLine::Shell(text) => vec!["CMD-SHELL".to_string(), text.clone()],
            CommandLine::Exec(args) => std::iter::once("CMD".to_string())
                .chain(args.iter().cloned())
                .collect(),
        }
    }
}

/// The image-config keys (`80/tcp`) for expanded EXPOSE words: `port`, `port/proto`,
/// `start-end[/proto]` (each port of a range listed), protocol `tcp` (default), `udp` or `sctp`
/// in any case, an `ip:host:` prefix ignored, as docker's `nat.ParsePortSpecs` reads them.
pub fn exposed_ports(words: &[String]) -> Result<Vec<String>, ParseErrorKind> {
    let mut keys = Vec::new();
    for word in words {
        let invalid = || ParseErrorKind::InvalidPort {
            value: word.clone(),
        };
        let (spec, proto) = match word.rsplit_once('/') {
            Some((spec, proto)) => (spec, proto.to_ascii_lowercase()),
            None => (word.as_str(), "tcp".to_string()),
        };
        // `ip:host:container` and `host:container` are accepted (the linter warns): only the
        // container port is exposed.
        let ports = spec
            .rsplit_once(':')
            .map_or(spec, |(_, container)| container);
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(invalid());
        }
        let port = |text: &str| {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse::<u16>().ok()
        };
        let (start, end) = match ports.split_once('-') {
            Some((a, b)) => (port(a).ok_or_else(invalid)?, port(b).ok_or_else(invalid)?),
            None => {
                let p = port(ports).ok_or_else(invalid)?;
                (p, p)
            }
        };
        if end < start {
            return Err(invalid());
        }
        keys.extend((start..=end).map(|p| format!("{p}/{proto}")));
    }
    Ok(keys)
}

/// `ONBUILD <instruction>`: only the trigger's keyword is checked now; the child build parses
/// the trigger. Heredoc bodies travel with the trigger so it can be parsed alone.
pub(crate) fn parse_onbuild(
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
) -> Result<OnbuildCommand, ParseErrorKind> {
    super::no_flags(flag_words)?;
    if rest.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument {
            instruction: "ONBUILD",
        });
    }
    let (trigger, _, _) = split_command(rest);
    check_trigger(trigger)?;
    let mut expression = rest.to_string();
    for doc in &raw.heredocs {
        expression.push('\n');
        expression.push_str(&doc.raw);
        if !doc.raw.is_empty() && !doc.raw.ends_with('\n') {
            expression.push('\n');
        }
        expression.push_str(&doc.name);
    }
    Ok(OnbuildCommand { expression })
}

/// ONBUILD ONBUILD, ONBUILD FROM and ONBUILD MAINTAINER are refused.
pub(crate) fn check_trigger(keyword: &str) -> Result<(), ParseErrorKind> {
    let upper = keyword.to_ascii_uppercase();
    match upper.as_str() {
        "ONBUILD" => Err(ParseErrorKind::OnbuildChaining),
        "FROM" | "MAINTAINER" => Err(ParseErrorKind::OnbuildTrigger { keyword: upper }),
        _ => Ok(()),
    }
}

/// VOLUME paths (JSON or whitespace form), none empty.
pub(crate) fn parse_volume(
    flag_words: &[String],
    rest: &str,
) -> Result<Vec<String>, ParseErrorKind> {
    super::no_flags(flag_words)?;
    let volumes = super::list(rest)?;
    if volumes.0.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument {
            instruction: "VOLUME",
        });
    }
    let mut paths = Vec::with_capacity(volumes.0.len());
    for volume in volumes.0 {
        let volume = volume.trim();
        if volume.is_empty() {
            return Err(ParseErrorKind::EmptyVolume);
        }
        paths.push(volume.to_string());
    }
    Ok(paths)
}

/// EXPOSE port words, as written.
pub(crate) fn parse_expose(
    flag_words: &[String],
    rest: &str,
) -> Result<Vec<String>, ParseErrorKind> {
    super::no_flags(flag_words)?;
    let ports = whitespace_words(rest);
    if ports.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument {
            instruction: "EXPOSE",
        });
    }
    Ok(ports)
}

/// SHELL: a non-empty JSON array.
pub(crate) fn parse_shell(
    flag_words: &[String],
    rest: &str,
) -> Result<Vec<String>, ParseErrorKind> {
    super::no_flags(flag_words)?;
    match super::command_line(rest)? {
        CommandLine::Exec(args) if !args.is_empty() => Ok(args),
        CommandLine::Exec(_) => Err(ParseErrorKind::AtLeastOneArgument {
            instruction: "SHELL",
        }),
        CommandLine::Shell(_) => Err(ParseErrorKind::NotJson {
            instruction: "SHELL",
        }),
    }
}

/// USER, WORKDIR, STOPSIGNAL, MAINTAINER: the rest of the line, which must not be empty.
pub(crate) fn one_string(
    flag_words: &[String],
    rest: &str,
    instruction: &'static str,
) -> Result<String, ParseErrorKind> {
    super::no_flags(flag_words)?;
    if rest.is_empty() {
        return Err(ParseErrorKind::ExactlyOneArgument { instruction });
    }
    Ok(rest.to_string())
}

pub(crate) fn parse_healthcheck(
    flag_words: &[String],
    rest: &str,
) -> Result<Healthcheck, ParseErrorKind> {
    let (kind, args) = match rest.find(char::is_whitespace) {
        Some(at) => (&rest[..at], rest[at..].trim_start()),
        None => (rest, ""),
    };
    if kind.is_empty() {
        return Err(ParseErrorKind::AtLeastOneArgument {
            instruction: "HEALTHCHECK",
        });
    }
    let kind_upper = kind.to_ascii_uppercase();
    if kind_upper == "NONE" {
        if !args.is_empty() {
            return Err(ParseErrorKind::HealthcheckNoneArguments);
        }
        // BuildKit does not read flags for NONE: they are accepted and ignored.
        return Ok(Healthcheck::None);
    }
    let flags = Flags::parse(
        flag_words,
        &[
            ("interval", FlagType::String),
            ("timeout", FlagType::String),
            ("start-period", FlagType::String),
            ("start-interval", FlagType::String),
            ("retries", FlagType::String),
        ],
    )?;
    if kind_upper != "CMD" {
        return Err(ParseErrorKind::HealthcheckType {
            kind: kind.to_string(),
        });
    }
    let test = super::command_line(args)?;
    let empty = match &test {
        CommandLine::Shell(text) => text.is_empty(),
        CommandLine::Exec(args) => args.is_empty(),
    };
    if empty {
        return Err(ParseErrorKind::HealthcheckMissingCommand);
    }
    let duration = |flag: &'static str| -> Result<Option<Duration>, ParseErrorKind> {
        let Some(value) = flags.string(flag) else {
            return Ok(None);
        };
        let nanos =
            parse_go_duration(&value).map_err(|reason| ParseErrorKind::InvalidDuration {
                flag,
                value: value.clone(),
                reason,
            })?;
        if nanos < 1_000_000 {
            return Err(ParseErrorKind::DurationTooShort { flag, value });
        }
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        Ok(Some(Duration::from_nanos(nanos)))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(value) => Some(
            value
                .parse::<u32>()
                .ok()
                .filter(|&r| r >= 1 && i32::try_from(r).is_ok())
                .ok_or(ParseErrorKind::InvalidRetries { value })?,
        ),
    };
    Ok(Healthcheck::Check(HealthcheckConfig {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports_table() {
        let ok = |words: &[&str], want: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            assert_eq!(exposed_ports(&words).unwrap(), want, "{words:?}");
        };
        ok(&["80"], &["80/tcp"]);
        ok(&["53/UDP", "443/tcp"], &["53/udp", "443/tcp"]);
        ok(
            &["8000-8002/sctp"],
            &["8000/sctp", "8001/sctp", "8002/sctp"],
        );
        for bad in ["", "http", "80/icmp", "70000", "90-80", "-1", "80-", "8 0"] {
            assert!(exposed_ports(&[bad.to_string()]).is_err(), "{bad:?}");
        }
    }
}
