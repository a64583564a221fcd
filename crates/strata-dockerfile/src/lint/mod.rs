//! Build checks: BuildKit's lint rules over a parsed Dockerfile, with its rule names, messages
//! and documentation links, so `strata build --check` reads like `docker build --check`.
//!
//! [`check`] walks the Dockerfile the way BuildKit's frontend does while converting it (parser
//! warnings, then per-instruction checks, stage names, casing, FROM lines, then each stage's
//! instructions in order with the environment each one sees) and returns the findings sorted by
//! line. The `# check=skip=A,B;error=true` directive (or the `BUILDKIT_DOCKERFILE_CHECK` build
//! argument, which replaces it) selects rules; [`violation_error`] says whether the findings must
//! fail the build.
//!
//! What cannot be known without the base images is left out rather than guessed: `UndefinedVar`
//! is only reported in stages whose inherited environment is known (scratch, earlier stages, or
//! images the caller describes through [`ImageEnv`]), and the rules that need image metadata or
//! the build context (`InvalidBaseImagePlatform`, `CopyIgnoredFile`) are not implemented.

mod reference;
mod rules;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::error::Span;
use crate::parse::Dockerfile;
use crate::plan::BuildArgs;

pub use rules::check_with;

/// A build-check rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    NoEmptyContinuation,
    StageNameCasing,
    FromAsCasing,
    MaintainerDeprecated,
    ConsistentInstructionCasing,
    DuplicateStageName,
    ReservedStageName,
    InvalidDefaultArgInFrom,
    UndefinedArgInFrom,
    RedundantTargetPlatform,
    FromPlatformFlagConstDisallowed,
    JsonArgsRecommended,
    MultipleInstructionsDisallowed,
    LegacyKeyValueFormat,
    SecretsUsedInArgOrEnv,
    WorkdirRelativePath,
    UndefinedVar,
    ExposeProtoCasing,
    ExposeInvalidFormat,
}

impl Rule {
    /// Every implemented rule.
    pub const ALL: [Rule; 19] = [
        Rule::NoEmptyContinuation,
        Rule::StageNameCasing,
        Rule::FromAsCasing,
        Rule::MaintainerDeprecated,
        Rule::ConsistentInstructionCasing,
        Rule::DuplicateStageName,
        Rule::ReservedStageName,
        Rule::InvalidDefaultArgInFrom,
        Rule::UndefinedArgInFrom,
        Rule::RedundantTargetPlatform,
        Rule::FromPlatformFlagConstDisallowed,
        Rule::JsonArgsRecommended,
        Rule::MultipleInstructionsDisallowed,
        Rule::LegacyKeyValueFormat,
        Rule::SecretsUsedInArgOrEnv,
        Rule::WorkdirRelativePath,
        Rule::UndefinedVar,
        Rule::ExposeProtoCasing,
        Rule::ExposeInvalidFormat,
    ];

    /// BuildKit's name for the rule (what `# check=skip=` takes).
    pub fn name(self) -> &'static str {
        match self {
            Rule::NoEmptyContinuation => "NoEmptyContinuation",
            Rule::StageNameCasing => "StageNameCasing",
            Rule::FromAsCasing => "FromAsCasing",
            Rule::MaintainerDeprecated => "MaintainerDeprecated",
            Rule::ConsistentInstructionCasing => "ConsistentInstructionCasing",
            Rule::DuplicateStageName => "DuplicateStageName",
            Rule::ReservedStageName => "ReservedStageName",
            Rule::InvalidDefaultArgInFrom => "InvalidDefaultArgInFrom",
            Rule::UndefinedArgInFrom => "UndefinedArgInFrom",
            Rule::RedundantTargetPlatform => "RedundantTargetPlatform",
            Rule::FromPlatformFlagConstDisallowed => "FromPlatformFlagConstDisallowed",
            Rule::JsonArgsRecommended => "JSONArgsRecommended",
            Rule::MultipleInstructionsDisallowed => "MultipleInstructionsDisallowed",
            Rule::LegacyKeyValueFormat => "LegacyKeyValueFormat",
            Rule::SecretsUsedInArgOrEnv => "SecretsUsedInArgOrEnv",
            Rule::WorkdirRelativePath => "WorkdirRelativePath",
            Rule::UndefinedVar => "UndefinedVar",
            Rule::ExposeProtoCasing => "ExposeProtoCasing",
            Rule::ExposeInvalidFormat => "ExposeInvalidFormat",
        }
    }

    /// The rule named `name` (exact, as BuildKit matches skip lists).
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.name() == name)
    }

    /// BuildKit's one-line description.
    pub fn description(self) -> &'static str {
        match self {
            Rule::NoEmptyContinuation => {
                "Empty continuation lines will become errors in a future release"
            }
            Rule::StageNameCasing => "Stage names should be lowercase",
            Rule::FromAsCasing => "The 'as' keyword should match the case of the 'from' keyword",
            Rule::MaintainerDeprecated => {
                "The MAINTAINER instruction is deprecated, use a label instead to define an image author"
            }
            Rule::ConsistentInstructionCasing => {
                "All commands within the Dockerfile should use the same casing (either upper or lower)"
            }
            Rule::DuplicateStageName => "Stage names should be unique",
            Rule::ReservedStageName => "Reserved words should not be used as stage names",
            Rule::InvalidDefaultArgInFrom => {
                "Default value for global ARG results in an empty or invalid base image name"
            }
            Rule::UndefinedArgInFrom => "FROM command must use declared ARGs",
            Rule::RedundantTargetPlatform => {
                "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"
            }
            Rule::FromPlatformFlagConstDisallowed => {
                "FROM --platform flag should not use a constant value"
            }
            Rule::JsonArgsRecommended => {
                "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals"
            }
            Rule::MultipleInstructionsDisallowed => {
                "Multiple instructions of the same type should not be used in the same stage"
            }
            Rule::LegacyKeyValueFormat => {
                "Legacy key/value format with whitespace separator should not be used"
            }
            Rule::SecretsUsedInArgOrEnv => {
                "Sensitive data should not be used in the ARG or ENV commands"
            }
            Rule::WorkdirRelativePath => {
                "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes"
            }
            Rule::UndefinedVar => "Variables should be defined before their use",
            Rule::ExposeProtoCasing => "Protocol in EXPOSE instruction should be lowercase",
            Rule::ExposeInvalidFormat => {
                "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release"
            }
        }
    }

    /// The rule's documentation page.
    pub fn url(self) -> &'static str {
        match self {
            Rule::NoEmptyContinuation => {
                "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
            }
            Rule::StageNameCasing => {
                "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
            }
            Rule::FromAsCasing => "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
            Rule::MaintainerDeprecated => {
                "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/"
            }
            Rule::ConsistentInstructionCasing => {
                "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/"
            }
            Rule::DuplicateStageName => {
                "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/"
            }
            Rule::ReservedStageName => {
                "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/"
            }
            Rule::InvalidDefaultArgInFrom => {
                "https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/"
            }
            Rule::UndefinedArgInFrom => {
                "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/"
            }
            Rule::RedundantTargetPlatform => {
                "https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/"
            }
            Rule::FromPlatformFlagConstDisallowed => {
                "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/"
            }
            Rule::JsonArgsRecommended => {
                "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
            }
            Rule::MultipleInstructionsDisallowed => {
                "https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/"
            }
            Rule::LegacyKeyValueFormat => {
                "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/"
            }
            Rule::SecretsUsedInArgOrEnv => {
                "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/"
            }
            Rule::WorkdirRelativePath => {
                "https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/"
            }
            Rule::UndefinedVar => "https://docs.docker.com/go/dockerfile/rule/undefined-var/",
            Rule::ExposeProtoCasing => {
                "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/"
            }
            Rule::ExposeInvalidFormat => {
                "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/"
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: Rule,
    /// The formatted message (`'as' and 'FROM' keywords' casing do not match`).
    pub message: String,
    /// The rule's documentation page.
    pub url: &'static str,
    /// The lines it is about.
    pub span: Span,
}

impl Warning {
    pub(crate) fn new(rule: Rule, message: String, span: Span) -> Warning {
        Warning {
            rule,
            message,
            url: rule.url(),
            span,
        }
    }

    /// The detailed form `docker build --check` prints: an empty line, a `WARNING:` header with
    /// the link, the message, then the source snippet with the lines marked.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let snippet = crate::error::render_snippet(file_name, source, self.span, "");
        // the snippet ends with an `ERROR:` line meant for errors; a warning has none
        let snippet = snippet.strip_suffix("ERROR: \n").unwrap_or(&snippet);
        format!(
            "\nWARNING: {} - {}\n{}\n{}",
            self.rule, self.url, self.message, snippet
        )
    }
}

/// BuildKit's short form: `FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)`.
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)?;
        if self.span.start > 0 {
            write!(f, " (line {})", self.span.start)?;
        }
        Ok(())
    }
}

/// Which rules run and whether findings fail the build (`# check=` or `BUILDKIT_DOCKERFILE_CHECK`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rule names to skip (unknown names are kept and simply match nothing).
    pub skip: Vec<String>,
    /// `skip=all`.
    pub skip_all: bool,
    /// `error=true`: findings fail the build.
    pub error: bool,
}

/// A `check` option that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    #[error("invalid check option {option:?}")]
    InvalidOption { option: String },
    #[error("failed to parse check option {option:?}: invalid boolean {value:?}")]
    InvalidBool { option: String, value: String },
}

impl CheckConfig {
    /// Parses `skip=A,B;error=true` (BuildKit's `ParseLintOptions`: at most two `;` parts, each
    /// `skip=` or `error=`).
    pub fn parse(text: &str) -> Result<CheckConfig, CheckConfigError> {
        let text = text.trim();
        let mut config = CheckConfig::default();
        if text.is_empty() {
            return Ok(config);
        }
        for part in text.splitn(2, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(CheckConfigError::InvalidOption {
                    option: part.to_owned(),
                });
            };
            match key.trim() {
                "skip" => {
                    let value = value.trim();
                    if value == "all" {
                        config.skip_all = true;
                    } else {
                        config.skip = value
                            .split(',')
                            .map(|rule| rule.trim().to_owned())
                            .collect();
                    }
                }
                "error" => {
                    config.error = parse_go_bool(value.trim()).ok_or_else(|| {
                        CheckConfigError::InvalidBool {
                            option: part.to_owned(),
                            value: value.trim().to_owned(),
                        }
                    })?;
                }
                other => {
                    return Err(CheckConfigError::InvalidOption {
                        option: other.to_owned(),
                    });
                }
            }
        }
        Ok(config)
    }

    /// Whether `rule` runs.
    pub fn enabled(&self, rule: Rule) -> bool {
        !self.skip_all && !self.skip.iter().any(|name| name == rule.name())
    }

    /// The configuration in effect: the `BUILDKIT_DOCKERFILE_CHECK` build argument when given,
    /// else the Dockerfile's `# check=` directive, else everything on.
    pub fn for_build(
        dockerfile: &Dockerfile,
        build_args: &BuildArgs,
    ) -> Result<CheckConfig, CheckConfigError> {
        if let Some(value) = build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
            return CheckConfig::parse(value);
        }
        Ok(match &dockerfile.directives.check {
            Some(check) => CheckConfig {
                skip: check.skip.clone(),
                skip_all: check.skip_all,
                error: check.error,
            },
            None => CheckConfig::default(),
        })
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The findings fail the build (`error=true` and at least one finding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lint violation found for rules: {}", rules.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "))]
pub struct LintViolation {
    /// The rules that fired, sorted, each once.
    pub rules: Vec<Rule>,
}

/// The error a build must stop with when the configuration says `error=true` and `warnings` is
/// not empty.
pub fn violation_error(config: &CheckConfig, warnings: &[Warning]) -> Option<LintViolation> {
    if !config.error || warnings.is_empty() {
        return None;
    }
    let mut rules: Vec<Rule> = warnings.iter().map(|w| w.rule).collect();
    rules.sort_by_key(|r| r.name());
    rules.dedup();
    Some(LintViolation { rules })
}

/// The environment an external base image defines (its config's `Env`), when the caller knows it;
/// lets `UndefinedVar` run in stages built on images.
pub trait ImageEnv {
    /// The `KEY=value` pairs of `image`'s config, or `None` when unknown.
    fn image_env(&self, image: &str) -> Option<Vec<(String, String)>>;
}

/// Inputs of a check beyond the Dockerfile.
#[derive(Clone, Copy)]
pub struct CheckOptions<'a> {
    pub build_args: &'a BuildArgs,
    /// Environments of external base images, if known.
    pub image_env: Option<&'a dyn ImageEnv>,
}

impl fmt::Debug for CheckOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckOptions")
            .field("build_args", self.build_args)
            .field("image_env", &self.image_env.map(|_| "dyn ImageEnv"))
            .finish()
    }
}

/// Runs every enabled check over `dockerfile` (all stages, as `docker build --check` does without
/// a target) and returns the findings sorted by line. An invalid check configuration runs every
/// rule (the build itself reports the configuration error).
pub fn check(dockerfile: &Dockerfile, build_args: &BuildArgs) -> Vec<Warning> {
    check_with(
        dockerfile,
        &CheckOptions {
            build_args,
            image_env: None,
        },
    )
}
