//! Specification tests over `testdata/`: each case directory holds a `Dockerfile` and the
//! `expected` output; `UPDATE_EXPECT=1 cargo test` rewrites the expected files instead of
//! comparing (review the diff before committing).
//!
//! - `testdata/parse/<case>`: the dump of the parsed Dockerfile.
//! - `testdata/errors/<case>`: the rendered error (parse error, else plan error), exactly as
//!   BuildKit prints its snippet.
//! - `testdata/plan/<case>`: the dump of the plan; an optional `options` file holds lines
//!   `build-arg NAME=VALUE` and `target NAME`.

use std::fs;
use std::path::{Path, PathBuf};
use strata_dockerfile::{BuildArgs, dump, parse, plan};

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
}

fn options(dir: &Path) -> Options {
    let mut build_args = BuildArgs::new();
    let mut target = None;
    let text = fs::read_to_string(dir.join("options")).unwrap_or_default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(' ') {
            Some(("build-arg", kv)) => {
                let (k, v) = kv.split_once('=').expect("build-arg NAME=VALUE");
                build_args.set(k, v);
            }
            Some(("target", name)) => target = Some(name.to_string()),
            _ => panic!("{}: bad options line {line:?}", dir.display()),
        }
    }
    Options { build_args, target }
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
