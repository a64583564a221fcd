//! What `strata save` writes, docker itself loads and runs: a private dockerd (its own data
//! root, exec root and socket; no bridge, no iptables) is started for the test when the
//! machine has one, the busybox fixture goes through `strata load` → `strata save` →
//! `docker load` → `docker run --network none IMAGE true`, and the daemon is stopped again.
//! Without a dockerd binary the test says so and checks nothing else (skopeo and umoci
//! cover the same archive in images_fixtures).

use std::path::{Path, PathBuf};
use std::process::Command;

mod docker_common;
use docker_common::{Daemon, find_in_path};

fn fixtures() -> PathBuf {
    PathBuf::from(
        std::env::var("STRATA_FIXTURES").unwrap_or_else(|_| "/var/cache/strata-fixtures".into()),
    )
}

fn strata(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run strata");
    assert!(
        out.status.success(),
        "strata {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn docker_loads_and_runs_what_strata_saves() {
    let Some(dockerd) = find_in_path("dockerd") else {
        eprintln!("no dockerd on this machine: docker interop not checked here");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let archive = fixtures().join("docker-archive/busybox_1.35.tar");
    strata(root.path(), &["load", "-i", archive.to_str().unwrap()]);
    strata(
        root.path(),
        &[
            "tag",
            "strata-fixtures/busybox:1.35",
            "strata-interop/busybox:saved",
        ],
    );
    let id = strata(
        root.path(),
        &["images", "-q", "--no-trunc", "strata-interop/busybox:saved"],
    );
    let saved = root.path().join("saved.tar");
    strata(
        root.path(),
        &[
            "save",
            "-o",
            saved.to_str().unwrap(),
            "strata-interop/busybox:saved",
        ],
    );

    let daemon = Daemon::start(&dockerd);
    let load = daemon.docker(&["load", "-i", saved.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "docker load failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert!(
        String::from_utf8_lossy(&load.stdout)
            .contains("Loaded image: strata-interop/busybox:saved"),
        "{}",
        String::from_utf8_lossy(&load.stdout)
    );
    // Same IMAGE ID in docker as in strata: the config bytes survived untouched.
    let inspect = daemon.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "strata-interop/busybox:saved",
    ]);
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), id.trim());
    let run = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "strata-interop/busybox:saved",
        "sh",
        "-c",
        "echo ran in docker",
    ]);
    assert!(
        run.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "ran in docker\n");
}
