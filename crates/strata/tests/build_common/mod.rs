//! The harness of the `strata build` tests: the `strata` binary on a temporary store holding
//! the busybox fixture (loaded with `strata load`), building a context directory beside it, as
//! a user runs it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("STRATA_FIXTURES").unwrap_or_else(|_| "/var/cache/strata-fixtures".into()),
    )
}

/// A temporary directory holding the store (`store`) and the build context (`ctx`).
pub struct Cli {
    pub dir: tempfile::TempDir,
}

impl Cli {
    /// A fresh store with the busybox fixture loaded and an empty context.
    pub fn new() -> Self {
        let cli = Cli {
            dir: tempfile::tempdir().unwrap(),
        };
        let archive = fixtures().join("docker-archive/busybox_1.35.tar");
        let out = cli.run(&["load", "-i", archive.to_str().unwrap()]);
        assert!(out.status.success(), "load: {}", text(&out.stderr));
        std::fs::create_dir_all(cli.context()).unwrap();
        cli
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn context(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    /// Writes `content` to the context file `rel`, creating its parent directories.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.context().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Runs `strata args` on the store (without an inherited `SOURCE_DATE_EPOCH`).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .env("STRATA_ROOT", self.store())
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap()
    }

    /// Runs `strata build extra… <context>`.
    pub fn build(&self, extra: &[&str]) -> Output {
        let ctx = self.context();
        let mut args = vec!["build"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        self.run(&args)
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
