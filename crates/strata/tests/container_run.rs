//! `strata run` as a user runs it: output, exit codes (the container's, 125/126/127 as docker),
//! the image config applied as docker applies it, writes that never reach the image, `--rm`,
//! and signals forwarded to the container.

mod container_common;

use container_common::{BUSYBOX, Strata};

fn registry() -> String {
    std::env::var("STRATA_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_owned())
}

#[test]
fn run_pulls_a_missing_image_first() {
    let s = Strata::with(&[]);
    let image = format!("{}/library/busybox:1.35", registry());
    let out = s.output(&["run", "--rm", &image, "echo", "pulled"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The pull reports on stderr; stdout is the container's alone.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pulled\n");
    assert!(stderr.contains("Unable to find image"), "{stderr}");
    assert!(
        stderr.contains("Status: Downloaded newer image"),
        "{stderr}"
    );
    // Now local: no second pull.
    let out = s.output(&["run", "--rm", &image, "true"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Unable to find image"));
}

#[test]
fn run_prints_the_output_and_returns_the_exit_code() {
    let s = Strata::with(&["busybox_1.35"]);
    assert_eq!(s.ok(&["run", "--rm", BUSYBOX, "echo", "hi"]), "hi\n");
    let cases: &[(&[&str], i32)] = &[
        (&["sh", "-c", "exit 3"], 3),
        (&["nonexistent-command"], 127),
        (&["/no/such/file"], 127),
        // A directory is not executable.
        (&["/etc"], 126),
    ];
    for (command, want) in cases {
        let mut args = vec!["run", "--rm", BUSYBOX];
        args.extend_from_slice(command);
        let (code, _) = s.fails(&args);
        assert_eq!(code, *want, "{command:?}");
    }
    // strata's own failure: an image neither in the store nor in the (loopback) registry.
    let missing = format!("{}/library/no-such-image:1", registry());
    let (code, stderr) = s.fails(&["run", "--rm", &missing, "true"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("Unable to find image"), "{stderr}");
    // A user the image does not know: strata's failure, before anything runs.
    let (code, stderr) = s.fails(&["run", "--rm", "-u", "nosuch", BUSYBOX, "id"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("unable to find user nosuch"), "{stderr}");
    let (code, _) = s.fails(&["run", "-d", "--rm", "-u", "nosuch", BUSYBOX, "id"]);
    assert_eq!(code, 125);
    // --rm left nothing behind.
    assert!(s.ps_all().is_empty(), "{:?}", s.ps_all());
}

#[test]
fn run_applies_flags_over_the_image_config_as_docker_does() {
    let s = Strata::with(&["busybox_1.35"]);
    let out = s.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "65534:65534",
        BUSYBOX,
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u):$(id -g) $HOSTNAME",
    ]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[..3], ["1", "/tmp", "65534:65534"], "{out}");
    assert_eq!(fields[3].len(), 12, "HOSTNAME is the short id: {out}");

    std::fs::write(s.path("env"), "# comment\nB=from file\n").unwrap();
    let out = s.ok(&[
        "run",
        "--rm",
        "--env-file",
        "env",
        BUSYBOX,
        "sh",
        "-c",
        "echo $B",
    ]);
    assert_eq!(out, "from file\n");

    // --entrypoint replaces the entrypoint and the image's Cmd (busybox's is `sh`).
    let out = s.ok(&["run", "--rm", "--entrypoint", "echo", BUSYBOX, "a", "b"]);
    assert_eq!(out, "a b\n");
    let out = s.ok(&["run", "--rm", "--entrypoint", "echo", BUSYBOX]);
    assert_eq!(out, "\n");
}

#[test]
fn writes_stay_in_the_container() {
    let s = Strata::with(&["busybox_1.35"]);
    s.ok(&[
        "run",
        "--name",
        "writer",
        BUSYBOX,
        "sh",
        "-c",
        "echo x > /etc/written && rm /bin/ls",
    ]);
    let out = s.run_sh(
        BUSYBOX,
        "test -e /etc/written; echo $?; test -e /bin/ls; echo $?",
    );
    assert_eq!(out, "1\n0\n");
    // Started again, the container sees its own changes: /bin/ls is already gone.
    let (code, stderr) = s.fails(&["start", "-a", "writer"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("can't remove '/bin/ls'"), "{stderr}");
    let rows = s.ps_all();
    assert_eq!(rows.len(), 1);
    assert!(rows[0][4].starts_with("Exited (1)"), "{rows:?}");
}

#[test]
fn names_are_unique() {
    let s = Strata::with(&["busybox_1.35"]);
    s.ok(&["create", "--name", "one", BUSYBOX]);
    let (code, stderr) = s.fails(&["create", "--name", "one", BUSYBOX]);
    assert_eq!(code, 125);
    assert!(stderr.contains("already in use"), "{stderr}");
    // Racing creates of one name: exactly one wins.
    let racers: Vec<_> = (0..4)
        .map(|_| {
            s.command(&["create", "--name", "contested", BUSYBOX])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let winners = racers
        .into_iter()
        .filter_map(|mut c| c.wait().unwrap().success().then_some(()))
        .count();
    assert_eq!(winners, 1);
    s.ok(&["rm", "contested"]);
    // Without --name: docker-style adjective_surname.
    s.ok(&["create", BUSYBOX]);
    let rows = s.ps_all();
    let generated = rows
        .iter()
        .find(|r| r[6] != "one")
        .expect("second container");
    assert!(generated[6].contains('_'), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r[4] == "Created").count(), 2);
}

#[test]
fn signals_reach_the_container() {
    let s = Strata::with(&["busybox_1.35"]);
    let mut child = s
        .command(&[
            "run",
            "--rm",
            BUSYBOX,
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(status.code(), Some(7));
}

#[test]
fn stdin_and_a_terminal_are_passed_through() {
    let s = Strata::with(&["busybox_1.35"]);
    let mut child = s
        .command(&["run", "--rm", "-i", BUSYBOX, "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"piped in\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED IN\n");
    // -t without a terminal of our own: strata makes the pty; its output arrives with CRLF.
    let out = s.output(&[
        "run",
        "--rm",
        "-t",
        BUSYBOX,
        "sh",
        "-c",
        "tty; echo $TERM; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/dev/pts/0\r\nxterm\r\n"
    );
}
