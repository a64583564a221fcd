//! `strata cp` with docker's rules, and hostile symlinks inside a container that must not let
//! a copy read or write outside the container's root, in either direction.

mod container_common;

use std::fs;

use container_common::{BUSYBOX, Strata, exists};

/// A stopped container with a small tree and two hostile symlinks: `/escape -> /` and
/// `/x -> /etc`, plus `/hostdir -> <the test's host directory>`.
fn hostile(s: &Strata) {
    let hostdir = s.path("host-secret");
    fs::create_dir(&hostdir).unwrap();
    fs::write(hostdir.join("secret"), "host only\n").unwrap();
    let script = format!(
        "ln -s / /escape && ln -s /etc /x && ln -s {host} /hostdir && ln -s {host}/secret /secretlink \
         && mkdir -p /data/sub && echo one > /data/sub/f && echo inside > /etc/marker",
        host = hostdir.display()
    );
    s.ok(&["run", "--name", "ctr", BUSYBOX, "sh", "-c", &script]);
}

#[test]
fn copies_follow_docker_rules() {
    let s = Strata::with(&["busybox_1.35"]);
    hostile(&s);
    // A directory to a new path: the directory itself, renamed.
    s.ok(&["cp", "ctr:/data", "out"]);
    assert_eq!(fs::read_to_string(s.path("out/sub/f")).unwrap(), "one\n");
    // A directory into an existing directory: under its own name.
    s.ok(&["cp", "ctr:/data", "out"]);
    assert_eq!(
        fs::read_to_string(s.path("out/data/sub/f")).unwrap(),
        "one\n"
    );
    // `/.`: the contents.
    fs::create_dir(s.path("contents")).unwrap();
    s.ok(&["cp", "ctr:/data/.", "contents"]);
    assert!(s.path("contents/sub/f").is_file());
    // A file over a file, into a directory, and to a missing directory (refused).
    fs::write(s.path("f"), "old").unwrap();
    s.ok(&["cp", "ctr:/data/sub/f", "f"]);
    assert_eq!(fs::read_to_string(s.path("f")).unwrap(), "one\n");
    s.ok(&["cp", "ctr:/data/sub/f", "contents/"]);
    assert!(s.path("contents/f").is_file());
    let (_, stderr) = s.fails(&["cp", "ctr:/data/sub/f", "missing/"]);
    assert!(stderr.contains("does not exist"), "{stderr}");
    // A directory onto a file is refused.
    let (_, stderr) = s.fails(&["cp", "ctr:/data", "f"]);
    assert!(
        stderr.contains("cannot copy a directory to a file"),
        "{stderr}"
    );
    // A missing source names the path.
    let (_, stderr) = s.fails(&["cp", "ctr:/nope/file", "n"]);
    assert!(stderr.contains("/nope/file"), "{stderr}");

    // Into the container, and back out as a tar stream on stdout.
    fs::write(s.path("local.txt"), "from host\n").unwrap();
    s.ok(&["cp", "local.txt", "ctr:/data/"]);
    let out = s
        .command(&["cp", "ctr:/data/local.txt", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["local.txt"]);
    // A tar stream on stdin is extracted into a directory, owned by the container's root.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o600);
    header.set_uid(1234);
    builder
        .append_data(&mut header, "streamed", &b"tar\n"[..])
        .unwrap();
    let tar_bytes = builder.into_inner().unwrap();
    let mut child = s
        .command(&["cp", "-", "ctr:/data"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar_bytes).unwrap();
    assert!(child.wait().unwrap().success());
    s.ok(&["cp", "ctr:/data/streamed", "streamed"]);
    assert_eq!(fs::read_to_string(s.path("streamed")).unwrap(), "tar\n");
    let owner = s.ok(&["commit", "ctr", "copied:1"]);
    assert!(owner.starts_with("sha256:"));
    let out = s.ok(&[
        "run",
        "--rm",
        "copied:1",
        "stat",
        "-c",
        "%u %a",
        "/data/streamed",
        "/data/local.txt",
    ]);
    assert_eq!(out, "0 600\n0 644\n");
}

#[test]
fn hostile_symlinks_cannot_escape_the_container() {
    let s = Strata::with(&["busybox_1.35"]);
    hostile(&s);
    let host_secret = s.path("host-secret/secret");
    let host_secret_str = host_secret.to_str().unwrap();

    // Reading: `/escape/...` is the container's `/`, never the host's.
    let via_escape = format!("ctr:/escape{host_secret_str}");
    let (_, stderr) = s.fails(&["cp", &via_escape, "leak1"]);
    assert!(stderr.contains("no such file"), "{stderr}");
    assert!(!exists(&s.path("leak1")));
    let (_, _) = s.fails(&["cp", "ctr:/hostdir/secret", "leak2"]);
    assert!(!exists(&s.path("leak2")));
    // `/x/marker` is the container's /etc/marker.
    s.ok(&["cp", "ctr:/x/marker", "marker"]);
    assert_eq!(fs::read_to_string(s.path("marker")).unwrap(), "inside\n");
    s.ok(&["cp", "ctr:/escape/etc/marker", "marker2"]);
    assert_eq!(fs::read_to_string(s.path("marker2")).unwrap(), "inside\n");
    // A symlink source is copied as a symlink, not followed to the host.
    s.ok(&["cp", "ctr:/secretlink", "link"]);
    assert!(
        fs::symlink_metadata(s.path("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // Writing: through `/x` lands in the container's /etc, not the host's.
    fs::write(s.path("payload"), "payload\n").unwrap();
    let name = format!("strata-cp-test-{}", std::process::id());
    fs::write(s.path(&name), "payload\n").unwrap();
    s.ok(&["cp", &name, "ctr:/x/"]);
    assert!(!exists(&std::path::Path::new("/etc").join(&name)));
    let inside = format!("ctr:/etc/{name}");
    s.ok(&["cp", &inside, "back"]);
    assert_eq!(fs::read_to_string(s.path("back")).unwrap(), "payload\n");
    // Through `/hostdir` (an absolute link to a host path): resolved in the container, where
    // that directory does not exist.
    let (_, _) = s.fails(&["cp", "payload", "ctr:/hostdir/payload"]);
    assert!(!exists(&s.path("host-secret/payload")));
    // Over the link to a host file: the link itself is replaced, the host file untouched.
    s.ok(&["cp", "payload", "ctr:/secretlink"]);
    assert_eq!(fs::read_to_string(&host_secret).unwrap(), "host only\n");
    // A tar stream with a symlink and a file written through it stays inside too.
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "evil", s.path("host-secret"))
        .unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_size(4);
    file.set_mode(0o644);
    builder
        .append_data(&mut file, "evil/planted", &b"bad\n"[..])
        .unwrap();
    let tar_bytes = builder.into_inner().unwrap();
    let mut child = s
        .command(&["cp", "-", "ctr:/tmp"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar_bytes).unwrap();
    let _ = child.wait().unwrap();
    assert!(!exists(&s.path("host-secret/planted")));
    assert_eq!(
        fs::read_dir(s.path("host-secret")).unwrap().count(),
        1,
        "the host directory is untouched"
    );
}
