//! Detached containers: `run -d` under a supervisor, an HTTP server answering on its port,
//! `ps`, `logs`, `stop`, `kill`, `wait`, `rm -f`, the port proxy into a `--network none`
//! container, and a supervisor killed with SIGKILL.

mod container_common;

use container_common::{BUSYBOX, Strata, free_port, http_get};

#[test]
fn a_detached_http_server_answers_and_stop_ends_it() {
    let s = Strata::with(&["busybox_1.35"]);
    let port = free_port();
    std::fs::create_dir(s.path("www")).unwrap();
    std::fs::write(s.path("www/index.html"), "hello from strata\n").unwrap();
    let www = s.path("www");
    let volume = format!("{}:/www:ro", www.display());
    let listen = format!("127.0.0.1:{port}");
    let id = s.ok(&[
        "run", "-d", "--name", "web", "-v", &volume, BUSYBOX, "httpd", "-f", "-p", &listen, "-h",
        "/www",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));

    let response = http_get(port, "/index.html");
    assert!(
        response
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(" 200 OK")),
        "{response}"
    );
    assert!(response.ends_with("hello from strata\n"), "{response}");

    let ps = s.ok(&["ps"]);
    let mut lines = ps.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "CONTAINER",
            "ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    let row = lines.next().expect("the running container");
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("\"httpd -f -p 127.0.…"), "{row}");
    assert!(row.contains("Up "), "{row}");
    assert!(row.ends_with("web"), "{row}");
    assert_eq!(s.ok(&["ps", "-q"]), format!("{}\n", &id[..12]));

    // httpd, as PID 1 without a TERM handler, ignores SIGTERM: stop kills it after -t.
    assert_eq!(s.ok(&["stop", "-t", "1", "web"]), "web\n");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(s.ok(&["ps"]).lines().count(), 1);
    let rows = s.ps_all();
    assert!(rows[0][4].starts_with("Exited (137)"), "{rows:?}");
    assert_eq!(s.ok(&["wait", "web"]), "137\n");
    assert_eq!(s.ok(&["rm", "web"]), "web\n");
    assert!(s.ps_all().is_empty());
}

#[test]
fn logs_wait_kill_and_rm_force() {
    let s = Strata::with(&["busybox_1.35"]);
    let id = s.ok(&[
        "run",
        "-d",
        BUSYBOX,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    let id = id.trim();
    assert_eq!(s.ok(&["wait", id]), "5\n");
    // Each stream back on its own descriptor.
    let logs = s.output(&["logs", &id[..12]]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    // -f follows until the container ends.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        BUSYBOX,
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    assert_eq!(s.ok(&["logs", "-f", "talker"]), "a\nb\n");

    s.ok(&["run", "-d", "--name", "sleeper", BUSYBOX, "sleep", "1000"]);
    let (code, stderr) = s.fails(&["rm", "sleeper"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is running"), "{stderr}");
    assert_eq!(s.ok(&["kill", "-s", "KILL", "sleeper"]), "sleeper\n");
    assert_eq!(s.ok(&["wait", "sleeper"]), "137\n");
    // A stopped container starts again, under a new supervisor.
    assert_eq!(s.ok(&["start", "sleeper"]), "sleeper\n");
    assert!(s.ok(&["ps"]).contains("sleeper"));
    assert_eq!(s.ok(&["rm", "-f", "sleeper"]), "sleeper\n");
}

#[test]
fn rm_force_removes_a_running_container() {
    let s = Strata::with(&["busybox_1.35"]);
    s.ok(&["run", "-d", "--name", "sleeper", BUSYBOX, "sleep", "1000"]);
    assert_eq!(s.ok(&["rm", "-f", "sleeper"]), "sleeper\n");
    assert!(s.ps_all().is_empty());
}

#[test]
fn a_command_that_cannot_start_fails_run_detached() {
    let s = Strata::with(&["busybox_1.35"]);
    let (code, stderr) = s.fails(&["run", "-d", BUSYBOX, "nonexistent-command"]);
    assert_eq!(code, 127, "{stderr}");
    assert!(stderr.contains("executable file not found"), "{stderr}");
}

#[test]
fn ps_shows_a_container_exited_once_its_supervisor_is_killed() {
    let s = Strata::with(&["busybox_1.35"]);
    let id = s.ok(&["run", "-d", "--name", "orphan", BUSYBOX, "sleep", "1000"]);
    let id = id.trim();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.root.path().join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap();
    let supervisor = state["owner_pid"].as_i64().expect("the supervisor's pid") as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(supervisor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // The supervisor is not our child: wait for it to be gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{supervisor}/stat")).exists()
        && std::fs::read_to_string(format!("/proc/{supervisor}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rows = s.ps_all();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0][4].starts_with("Exited (137)"), "{rows:?}");
    assert_eq!(s.ok(&["ps", "-q"]), "");
    // The container's processes are gone with it, and it can start again.
    s.ok(&["start", "orphan"]);
    assert!(s.ok(&["ps"]).contains("orphan"));
    s.ok(&["rm", "-f", "orphan"]);
}

#[test]
fn published_ports_reach_a_container_without_network() {
    let s = Strata::with(&["busybox_1.35"]);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "isolated",
        "--network",
        "none",
        "-p",
        &publish,
        BUSYBOX,
        "sh",
        "-c",
        "echo inside > /tmp/index.html && httpd -f -p 127.0.0.1:8080 -h /tmp",
    ]);
    let response = http_get(port, "/index.html");
    assert!(response.ends_with("inside\n"), "{response}");
    let ps = s.ok(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
    s.ok(&["rm", "-f", "isolated"]);
}

#[test]
fn container_prune_removes_stopped_containers_only() {
    let s = Strata::with(&["busybox_1.35"]);
    let created = s.ok(&["create", BUSYBOX, "true"]);
    let exited = s.ok(&["run", BUSYBOX, "true"]);
    assert_eq!(exited, "");
    s.ok(&["run", "-d", "--name", "running", BUSYBOX, "sleep", "1000"]);
    // A running container cannot be started twice.
    let (_, stderr) = s.fails(&["start", "-a", "running"]);
    assert!(stderr.contains("already running"), "{stderr}");
    let out = s.ok(&["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(created.trim()), "{out}");
    assert_eq!(out.lines().filter(|l| l.len() == 64).count(), 2, "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    let rows = s.ps_all();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][6], "running");
    s.ok(&["rm", "-f", "running"]);
}
