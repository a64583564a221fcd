//! The linter's specification: `testdata/lint/<case>/Dockerfile` with the findings BuildKit
//! prints for it in `expected` (` - Rule: message (line N)`, one per line, then an `ERROR:` line
//! when the configuration makes them fail the build). An optional `build-args` file holds
//! `NAME=VALUE` lines.

use std::path::Path;

use super::*;
use crate::parse::parse;

fn run_case(dir: &Path) -> Result<(), String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    let source = read("Dockerfile").map_err(|e| format!("cannot read Dockerfile: {e}"))?;
    let expected = read("expected").map_err(|e| format!("cannot read expected: {e}"))?;
    let mut build_args = BuildArgs::new();
    if let Ok(text) = read("build-args") {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            build_args.set(name, value);
        }
    }
    let dockerfile = parse(&source).map_err(|e| format!("parse error: {e}"))?;
    let warnings = check(&dockerfile, &build_args);
    let mut got: String = warnings.iter().map(|w| format!(" - {w}\n")).collect();
    let config = CheckConfig::for_build(&dockerfile, &build_args).map_err(|e| e.to_string())?;
    if let Some(error) = violation_error(&config, &warnings) {
        got.push_str(&format!("ERROR: {error}\n"));
    }
    if got.trim_end() == expected.trim_end() {
        Ok(())
    } else {
        Err(format!("got:\n{got}expected:\n{expected}"))
    }
}

#[test]
fn lint_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lint");
    let mut dirs: Vec<_> = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(e) => panic!("cannot read {}: {e}", root.display()),
    };
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases in {}", root.display());
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|dir| {
            run_case(dir)
                .err()
                .map(|e| format!("== {}\n{e}", dir.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} lint cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[test]
fn check_options_parse_like_buildkit() {
    assert_eq!(CheckConfig::parse(""), Ok(CheckConfig::default()));
    assert_eq!(
        CheckConfig::parse(" skip = A, B ;error=true"),
        Ok(CheckConfig {
            skip: vec!["A".into(), "B".into()],
            skip_all: false,
            error: true
        })
    );
    assert_eq!(CheckConfig::parse("skip=all").map(|c| c.skip_all), Ok(true));
    assert!(CheckConfig::parse("skip").is_err());
    assert!(CheckConfig::parse("error=maybe").is_err());
    assert!(CheckConfig::parse("bogus=1").is_err());
}

#[test]
fn every_rule_has_a_distinct_name_and_url() {
    for rule in Rule::ALL {
        assert_eq!(Rule::from_name(rule.name()), Some(rule));
        assert!(
            rule.url()
                .starts_with("https://docs.docker.com/go/dockerfile/rule/")
        );
    }
}

#[test]
fn warnings_render_as_docker_build_check_does() {
    let source = "FROM busybox as base\nRUN true\n";
    let dockerfile = parse(source).unwrap_or_else(|e| panic!("{e}"));
    let warnings = check(&dockerfile, &BuildArgs::new());
    let rendered: Vec<String> = warnings
        .iter()
        .map(|w| w.render("Dockerfile", source))
        .collect();
    assert_eq!(
        rendered,
        [
            "\nWARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n\
          'as' and 'FROM' keywords' casing do not match\n\
          Dockerfile:1\n\
          --------------------\n   1 | >>> FROM busybox as base\n   2 |     RUN true\n   3 |     \n\
          --------------------\n"
        ]
    );
}
