//! The classic builder pattern end to end, as a user runs it: `strata build` of the shipped
//! example (examples/go-http: a Go HTTP server compiled with `CGO_ENABLED=0` in a golang stage,
//! copied into busybox, or into scratch) on the golang and busybox fixtures. The final image
//! is a few MB next to golang's hundreds, `strata history` shows its layers, a rebuild is fully
//! cached with the same image ID, the image answers on its port under `strata run`, and docker
//! itself (a private dockerd, when the machine has one) loads and runs what `strata save` wrote.

mod container_common;
mod docker_common;

use container_common::{BUSYBOX, GOLANG, Strata, free_port, http_get};
use docker_common::{Daemon, find_in_path};
use std::path::PathBuf;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/go-http")
}

fn size_of(s: &Strata, image: &str) -> u64 {
    s.ok(&["inspect", "--format", "{{.Size}}", image])
        .trim()
        .parse()
        .expect("a size in bytes")
}

#[test]
fn the_go_server_compiles_in_golang_and_ships_in_a_few_megabytes() {
    let s = Strata::with(&["busybox_1.35", "golang_1.19"]);
    // The example names the images as a user would: golang:1.19 and busybox:1.35.
    s.ok(&["tag", GOLANG, "golang:1.19"]);
    s.ok(&["tag", BUSYBOX, "busybox:1.35"]);
    let context = example();
    let context = context.to_str().expect("utf-8 path");

    let build = || {
        s.output(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "hello:latest",
            context,
        ])
    };
    let first = build();
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "build failed:\n{log}");
    assert!(
        log.contains("RUN CGO_ENABLED=0 go build"),
        "the compile step is shown:\n{log}"
    );

    // Small: the binary and busybox, none of the toolchain.
    let size = size_of(&s, "hello:latest");
    let golang = size_of(&s, GOLANG);
    assert!(
        size < 12_000_000,
        "hello:latest is {size} bytes, expected a few MB"
    );
    assert!(golang > 50 * size, "golang {golang} vs hello {size}");

    // The history names the final stage's steps, newest first, on top of busybox's layer.
    let history = s.ok(&["history", "--no-trunc", "hello:latest"]);
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert!(
        rows[0].contains("ENTRYPOINT [\"/usr/local/bin/hello\"]"),
        "{history}"
    );
    assert!(rows[1].contains("USER 65534"), "{history}");
    assert!(rows[2].contains("EXPOSE map[8080/tcp:{}]"), "{history}");
    assert!(
        rows[3].contains("COPY /out/hello /usr/local/bin/hello"),
        "{history}"
    );
    assert!(
        !history.contains("go build"),
        "builder steps leak: {history}"
    );

    // A rebuild changes nothing and costs no step.
    let id = s.ok(&["images", "-q", "--no-trunc", "hello:latest"]);
    let again = build();
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "rebuild failed:\n{log}");
    assert_eq!(log.matches("CACHED").count(), 4, "{log}");
    assert_eq!(s.ok(&["images", "-q", "--no-trunc", "hello:latest"]), id);

    // It answers on its port (no network namespace shared with the host: -p publishes).
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "hello",
        "--network",
        "none",
        "-p",
        &publish,
        "hello:latest",
    ]);
    let response = http_get(port, "/classic");
    assert!(
        response.ends_with("hello from strata (path /classic)\n"),
        "{response}"
    );
    s.ok(&["rm", "-f", "hello"]);

    // The scratch variant shares the builder stage's cache and is only the binary.
    let scratch = s.output(&[
        "build",
        "--progress",
        "plain",
        "-f",
        &format!("{context}/Dockerfile.scratch"),
        "-t",
        "hello:scratch",
        context,
    ]);
    let log = String::from_utf8_lossy(&scratch.stderr);
    assert!(scratch.status.success(), "scratch build failed:\n{log}");
    assert!(
        log.contains("go build") && log.contains("CACHED"),
        "the builder stage comes from the cache:\n{log}"
    );
    let scratch_size = size_of(&s, "hello:scratch");
    assert!(
        scratch_size < size,
        "scratch {scratch_size} vs busybox {size}"
    );
    let layers = s.ok(&[
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        "hello:scratch",
    ]);
    assert_eq!(
        layers.matches("sha256:").count(),
        1,
        "one layer, the binary: {layers}"
    );

    // docker runs it too.
    let Some(dockerd) = find_in_path("dockerd") else {
        eprintln!("no dockerd on this machine: docker run of the image not checked here");
        return;
    };
    let archive = s.path("hello.tar");
    s.ok(&["save", "-o", archive.to_str().unwrap(), "hello:latest"]);
    let daemon = Daemon::start(&dockerd);
    let load = daemon.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        load.status.success(),
        "docker load failed: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let port = free_port();
    let run = daemon.docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "-e",
        &format!("PORT={port}"),
        "hello:latest",
    ]);
    assert!(
        run.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let container = String::from_utf8_lossy(&run.stdout).trim().to_string();
    let response = http_get(port, "/docker");
    daemon.docker(&["rm", "-f", &container]);
    assert!(
        response.ends_with("hello from strata (path /docker)\n"),
        "{response}"
    );
}
