//! The checks themselves, in the order BuildKit's frontend meets them.

use std::cell::RefCell;

use super::reference::is_valid_reference;
use super::{CheckConfig, CheckOptions, Rule, Warning};
use crate::error::{Span, WarningKind};
use crate::instruction::{Command, CommandLine, FromCommand, Instruction};
use crate::parse::{Dockerfile, Stage};
use crate::plan::PLATFORM_ARGS;
use crate::shell::{Env, Expanded, Lexer};

/// `PATH` as BuildKit sets it when the base image has none (linux).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Names never reported as undefined: build arguments BuildKit consumes itself.
fn is_frontend_arg(name: &str) -> bool {
    name.starts_with("BUILDKIT_") || name == "SOURCE_DATE_EPOCH"
}

/// Runs every enabled check with explicit options; see [`super::check`].
pub fn check_with(dockerfile: &Dockerfile, options: &CheckOptions<'_>) -> Vec<Warning> {
    let config = CheckConfig::for_build(dockerfile, options.build_args).unwrap_or_default();
    if config.skip_all {
        return Vec::new();
    }
    let mut linter = Linter {
        warnings: Vec::new(),
        lexer: Lexer::new(dockerfile.escape()),
    };
    linter.parser_warnings(dockerfile);
    linter.instruction_checks(dockerfile);
    linter.stage_names(dockerfile);
    linter.instruction_casing(dockerfile);
    linter.default_base_names(dockerfile);
    let globals = linter.check_from_lines(dockerfile, options);
    linter.stages(dockerfile, options, &globals);
    let mut warnings = linter.warnings;
    warnings.retain(|w| config.enabled(w.rule));
    // BuildKit reports in the order it meets the problems; users read them by line
    warnings.sort_by_key(|w| w.span.start);
    warnings
}

struct Linter {
    warnings: Vec<Warning>,
    lexer: Lexer,
}

/// The global scope of FROM lines.
struct Globals {
    /// Platform ARGs and global ARGs with a value, in declaration order.
    env: Vec<(String, String)>,
    /// Every global name (valued or not): what a FROM may reference.
    declared: Vec<String>,
}

/// An [`Env`] that remembers the names it was asked for and did not have.
struct Recorder<'a> {
    env: &'a [(String, String)],
    missing: RefCell<Vec<String>>,
}

impl Env for Recorder<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        let found = self.env.lookup(name);
        if found.is_none() {
            let mut missing = self.missing.borrow_mut();
            if !missing.iter().any(|m| m == name) {
                missing.push(name.to_owned());
            }
        }
        found
    }
}

/// What a stage has accumulated, for the checks of later instructions and child stages.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// `ENV` and `ARG` values (BuildKit puts both in the state's environment).
    env: Vec<(String, String)>,
    /// Whether `env` holds everything (false when the base image's environment is unknown).
    env_known: bool,
    /// `ARG` names declared in this stage (valued or not).
    declared_args: Vec<String>,
    shell_set: bool,
    workdir_set: bool,
    cmd: Option<Span>,
    entrypoint: Option<Span>,
    healthcheck: Option<Span>,
}

impl Linter {
    fn warn(&mut self, rule: Rule, message: String, span: Span) {
        self.warnings.push(Warning::new(rule, message, span));
    }

    fn parser_warnings(&mut self, dockerfile: &Dockerfile) {
        for warning in &dockerfile.warnings {
            match warning.kind {
                WarningKind::EmptyContinuationLine { .. } => self.warn(
                    Rule::NoEmptyContinuation,
                    "Empty continuation line".to_owned(),
                    warning.span,
                ),
            }
        }
    }

    /// Checks BuildKit runs while turning the syntax tree into instructions.
    fn instruction_checks(&mut self, dockerfile: &Dockerfile) {
        for instruction in dockerfile.instructions() {
            match &instruction.command {
                Command::From(from) => {
                    if let Some(stage) = &from.stage {
                        if stage.as_written != stage.as_written.to_lowercase() {
                            self.warn(
                                Rule::StageNameCasing,
                                format!("Stage name '{}' should be lowercase", stage.as_written),
                                instruction.span,
                            );
                        }
                        let from_keyword = &instruction.keyword;
                        let as_keyword = &stage.as_keyword;
                        let mismatch = if !is_self_consistent(from_keyword) {
                            // the keyword's own casing is ConsistentInstructionCasing's business
                            false
                        } else if *from_keyword == from_keyword.to_lowercase() {
                            *as_keyword != as_keyword.to_lowercase()
                        } else {
                            *as_keyword != as_keyword.to_uppercase()
                        };
                        if mismatch {
                            self.warn(
                                Rule::FromAsCasing,
                                format!("'{as_keyword}' and '{from_keyword}' keywords' casing do not match"),
                                instruction.span,
                            );
                        }
                    }
                }
                Command::Maintainer(_) => self.warn(
                    Rule::MaintainerDeprecated,
                    "Maintainer instruction is deprecated in favor of using label".to_owned(),
                    instruction.span,
                ),
                _ => {}
            }
        }
    }

    fn stage_names(&mut self, dockerfile: &Dockerfile) {
        let mut seen: Vec<&str> = Vec::new();
        for stage in &dockerfile.stages {
            let Some(name) = stage.name() else { continue };
            if name == "context" || name == "scratch" {
                self.warn(
                    Rule::ReservedStageName,
                    format!("Stage name should not use the same name as reserved stage {name:?}"),
                    stage.instruction.span,
                );
            }
            if seen.contains(&name) {
                self.warn(
                    Rule::DuplicateStageName,
                    format!("Duplicate stage name {name:?}, stage names should be unique"),
                    stage.instruction.span,
                );
            }
            seen.push(name);
        }
    }

    /// The keywords of the stages (global ARGs are not counted, as in BuildKit) against the
    /// majority casing; ties count as uppercase.
    fn instruction_casing(&mut self, dockerfile: &Dockerfile) {
        let stage_instructions = || {
            dockerfile
                .stages
                .iter()
                .flat_map(|s| std::iter::once(&s.instruction).chain(&s.commands))
        };
        let (mut lower, mut upper) = (0usize, 0usize);
        for instruction in stage_instructions() {
            let keyword = &instruction.keyword;
            if is_self_consistent(keyword) {
                if *keyword == keyword.to_lowercase() {
                    lower += 1;
                } else {
                    upper += 1;
                }
            }
        }
        let majority_lower = lower > upper;
        for instruction in stage_instructions() {
            let keyword = &instruction.keyword;
            let expected = if majority_lower && *keyword != keyword.to_lowercase() {
                "lowercase"
            } else if !majority_lower && *keyword != keyword.to_uppercase() {
                "uppercase"
            } else {
                continue;
            };
            self.warn(
                Rule::ConsistentInstructionCasing,
                format!(
                    "Command '{keyword}' should match the case of the command majority ({expected})"
                ),
                instruction.span,
            );
        }
    }

    /// `InvalidDefaultArgInFrom`: the base names with only the ARG defaults (no build args) must be
    /// valid references. Any expansion error abandons the check, as in BuildKit.
    fn default_base_names(&mut self, dockerfile: &Dockerfile) {
        let Some(globals) = self.global_scope(dockerfile, None) else {
            return;
        };
        let mut found = Vec::new();
        for stage in &dockerfile.stages {
            let Ok(expanded) = self.lexer.expand_word(&stage.from.image, &globals.env) else {
                return;
            };
            if !is_valid_reference(&expanded.value) {
                found.push((stage.from.image.clone(), stage.instruction.span));
            }
        }
        for (base, span) in found {
            self.warn(
                Rule::InvalidDefaultArgInFrom,
                format!("Default value for ARG {base} results in empty or invalid base image name"),
                span,
            );
        }
    }

    /// The global ARG scope, with build args when given; `None` when a default cannot expand.
    fn global_scope(
        &self,
        dockerfile: &Dockerfile,
        build_args: Option<&crate::plan::BuildArgs>,
    ) -> Option<Globals> {
        let mut env: Vec<(String, String)> = PLATFORM_ARGS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut declared = Vec::new();
        for instruction in &dockerfile.global_args {
            let Command::Arg(decls) = &instruction.command else {
                continue;
            };
            for decl in decls {
                let value = match build_args.and_then(|args| args.get(&decl.name)) {
                    Some(value) => Some(value.to_owned()),
                    None => match &decl.default {
                        Some(default) => Some(self.lexer.expand_word(default, &env).ok()?.value),
                        None => None,
                    },
                };
                if let Some(value) = value {
                    set(&mut env, &decl.name, &value);
                }
                declared.push(decl.name.clone());
            }
        }
        Some(Globals { env, declared })
    }

    /// `UndefinedArgInFrom`, `RedundantTargetPlatform` and `FromPlatformFlagConstDisallowed`.
    fn check_from_lines(&mut self, dockerfile: &Dockerfile, options: &CheckOptions<'_>) -> Globals {
        let globals = self
            .global_scope(dockerfile, Some(options.build_args))
            .unwrap_or_else(|| Globals {
                env: Vec::new(),
                declared: Vec::new(),
            });
        let mut known: Vec<String> = globals.declared.clone();
        for (key, _) in &globals.env {
            if !known.contains(key) {
                known.push(key.clone());
            }
        }
        for stage in &dockerfile.stages {
            let span = stage.instruction.span;
            if let Ok(expanded) = self.lexer.expand_word(&stage.from.image, &globals.env) {
                self.undeclared_from_args(&expanded, &known, span);
            }
            let Some(platform) = &stage.from.platform else {
                continue;
            };
            let Ok(expanded) = self.lexer.expand_word(platform, &globals.env) else {
                continue;
            };
            self.undeclared_from_args(&expanded, &known, span);
            let target = globals.env.lookup("TARGETPLATFORM");
            if expanded.matched == ["TARGETPLATFORM"]
                && expanded.unmatched.is_empty()
                && target == Some(&expanded.value)
            {
                self.warn(
                    Rule::RedundantTargetPlatform,
                    format!("Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"),
                    span,
                );
            }
            if expanded.matched.is_empty() && expanded.unmatched.is_empty() {
                self.constant_platform(&stage.from, &expanded.value, span);
            }
        }
        globals
    }

    fn undeclared_from_args(&mut self, expanded: &Expanded, known: &[String], span: Span) {
        for name in &expanded.unmatched {
            if known.contains(name) {
                continue;
            }
            let mut message = format!("FROM argument '{name}' is not declared");
            if let Some(suggestion) = suggest(name, known, false) {
                message.push_str(&format!(" (did you mean {suggestion}?)"));
            }
            self.warn(Rule::UndefinedArgInFrom, message, span);
        }
    }

    fn constant_platform(&mut self, from: &FromCommand, platform: &str, span: Span) {
        let Some((os, arch)) = parse_platform(platform) else {
            return;
        };
        let stage_name = from.stage.as_ref().map(|s| s.name.as_str()).unwrap_or("");
        if stage_name.contains(os.as_str()) || stage_name.contains(arch.as_str()) {
            return;
        }
        self.warn(
            Rule::FromPlatformFlagConstDisallowed,
            format!("FROM --platform flag should not use constant value {platform:?}"),
            span,
        );
    }

    fn stages(&mut self, dockerfile: &Dockerfile, options: &CheckOptions<'_>, globals: &Globals) {
        let mut finished: Vec<StageState> = Vec::with_capacity(dockerfile.stages.len());
        for stage in &dockerfile.stages {
            let state = self.base_state(dockerfile, stage, &finished, options, globals);
            let state = self.stage_body(stage, state, options, globals);
            finished.push(state);
        }
    }

    /// The state a stage starts from: an earlier stage's, scratch, or an image's.
    fn base_state(
        &self,
        dockerfile: &Dockerfile,
        stage: &Stage,
        finished: &[StageState],
        options: &CheckOptions<'_>,
        globals: &Globals,
    ) -> StageState {
        let base = self
            .lexer
            .expand_word(&stage.from.image, &globals.env)
            .map(|e| e.value)
            .unwrap_or_default();
        let lowered = base.to_lowercase();
        let parent = dockerfile.stages[..stage.index]
            .iter()
            .rposition(|s| s.name() == Some(lowered.as_str()))
            .and_then(|i| finished.get(i));
        if let Some(parent) = parent {
            return StageState {
                env: parent.env.clone(),
                env_known: parent.env_known,
                shell_set: parent.shell_set,
                workdir_set: parent.workdir_set,
                ..StageState::default()
            };
        }
        let mut env = if lowered == "scratch" {
            Some(Vec::new())
        } else {
            options.image_env.and_then(|images| images.image_env(&base))
        };
        if let Some(env) = &mut env
            && env.lookup("PATH").is_none()
        {
            env.push(("PATH".to_owned(), DEFAULT_PATH.to_owned()));
        }
        StageState {
            env_known: env.is_some(),
            env: env.unwrap_or_default(),
            ..StageState::default()
        }
    }

    fn stage_body(
        &mut self,
        stage: &Stage,
        mut state: StageState,
        options: &CheckOptions<'_>,
        globals: &Globals,
    ) -> StageState {
        for instruction in &stage.commands {
            let expanded = self.expand(instruction, &mut state, globals);
            self.dispatch(instruction, expanded.as_ref(), &mut state, options, globals);
        }
        state
    }

    /// Expands the instruction's words with the stage environment (ARG defaults also see the
    /// global scope), reporting `UndefinedVar` when the environment is fully known.
    fn expand(
        &mut self,
        instruction: &Instruction,
        state: &mut StageState,
        globals: &Globals,
    ) -> Option<Command> {
        let mut env = state.env.clone();
        if matches!(instruction.command, Command::Arg(_)) {
            for (key, value) in &globals.env {
                if env.lookup(key).is_none() {
                    env.push((key.clone(), value.clone()));
                }
            }
        }
        let recorder = Recorder {
            env: &env,
            missing: RefCell::new(Vec::new()),
        };
        let expanded = instruction.command.expand(&self.lexer, &recorder).ok();
        if state.env_known {
            let options: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
            for name in recorder.missing.into_inner() {
                if state.declared_args.contains(&name) || is_frontend_arg(&name) {
                    continue;
                }
                let mut message = format!("Usage of undefined variable '${name}'");
                if let Some(suggestion) = suggest(&name, &options, true) {
                    message.push_str(&format!(" (did you mean ${suggestion}?)"));
                }
                self.warn(Rule::UndefinedVar, message, instruction.span);
            }
        }
        expanded
    }

    fn dispatch(
        &mut self,
        instruction: &Instruction,
        expanded: Option<&Command>,
        state: &mut StageState,
        options: &CheckOptions<'_>,
        globals: &Globals,
    ) {
        let span = instruction.span;
        match &instruction.command {
            Command::Env(pairs) => {
                if pairs.iter().any(|kv| kv.legacy) {
                    self.legacy_key_value("ENV", span);
                }
                let Some(Command::Env(pairs)) = expanded else {
                    return;
                };
                for pair in pairs {
                    self.secret_key("ENV", &pair.key, span);
                }
                for pair in pairs {
                    set(&mut state.env, &pair.key, &pair.value);
                }
            }
            Command::Label(pairs) if pairs.iter().any(|kv| kv.legacy) => {
                self.legacy_key_value("LABEL", span);
            }
            Command::Arg(written) => {
                let Some(Command::Arg(decls)) = expanded else {
                    return;
                };
                for (decl, written) in decls.iter().zip(written) {
                    self.secret_key("ARG", &decl.name, span);
                    let value = options
                        .build_args
                        .get(&decl.name)
                        .map(str::to_owned)
                        .or_else(|| written.default.as_ref().and(decl.default.clone()))
                        .or_else(|| globals.env.lookup(&decl.name).map(str::to_owned));
                    if let Some(value) = value {
                        set(&mut state.env, &decl.name, &value);
                    }
                    if !state.declared_args.contains(&decl.name) {
                        state.declared_args.push(decl.name.clone());
                    }
                }
            }
            Command::Cmd(line) => {
                self.used_once("CMD", &mut state.cmd, span);
                self.json_args("CMD", line, state.shell_set, span);
            }
            Command::Entrypoint(line) => {
                self.used_once("ENTRYPOINT", &mut state.entrypoint, span);
                self.json_args("ENTRYPOINT", line, state.shell_set, span);
            }
            Command::Healthcheck(_) => self.used_once("HEALTHCHECK", &mut state.healthcheck, span),
            Command::Shell(_) => state.shell_set = true,
            Command::Workdir(_) => {
                let Some(Command::Workdir(path)) = expanded else {
                    return;
                };
                if !state.workdir_set && !path.starts_with('/') {
                    self.warn(
                        Rule::WorkdirRelativePath,
                        format!("Relative workdir {path:?} can have unexpected results if the base image changes"),
                        span,
                    );
                }
                state.workdir_set = true;
            }
            Command::Expose(_) => {
                let Some(Command::Expose(ports)) = expanded else {
                    return;
                };
                for port in ports.iter().flat_map(|p| p.split_whitespace()) {
                    self.expose(port, span);
                }
            }
            _ => {}
        }
    }

    fn legacy_key_value(&mut self, command: &str, span: Span) {
        self.warn(
            Rule::LegacyKeyValueFormat,
            format!("\"{command} key=value\" should be used instead of legacy \"{command} key value\" format"),
            span,
        );
    }

    /// `SecretsUsedInArgOrEnv`: a key with a secret-like `_`-separated word, unless it also has
    /// an allowed word (`public`, `file`, `version`).
    fn secret_key(&mut self, command: &str, key: &str, span: Span) {
        const SECRET: [&str; 10] = [
            "apikey",
            "auth",
            "credential",
            "credentials",
            "key",
            "password",
            "pword",
            "passwd",
            "secret",
            "token",
        ];
        const ALLOWED: [&str; 3] = ["public", "file", "version"];
        if edge_word_matches(key, &SECRET) && !edge_word_matches(key, &ALLOWED) {
            self.warn(
                Rule::SecretsUsedInArgOrEnv,
                format!(
                    "Do not use ARG or ENV instructions for sensitive data ({command} {key:?})"
                ),
                span,
            );
        }
    }

    /// `MultipleInstructionsDisallowed`, reported on the earlier instruction (the ignored one).
    fn used_once(&mut self, name: &str, previous: &mut Option<Span>, span: Span) {
        if let Some(earlier) = previous.replace(span) {
            self.warn(
                Rule::MultipleInstructionsDisallowed,
                format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                earlier,
            );
        }
    }

    fn json_args(&mut self, name: &str, line: &CommandLine, shell_set: bool, span: Span) {
        if !line.is_exec() && !shell_set {
            self.warn(
                Rule::JsonArgsRecommended,
                format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
                span,
            );
        }
    }

    /// `ExposeProtoCasing` and `ExposeInvalidFormat` for one `[ip:][host:]port[/proto]` spec.
    fn expose(&mut self, port: &str, span: Span) {
        let parts: Vec<&str> = port.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [container] => ("", "", *container),
            [host, container] => ("", *host, *container),
            [ip, host, container] => (*ip, *host, *container),
            _ => {
                let n = parts.len();
                let ip_len = port.len() - parts[n - 1].len() - parts[n - 2].len() - 2;
                (&port[..ip_len], parts[n - 2], parts[n - 1])
            }
        };
        let proto = match container.split_once('/') {
            Some((_, proto)) => proto.split('/').next().unwrap_or(""),
            None => "",
        };
        if proto != proto.to_lowercase() {
            self.warn(
                Rule::ExposeProtoCasing,
                format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase"),
                span,
            );
        }
        if !ip.is_empty() || !host.is_empty() {
            self.warn(
                Rule::ExposeInvalidFormat,
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"),
                span,
            );
        }
    }
}

/// Values longer than this are tracked as defined but empty: `ENV A=$A$A` repeated doubles the
/// value on every line, and the checks only need to know that the name exists.
const MAX_TRACKED_VALUE: usize = 1 << 16;

fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    let value = if value.len() > MAX_TRACKED_VALUE {
        ""
    } else {
        value
    };
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

fn is_self_consistent(word: &str) -> bool {
    word == word.to_lowercase() || word == word.to_uppercase()
}

/// Whether one of the key's `_`-separated words equals one of `words`, ignoring case (BuildKit's
/// `(?i)(?:_|^)(?:words)(?:_|$)`).
fn edge_word_matches(key: &str, words: &[&str]) -> bool {
    key.split('_')
        .any(|part| words.iter().any(|w| part.eq_ignore_ascii_case(w)))
}

/// `os/arch[/variant]` (or a lone os or arch) as containerd's platform parser reads it.
fn parse_platform(text: &str) -> Option<(String, String)> {
    const OSES: [&str; 8] = [
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
    ];
    let normalize_arch = |arch: &str| match arch {
        "x86_64" | "x86-64" => "amd64".to_owned(),
        "aarch64" => "arm64".to_owned(),
        "i386" => "386".to_owned(),
        other => other.to_owned(),
    };
    let lowered = text.to_lowercase();
    let parts: Vec<&str> = lowered.split('/').collect();
    match parts.as_slice() {
        [single] if OSES.contains(single) => Some(((*single).to_owned(), "amd64".to_owned())),
        [single]
            if !single.is_empty()
                && single
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Some(("linux".to_owned(), normalize_arch(single)))
        }
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => {
            Some(((*os).to_owned(), normalize_arch(arch)))
        }
        _ => None,
    }
}

/// BuildKit's suggestion: the option closest to `name` by edit distance, if closer than 3
/// (case-insensitive matching keeps the casing of `name`).
fn suggest(name: &str, options: &[String], case_sensitive: bool) -> Option<String> {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    let wanted = fold(name);
    let mut best: Option<(usize, String)> = None;
    for option in options {
        let candidate = fold(option);
        if candidate == wanted {
            return None;
        }
        let distance = levenshtein(&wanted, &candidate);
        if distance < best.as_ref().map_or(3, |(d, _)| *d) {
            let shown = if case_sensitive {
                candidate
            } else if name == name.to_lowercase() {
                candidate.to_lowercase()
            } else if name == name.to_uppercase() {
                candidate.to_uppercase()
            } else {
                candidate
            };
            best = Some((distance, shown));
        }
    }
    best.map(|(_, s)| s)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_buildkit() {
        for key in [
            "api_key",
            "DATABASE_PASSWORD",
            "GITHUB_TOKEN",
            "secret_MESSAGE",
            "AUTH",
            "aws_secret_access_key",
        ] {
            assert!(
                edge_word_matches(
                    key,
                    &["apikey", "auth", "key", "password", "secret", "token"]
                ),
                "{key}"
            );
        }
        for key in ["KEYBOARD", "MONKEY", "passwords_x"] {
            assert!(!edge_word_matches(key, &["key", "password"]), "{key}");
        }
    }

    #[test]
    fn suggestions_need_a_distance_below_three() {
        let options = vec!["BUILD_VERSION".to_owned(), "NODE_ENV".to_owned()];
        assert_eq!(
            suggest("BUILD_VERSON", &options, true).as_deref(),
            Some("BUILD_VERSION")
        );
        assert_eq!(suggest("NOPE", &options, true), None);
        assert_eq!(suggest("node_env", &options, true), None);
        assert_eq!(
            suggest("node_en", &options, false).as_deref(),
            Some("node_env")
        );
    }

    #[test]
    fn platforms_parse_like_containerd() {
        assert_eq!(
            parse_platform("linux/amd64"),
            Some(("linux".into(), "amd64".into()))
        );
        assert_eq!(
            parse_platform("linux/arm/v7"),
            Some(("linux".into(), "arm".into()))
        );
        assert_eq!(
            parse_platform("arm64"),
            Some(("linux".into(), "arm64".into()))
        );
        assert_eq!(parse_platform(""), None);
        assert_eq!(parse_platform("a/b/c/d"), None);
    }
}
