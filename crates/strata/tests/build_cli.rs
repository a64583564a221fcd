//! `strata build` and `strata builder prune` as a user runs them: exit codes, output modes,
//! `--iidfile`, `--check`, cache hits across processes. Needs root, runc and the fixtures.

mod build_common;

use build_common::{Cli, text};

#[test]
fn build_tags_prints_plain_progress_and_caches_across_processes() {
    let cli = Cli::new();
    cli.write("Dockerfile", "FROM strata-fixtures/busybox:1.35\nCOPY a.txt /a.txt\nRUN echo step-output && cat /a.txt\n");
    cli.write("a.txt", "from-context\n");
    let out = cli.build(&["--progress=plain", "-t", "demo:1"]);
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

    let again = cli.build(&["--progress=plain", "-t", "demo:1"]);
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
    let out = cli.build(&["--progress=plain", "-q", "--iidfile", iid.to_str().unwrap()]);
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
    let out = cli.build(&["--progress=plain"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("did not complete successfully: exit code: 7"),
        "{stderr}"
    );
    assert!(stderr.contains(">>> RUN exit 7"), "{stderr}");

    cli.write("Dockerfile", "FROM missing/image:none\n");
    let out = cli.build(&["--progress=plain"]);
    assert_eq!(out.status.code(), Some(1));

    let out = cli.run(&["build", "--definitely-not-a-flag", "."]);
    assert_eq!(out.status.code(), Some(2));

    let out = cli.build(&["--progress=plain", "--platform", "linux/arm64"]);
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
    let out = cli.build(&["--progress=plain", "--check"]);
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
    let out = cli.build(&["--progress=plain", "--check"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

#[test]
fn builder_prune_drops_the_cache() {
    let cli = Cli::new();
    cli.write(
        "Dockerfile",
        "FROM strata-fixtures/busybox:1.35\nRUN echo once > /f\n",
    );
    assert!(cli.build(&["--progress=plain"]).status.success());
    let out = cli.run(&["builder", "prune", "-af"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Total reclaimed space"));
    let out = cli.build(&["--progress=plain"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("CACHED"),
        "{}",
        text(&out.stderr)
    );
}
