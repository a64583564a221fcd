//! `commit` round trips and `export`, and the classic builder pattern: `create` a container
//! from a big "builder" image, `cp` an artifact out, `rm -f` it, and make a thin image with
//! the artifact that works.

mod container_common;

use std::fs;

use container_common::{BUSYBOX, GOLANG, Strata};

#[test]
fn commit_round_trips_a_containers_changes() {
    let s = Strata::with(&["busybox_1.35"]);
    s.ok(&[
        "run",
        "--name",
        "maker",
        "-e",
        "GREETING=hello",
        BUSYBOX,
        "sh",
        "-c",
        "echo made > /made && rm /bin/ls && mkdir -p /etc/app && echo cfg > /etc/app/conf",
    ]);
    let id = s.ok(&[
        "commit",
        "-m",
        "add made",
        "-a",
        "Strata Test <test@example.invalid>",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "-c",
        "ENV EXTRA=1",
        "maker",
        "made:1",
    ]);
    assert!(
        id.trim().starts_with("sha256:") && id.trim().len() == 71,
        "{id}"
    );
    // The new image has the file, the deletion, the committed env and the changed CMD.
    assert_eq!(s.ok(&["run", "--rm", "made:1"]), "made\n");
    let out = s.run_sh(
        "made:1",
        "cat /etc/app/conf; test -e /bin/ls; echo $? $GREETING $EXTRA",
    );
    assert_eq!(out, "cfg\n1 hello 1\n");
    // The base image is untouched.
    let out = s.run_sh(BUSYBOX, "test -e /made; echo $?; test -e /bin/ls; echo $?");
    assert_eq!(out, "1\n0\n");
    // One new history entry with the message and author; the image id is what commit printed.
    let history = s.ok(&["history", "--no-trunc", "made:1"]);
    let top = history.lines().nth(1).unwrap();
    assert!(top.contains("add made"), "{history}");
    let images = s.ok(&["images", "--no-trunc"]);
    assert!(images.contains(id.trim()), "{images}");
    // An image a container uses survives a prune of dangling content.
    s.ok(&["create", "--name", "user", "made:1"]);
    // rmi refuses without -f and changes nothing: the tag is still there afterwards.
    let refused = s.output(&["rmi", "made:1"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("a container is using its referenced image"),
        "{stderr}"
    );
    assert!(s.ok(&["images"]).contains("made"));
    // -f untags, and the container keeps its image.
    let forced = s.ok(&["rmi", "-f", "made:1"]);
    assert_eq!(forced.trim(), "Untagged: made:1", "{forced}");
    s.ok(&["image", "prune", "-f"]);
    s.ok(&["start", "-a", "user"]);
}

#[test]
fn export_writes_the_flattened_filesystem() {
    let s = Strata::with(&["busybox_1.35"]);
    s.ok(&[
        "run",
        "--name",
        "exp",
        BUSYBOX,
        "sh",
        "-c",
        "echo e > /exported && rm /bin/ls",
    ]);
    s.ok(&["export", "-o", "x.tar", "exp"]);
    let mut archive = tar::Archive::new(fs::File::open(s.path("x.tar")).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "exported"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/sh"), "{names:?}");
    assert!(!names.iter().any(|n| n == "bin/ls"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".wh.")), "{names:?}");
}

#[test]
fn builder_pattern_create_cp_rm_then_a_thin_image() {
    let s = Strata::with(&["busybox_1.35", "golang_1.19"]);
    // The builder: compile a program in the golang image.
    let program =
        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"built by the builder\") }\n";
    fs::create_dir(s.path("src")).unwrap();
    fs::write(s.path("src/main.go"), program).unwrap();
    s.ok(&[
        "create",
        "--name",
        "builder",
        "-w",
        "/go/src/httpd",
        "-e",
        "CGO_ENABLED=0",
        "-e",
        "GOCACHE=/tmp/gocache",
        GOLANG,
        "go",
        "build",
        "-o",
        "/go/src/httpd/httpd",
        "main.go",
    ]);
    s.ok(&["cp", "src/.", "builder:/go/src/httpd"]);
    s.ok(&["start", "-a", "builder"]);
    s.ok(&["commit", "builder", "builder:1"]);
    s.ok(&["rm", "builder"]);

    // The classic script.
    s.ok(&["create", "--name", "extract", "builder:1"]);
    s.ok(&["cp", "extract:/go/src/httpd/httpd", "./httpd"]);
    s.ok(&["rm", "-f", "extract"]);
    assert!(s.path("httpd").is_file());

    // The thin image: busybox plus the binary.
    s.ok(&["create", "--name", "thin", BUSYBOX]);
    s.ok(&["cp", "httpd", "thin:/usr/bin/app"]);
    s.ok(&["commit", "-c", "CMD [\"/usr/bin/app\"]", "thin", "thin:1"]);
    s.ok(&["rm", "thin"]);
    assert_eq!(s.ok(&["run", "--rm", "thin:1"]), "built by the builder\n");
}
