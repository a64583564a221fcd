//! A stable, human-readable dump of a parsed Dockerfile or a plan: the format of the
//! `testdata/*/expected` files. One line per instruction, strings in Rust debug quoting so
//! whitespace and escapes are visible.

use crate::heredoc::Heredoc;
use crate::instruction::*;
use crate::instruction::{Mount, MountSpec, MountType};
use crate::parse::Dockerfile;
use crate::plan::{Plan, StageSource};
use std::fmt::Write;

/// Dumps a parsed Dockerfile.
pub fn dockerfile(df: &Dockerfile) -> String {
    let mut out = String::new();
    let d = &df.directives;
    if let Some(syntax) = &d.syntax {
        let _ = writeln!(
            out,
            "directive syntax {:?} (line {})",
            syntax.value, syntax.span.start
        );
    }
    if let Some(escape) = &d.escape_directive {
        let _ = writeln!(
            out,
            "directive escape {:?} (line {})",
            d.escape, escape.span.start
        );
    }
    if let Some(check) = &d.check {
        let _ = writeln!(
            out,
            "directive check skip={:?} skip_all={} error={} (line {})",
            check.skip, check.skip_all, check.error, check.span.start
        );
    }
    for warning in &df.warnings {
        let _ = writeln!(out, "warning {}: {}", warning.span, warning.kind);
    }
    if !df.global_args.is_empty() {
        out.push_str("global\n");
        for instruction in &df.global_args {
            write_instruction(&mut out, instruction);
        }
    }
    for stage in &df.stages {
        let _ = writeln!(
            out,
            "stage {}{}",
            stage.index,
            stage.name().map(|n| format!(" {n:?}")).unwrap_or_default()
        );
        write_instruction(&mut out, &stage.instruction);
        for instruction in &stage.commands {
            write_instruction(&mut out, instruction);
        }
    }
    out
}

/// Dumps a plan.
pub fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target {}", plan.target);
    let globals: Vec<String> = plan
        .global_args
        .iter()
        .filter(|(k, _)| !crate::plan::PLATFORM_ARGS.iter().any(|(p, _)| p == k))
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let _ = writeln!(out, "global args [{}]", globals.join(" "));
    if !plan.unused_build_args.is_empty() {
        let _ = writeln!(out, "unused build args {:?}", plan.unused_build_args);
    }
    for stage in &plan.stages {
        let _ = write!(out, "stage {}", stage.index);
        if let Some(name) = &stage.name {
            let _ = write!(out, " {name:?}");
        }
        let _ = write!(out, " base={}", source(&stage.base));
        if let Some(platform) = &stage.platform {
            let _ = write!(out, " platform={platform:?}");
        }
        let _ = writeln!(out, " deps={:?}", stage.deps);
        for r in &stage.refs {
            let _ = write!(out, "  ref command={}", r.command);
            if let Some(mount) = r.mount {
                let _ = write!(out, " mount={mount}");
            }
            let _ = writeln!(out, " -> {}", source(&r.source));
        }
    }
    for (level, group) in plan.groups.iter().enumerate() {
        let _ = writeln!(out, "group {level}: {group:?}");
    }
    out
}

fn source(source: &StageSource) -> String {
    match source {
        StageSource::Scratch => "scratch".to_string(),
        StageSource::Image(image) => format!("image {image:?}"),
        StageSource::Stage(index) => format!("stage {index}"),
    }
}

/// Dumps one instruction (as in [`dockerfile`]), e.g. an expanded one.
pub fn instruction(instruction: &Instruction) -> String {
    let mut out = String::new();
    write_instruction(&mut out, instruction);
    out
}

fn write_instruction(out: &mut String, instruction: &Instruction) {
    for comment in &instruction.comments {
        let _ = writeln!(out, "  # {comment}");
    }
    let span = instruction.span;
    let lines = if span.start == span.end {
        format!("{}", span.start)
    } else {
        format!("{}-{}", span.start, span.end)
    };
    let name = instruction.command.name();
    let _ = write!(out, "  {lines:<5} {name}");
    if instruction.keyword != name {
        let _ = write!(out, " (written {:?})", instruction.keyword);
    }
    let _ = writeln!(out, "{}", command(&instruction.command));
    let heredocs: &[Heredoc] = match &instruction.command {
        Command::Run(run) => &run.heredocs,
        _ => &[],
    };
    for doc in heredocs {
        write_heredoc(out, doc);
    }
    if let Command::Copy(copy) | Command::Add(copy) = &instruction.command {
        for source in &copy.sources {
            if let CopySource::Heredoc(doc) = source {
                write_heredoc(out, doc);
            }
        }
    }
}

fn write_heredoc(out: &mut String, doc: &Heredoc) {
    let _ = write!(out, "        heredoc {:?}", doc.name);
    if let Some(fd) = doc.fd {
        let _ = write!(out, " fd={fd}");
    }
    if doc.chomp {
        out.push_str(" chomp");
    }
    if !doc.expand {
        out.push_str(" no-expand");
    }
    let _ = writeln!(out, " {:?}", doc.content());
}

fn command_line(line: &CommandLine) -> String {
    match line {
        CommandLine::Shell(text) => format!(" shell {text:?}"),
        CommandLine::Exec(args) => format!(" exec {args:?}"),
    }
}

fn pairs(kvs: &[KeyValue]) -> String {
    kvs.iter()
        .map(|kv| {
            let legacy = if kv.legacy { " (legacy)" } else { "" };
            format!(" {:?}={:?}{legacy}", kv.key, kv.value)
        })
        .collect()
}

fn command(command: &Command) -> String {
    match command {
        Command::From(from) => {
            let mut s = format!(" {:?}", from.image);
            if let Some(platform) = &from.platform {
                s += &format!(" --platform={platform:?}");
            }
            if let Some(stage) = &from.stage {
                s += &format!(" {} {:?}", stage.as_keyword, stage.name);
            }
            s
        }
        Command::Run(run) => {
            let mut s = String::new();
            for spec in &run.mounts {
                s += &format!(" --mount={}", mount_spec(spec));
            }
            if let Some(network) = run.network {
                s += &format!(" --network={}", network.as_str());
            }
            if let Some(security) = run.security {
                s += &format!(" --security={}", security.as_str());
            }
            s + &command_line(&run.command)
        }
        Command::Cmd(line) | Command::Entrypoint(line) => command_line(line),
        Command::Label(kvs) | Command::Env(kvs) => pairs(kvs),
        Command::Maintainer(text)
        | Command::User(text)
        | Command::Workdir(text)
        | Command::Stopsignal(text) => format!(" {text:?}"),
        Command::Expose(words) | Command::Volume(words) | Command::Shell(words) => {
            format!(" {words:?}")
        }
        Command::Arg(decls) => decls
            .iter()
            .map(|d| match &d.default {
                Some(default) => format!(" {:?}={default:?}", d.name),
                None => format!(" {:?}", d.name),
            })
            .collect(),
        Command::Copy(copy) | Command::Add(copy) => {
            let mut s = String::new();
            let mut flag = |name: &str, value: &Option<String>| {
                if let Some(v) = value {
                    s += &format!(" --{name}={v:?}");
                }
            };
            flag("from", &copy.from);
            flag("chown", &copy.chown);
            flag("chmod", &copy.chmod);
            flag("checksum", &copy.checksum);
            for pattern in &copy.exclude {
                s += &format!(" --exclude={pattern:?}");
            }
            for (name, on) in [
                ("link", Some(copy.link)),
                ("parents", Some(copy.parents)),
                ("keep-git-dir", copy.keep_git_dir),
                ("unpack", copy.unpack),
            ] {
                match on {
                    Some(true) if name == "link" || name == "parents" => s += &format!(" --{name}"),
                    Some(v) if name != "link" && name != "parents" => {
                        s += &format!(" --{name}={v}")
                    }
                    _ => {}
                }
            }
            if copy.exec_form {
                s += " (json)";
            }
            let sources: Vec<String> = copy
                .sources
                .iter()
                .map(|src| match src {
                    CopySource::Path(p) => format!("{p:?}"),
                    CopySource::Heredoc(doc) => format!("<<{:?}", doc.name),
                })
                .collect();
            s + &format!(" [{}] -> {:?}", sources.join(", "), copy.dest)
        }
        Command::Onbuild(onbuild) => format!(" {:?}", onbuild.expression),
        Command::Healthcheck(Healthcheck::None) => " NONE".to_string(),
        Command::Healthcheck(Healthcheck::Check(check)) => {
            let mut s = String::new();
            for (name, value) in [
                ("interval", check.interval),
                ("timeout", check.timeout),
                ("start-period", check.start_period),
                ("start-interval", check.start_interval),
            ] {
                if let Some(d) = value {
                    s += &format!(" --{name}={d:?}");
                }
            }
            if let Some(retries) = check.retries {
                s += &format!(" --retries={retries}");
            }
            s + &format!(" test={:?}", check.test_vector())
        }
    }
}

fn mount_spec(spec: &MountSpec) -> String {
    match &spec.mount {
        Some(mount) => format!("{{{}}}", mount_fields(mount)),
        None => format!("{{deferred {:?}}}", spec.raw),
    }
}

fn mount_fields(m: &Mount) -> String {
    let mut parts = vec![format!("type={}", m.kind.as_str())];
    let mut opt = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            parts.push(format!("{name}={v:?}"));
        }
    };
    opt("target", &m.target);
    opt("source", &m.source);
    opt("from", &m.from);
    opt("id", &m.id);
    opt("env", &m.env);
    parts.push(if m.read_only { "ro" } else { "rw" }.to_string());
    if m.kind == MountType::Cache {
        parts.push(format!("sharing={:?}", m.sharing).to_lowercase());
    }
    if let Some(mode) = m.mode {
        parts.push(format!("mode={mode:o}"));
    }
    if let Some(uid) = m.uid {
        parts.push(format!("uid={uid}"));
    }
    if let Some(gid) = m.gid {
        parts.push(format!("gid={gid}"));
    }
    if let Some(size) = m.size {
        parts.push(format!("size={size}"));
    }
    if m.required {
        parts.push("required".to_string());
    }
    parts.join(" ")
}
