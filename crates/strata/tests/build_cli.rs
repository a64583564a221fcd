//! `strata build` and `strata builder prune` as a user runs them: exit codes, output modes,
//! `--iidfile`, `--check`, cache hits across processes. Needs root, runc and the fixtures.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("STRATA_FIXTURES").unwrap_or_else(|_| "/var/cache/strata-fixtures".into()),
    )
}

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        let cli = Cli {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = cli.run(&[
            "load",
            "-i",
            fixtures()
                .join("docker-archive/busybox_1.35.tar")
                .to_str()
                .unwrap(),
        ]);
        assert!(
            out.status.success(),
            "load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir_all(cli.context()).unwrap();
        cli
    }

    fn context(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.context().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .env("STRATA_ROOT", self.dir.path().join("store"))
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap()
    }

    fn build(&self, extra: &[&str]) -> Output {
        let ctx = self.context();
        let mut args = vec!["build", "--progress=plain"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        self.run(&args)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn build_tags_prints_plain_progress_and_caches_across_processes() {
    let cli = Cli::new();
    cli.write("Dockerfile", "FROM strata-fixtures/busybox:1.35\nCOPY a.txt /a.txt\nRUN echo step-output && cat /a.txt\n");
    cli.write("a.txt", "from-context\n");
    let out = cli.build(&["-t", "demo:1"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[2/3] COPY a.txt /a.txt"), "{stderr}");
    assert!(
        stderr.contains(" step-output"),
        "RUN output is printed: {stderr}"
    );
    assert!(stderr.contains(" from-context"), "{stderr}");
    assert!(
        stderr.contains("naming to docker.io/library/demo:1 done"),
        "{stderr}"
    );

    let again = cli.build(&["-t", "demo:1"]);
    let stderr = text(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(stderr.matches("CACHED").count(), 2, "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.ends_with(" step-output") && !l.contains("RUN")),
        "a cached RUN prints no output: {stderr}"
    );

    let images = cli.run(&["images"]);
    assert!(
        text(&images.stdout).contains("demo"),
        "{}",
        text(&images.stdout)
    );
}

#[test]
fn quiet_prints_only_the_id_and_iidfile_gets_it_too() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nLABEL a=b\n",
    );
    let iid = cli.dir.path().join("iid");
    let out = cli.build(&["-q", "--iidfile", iid.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = stdout.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{stdout:?}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
}

#[test]
fn exit_codes_one_for_build_errors_two_for_usage_errors() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN exit 7\n",
    );
    let out = cli.build(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("did not complete successfully: exit code: 7"),
        "{stderr}"
    );
    assert!(stderr.contains(">>> RUN exit 7"), "{stderr}");

    cli.write("Dockerfile", "FROM missing/image:none\n");
    let out = cli.build(&[]);
    assert_eq!(out.status.code(), Some(1));

    let out = cli.run(&["build", "--definitely-not-a-flag", "."]);
    assert_eq!(out.status.code(), Some(2));

    let out = cli.build(&["--platform", "linux/arm64"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not supported"));
}

#[test]
fn check_reports_lint_findings_without_building() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "from strata-fixtures/busybox:1.35 as Builder\nRUN echo hi\n",
    );
    let out = cli.build(&["--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("StageNameCasing") || stdout.contains("FromAsCasing"),
        "{stdout}"
    );

    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN echo hi\n",
    );
    let out = cli.build(&["--check"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn builder_prune_drops_the_cache() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN echo once > /f\n",
    );
    assert!(cli.build(&[]).status.success());
    let out = cli.run(&["builder", "prune", "-af"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Total reclaimed space"));
    let out = cli.build(&[]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("CACHED"),
        "{}",
        text(&out.stderr)
    );
}
