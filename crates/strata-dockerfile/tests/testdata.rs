//! Specification tests over `testdata/`: each case directory holds a `Dockerfile` and the
//! `expected` output; `UPDATE_EXPECT=1 cargo test` rewrites the expected files instead of
//! comparing (review the diff before committing).
//!
//! - `testdata/parse/<case>`: the dump of the parsed Dockerfile.
//! - `testdata/errors/<case>`: the rendered error (parse error, else plan error), exactly as
//!   BuildKit prints its snippet.
//! - `testdata/plan/<case>`: the dump of the plan; an optional `options` file holds lines
//!   `build-arg NAME=VALUE` and `target NAME`.
//! - `testdata/expand/<case>`: every stage of the plan walked as the build engine walks it
//!   (ARGs declared into an `ArgScope`, ENVs added to the environment, each instruction
//!   expanded in `Scope { env, args }`), dumped expanded; `options` may also hold `env NAME=VALUE`
//!   lines: the base images' config environment.

use std::fs;
use std::path::{Path, PathBuf};
use strata_dockerfile::{ArgScope, BuildArgs, Command, Instruction, Scope, dump, parse, plan};

fn cases(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(kind);
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.join("Dockerfile").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Compares (or, with UPDATE_EXPECT=1, rewrites) every case; reports all mismatches at once.
fn check(kind: &str, minimum: usize, run: impl Fn(&Path, &str) -> String) {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let dirs = cases(kind);
    assert!(
        dirs.len() >= minimum,
        "testdata/{kind} has {} cases, expected at least {minimum}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in dirs {
        let source = fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        let got = run(&dir, &source);
        let expected_path = dir.join("expected");
        if update {
            fs::write(&expected_path, &got).expect("write expected");
            continue;
        }
        let want = fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "--- {}\n--- want\n{want}--- got\n{got}",
                dir.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ (UPDATE_EXPECT=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

struct Options {
    build_args: BuildArgs,
    target: Option<String>,
    env: Vec<(String, String)>,
}

fn options(dir: &Path) -> Options {
    let mut build_args = BuildArgs::new();
    let mut target = None;
    let mut env = Vec::new();
    let text = fs::read_to_string(dir.join("options")).unwrap_or_default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(' ') {
            Some(("build-arg", kv)) => {
                let (k, v) = kv.split_once('=').expect("build-arg NAME=VALUE");
                build_args.set(k, v);
            }
            Some(("target", name)) => target = Some(name.to_string()),
            Some(("env", kv)) => {
                let (k, v) = kv.split_once('=').expect("env NAME=VALUE");
                env.push((k.to_string(), v.to_string()));
            }
            _ => panic!("{}: bad options line {line:?}", dir.display()),
        }
    }
    Options {
        build_args,
        target,
        env,
    }
}

#[test]
fn parse_cases() {
    check("parse", 25, |dir, source| match parse(source) {
        Ok(df) => dump::dockerfile(&df),
        Err(e) => panic!("{}: {}", dir.display(), e.render("Dockerfile", source)),
    });
}

#[test]
fn error_cases() {
    check("errors", 15, |dir, source| {
        let opts = options(dir);
        match parse(source) {
            Err(e) => e.render("Dockerfile", source),
            Ok(df) => match plan(&df, &opts.build_args, opts.target.as_deref()) {
                Err(e) => e.render("Dockerfile", source),
                Ok(_) => panic!("{}: expected an error, the Dockerfile plans", dir.display()),
            },
        }
    });
}

#[test]
fn plan_cases() {
    check("plan", 5, |dir, source| {
        let opts = options(dir);
        let df = parse(source).unwrap_or_else(|e| panic!("{}", e.render("Dockerfile", source)));
        match plan(&df, &opts.build_args, opts.target.as_deref()) {
            Ok(plan) => dump::plan(&plan),
            Err(e) => panic!("{}", e.render("Dockerfile", source)),
        }
    });
}

#[test]
fn expand_cases() {
    check("expand", 4, |dir, source| {
        let opts = options(dir);
        let df = parse(source).unwrap_or_else(|e| panic!("{}", e.render("Dockerfile", source)));
        let plan = plan(&df, &opts.build_args, opts.target.as_deref())
            .unwrap_or_else(|e| panic!("{}", e.render("Dockerfile", source)));
        let lexer = df.lexer();
        let mut out = String::new();
        for planned in &plan.stages {
            let stage = &df.stages[planned.index];
            out += &format!("stage {}\n", stage.index);
            // A stage starts from its base's environment: the options' env for an image, the
            // base stage's final env for a stage (ARGs never carry over).
            let mut env = opts.env.clone();
            if let strata_dockerfile::StageSource::Stage(base) = planned.base {
                env = final_env(&df.stages[base].commands, &opts, &plan, &lexer);
            }
            let mut args = ArgScope::new();
            for instruction in &stage.commands {
                let scope = Scope {
                    env: &env,
                    args: args.values(),
                };
                match instruction.expand(&lexer, &scope) {
                    Err(e) => {
                        out += &e.render("Dockerfile", source);
                        break;
                    }
                    Ok(command) => {
                        match &command {
                            Command::Arg(decls) => decls
                                .iter()
                                .for_each(|d| args.declare(d, &opts.build_args, &plan)),
                            Command::Env(pairs) => {
                                for kv in pairs {
                                    env.retain(|(k, _)| *k != kv.key);
                                    env.push((kv.key.clone(), kv.value.clone()));
                                }
                            }
                            _ => {}
                        }
                        let expanded = Instruction {
                            command,
                            ..instruction.clone()
                        };
                        out += &dump::instruction(&expanded);
                    }
                }
            }
            let args: Vec<String> = args
                .values()
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            out += &format!("  args [{}]\n", args.join(" "));
        }
        out
    });
}

/// The environment at the end of a stage whose base is an image with the options' env.
fn final_env(
    commands: &[Instruction],
    opts: &Options,
    plan: &strata_dockerfile::Plan,
    lexer: &strata_dockerfile::shell::Lexer,
) -> Vec<(String, String)> {
    let mut env = opts.env.clone();
    let mut args = ArgScope::new();
    for instruction in commands {
        let scope = Scope {
            env: &env,
            args: args.values(),
        };
        match instruction.expand(lexer, &scope) {
            Ok(Command::Arg(decls)) => decls
                .iter()
                .for_each(|d| args.declare(d, &opts.build_args, plan)),
            Ok(Command::Env(pairs)) => {
                for kv in pairs {
                    env.retain(|(k, _)| *k != kv.key);
                    env.push((kv.key, kv.value));
                }
            }
            _ => {}
        }
    }
    env
}
