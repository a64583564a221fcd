//! Typed instructions: what each line of a Dockerfile says, with its words UNEXPANDED.
//!
//! Words keep their quotes, escapes and `$VAR`s exactly as written, because their meaning
//! depends on the environment at build time (an `ENV` may read the base image's config). The
//! build engine calls [`Command::expand`](crate::Command::expand) with that environment when it
//! reaches the instruction. Flags whose values BuildKit does not expand (`--network`,
//! `--security`, `--link`, HEALTHCHECK durations, `RUN --mount from=`) are typed and validated
//! at parse time; flags that expand are validated here when they are literal and again after
//! expansion.

use crate::copy::Chmod;
use crate::error::Span;
use crate::heredoc::Heredoc;
use crate::mount::MountSpec;
use std::time::Duration;

/// One instruction: where it is, how it was written, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The lines it covers (continuations and heredoc bodies included).
    pub span: Span,
    /// The keyword as written (`run`, `Run`, `RUN`), for the casing checks.
    pub keyword: String,
    /// The logical line with continuations joined (BuildKit's `Node.Original`).
    pub original: String,
    /// Comment lines directly above it.
    pub comments: Vec<String>,
    /// The typed content.
    pub command: Command,
}

/// The typed content of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    From(FromCommand),
    Run(RunCommand),
    Cmd(CommandLine),
    Label(Vec<KeyValue>),
    /// The deprecated MAINTAINER text.
    Maintainer(String),
    /// Port specs as written (`80`, `8080/udp`, `$PORT`).
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(CopyCommand),
    Copy(CopyCommand),
    Entrypoint(CommandLine),
    /// Paths, from JSON or whitespace-separated form.
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(OnbuildCommand),
    Stopsignal(String),
    Healthcheck(Healthcheck),
    /// The shell for shell-form commands (always JSON form).
    Shell(Vec<String>),
}

impl Command {
    /// The canonical upper-case keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Label(_) => "LABEL",
            Command::Maintainer(_) => "MAINTAINER",
            Command::Expose(_) => "EXPOSE",
            Command::Env(_) => "ENV",
            Command::Add(_) => "ADD",
            Command::Copy(_) => "COPY",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Arg(_) => "ARG",
            Command::Onbuild(_) => "ONBUILD",
            Command::Stopsignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
        }
    }
}

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

/// A command in shell form (run through SHELL) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Shell form: the text as written (BuildKit hands it to the shell unchanged).
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

impl CommandLine {
    /// Whether this is the JSON (exec) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }
}

/// `RUN [--mount=...]... [--network=...] [--security=...] command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommand {
    /// The command; never expanded by the frontend (the shell does it).
    pub command: CommandLine,
    /// Heredocs opened on the line (`RUN <<EOF`, `RUN python3 <<PY > /out`).
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values, in order.
    pub mounts: Vec<MountSpec>,
    /// `--network`, when given.
    pub network: Option<NetworkMode>,
    /// `--security`, when given.
    pub security: Option<SecurityMode>,
}

/// What a RUN executes, with heredocs resolved the way BuildKit's `dispatchRun` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunProgram {
    /// Exec form: run these arguments as given.
    Exec(Vec<String>),
    /// Shell form: hand this text to the SHELL (`["/bin/sh", "-c", text]` by default). A
    /// command that is exactly one heredoc runs the heredoc's (tab-stripped) body; a command
    /// with heredocs among other words gets each body and delimiter appended after a newline,
    /// so the shell itself reads them.
    Shell(String),
    /// A command that is exactly one heredoc whose body starts with `#!`: write `content` to a
    /// file `name` (mode 0755) mounted read-only in `/dev/pipes/`, and run
    /// `/dev/pipes/<name>` through the SHELL.
    Script { name: String, content: String },
}

impl RunCommand {
    /// The program to run (see [`RunProgram`]).
    pub fn program(&self) -> RunProgram {
        let text = match &self.command {
            CommandLine::Exec(args) => return RunProgram::Exec(args.clone()),
            CommandLine::Shell(text) => text,
        };
        let Some(first) = self.heredocs.first() else {
            return RunProgram::Shell(text.clone());
        };
        let whole = crate::heredoc::marker(text.trim()).filter(|m| m.name == first.name);
        if whole.is_some() {
            if first.raw.starts_with("#!") {
                return RunProgram::Script {
                    name: first.name.clone(),
                    content: first.content(),
                };
            }
            return RunProgram::Shell(first.content());
        }
        let mut script = text.clone();
        for doc in &self.heredocs {
            script.push('\n');
            script.push_str(&doc.raw);
            script.push_str(&doc.name);
        }
        RunProgram::Shell(script)
    }
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

impl NetworkMode {
    /// The flag value (`default`, `none`, `host`).
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }
}

impl SecurityMode {
    /// The flag value (`sandbox`, `insecure`).
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::Sandbox => "sandbox",
            SecurityMode::Insecure => "insecure",
        }
    }
}

/// `COPY`/`ADD`: sources, destination and flags (unexpanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// Sources in order: paths (or URLs for ADD) and heredocs.
    pub sources: Vec<CopySource>,
    /// The destination as written.
    pub dest: String,
    /// Written in JSON form.
    pub exec_form: bool,
    /// `--from` (COPY only): a stage name, a stage index or an image, unexpanded.
    pub from: Option<String>,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded (validated when literal; see [`Chmod`]).
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns, unexpanded.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// `--checksum` (ADD only), unexpanded.
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: Option<bool>,
    /// `--unpack` (ADD only).
    pub unpack: Option<bool>,
}

impl CopyCommand {
    /// The literal `--chmod`, parsed (None when absent or not yet expanded).
    pub fn literal_chmod(&self) -> Option<Chmod> {
        self.chmod.as_deref().and_then(Chmod::parse)
    }
}

/// One COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path (or URL) as written.
    Path(String),
    /// A heredoc: the file is named after the delimiter and holds the body.
    Heredoc(Heredoc),
}

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
pub fn exposed_ports(words: &[String]) -> Result<Vec<String>, crate::ParseErrorKind> {
    let mut keys = Vec::new();
    for word in words {
        let invalid = || crate::ParseErrorKind::InvalidPort {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn program(source: &str) -> RunProgram {
        let df = parse(&format!("FROM scratch\n{source}")).expect("parses");
        match &df.stages[0].commands[0].command {
            Command::Run(run) => run.program(),
            other => panic!("{other:?}"),
        }
    }

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

    #[test]
    fn run_programs_follow_buildkit_heredoc_rules() {
        let cases = [
            ("RUN echo hi\n", RunProgram::Shell("echo hi".into())),
            (
                "RUN [\"a\", \"b\"]\n",
                RunProgram::Exec(vec!["a".into(), "b".into()]),
            ),
            (
                "RUN <<EOF\necho a\necho b\nEOF\n",
                RunProgram::Shell("echo a\necho b\n".into()),
            ),
            (
                "RUN <<-EOF\n\techo tab\n\tEOF\n",
                RunProgram::Shell("echo tab\n".into()),
            ),
            (
                "RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n",
                RunProgram::Script {
                    name: "EOF".into(),
                    content: "#!/usr/bin/env python3\nprint(1)\n".into(),
                },
            ),
            (
                "RUN python3 <<PY > /out\nprint(1)\nPY\n",
                RunProgram::Shell("python3 <<PY > /out\nprint(1)\nPY".into()),
            ),
            (
                "RUN <<A cat && <<B cat\n1\nA\n2\nB\n",
                RunProgram::Shell("<<A cat && <<B cat\n1\nA\n2\nB".into()),
            ),
        ];
        for (source, want) in cases {
            assert_eq!(program(source), want, "{source:?}");
        }
    }
}
