//! What `strata save` writes, docker itself loads and runs: a private dockerd (its own data
//! root, exec root and socket; no bridge, no iptables) is started for the test when the
//! machine has one, the busybox fixture goes through `strata load` → `strata save` →
//! `docker load` → `docker run --network none IMAGE true`, and the daemon is stopped again.
//! Without a dockerd binary the test says so and checks nothing else (skopeo and umoci
//! cover the same archive in images_fixtures).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A dockerd of the test's own, stopped (by its PID) when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(dockerd: &Path) -> Daemon {
        // Short paths: containerd's sockets live under the exec root and must fit sun_path.
        let dir = tempfile::Builder::new()
            .prefix("sd")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = dir.path().join("d.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("--bridge=none")
            .arg("--iptables=false")
            .arg("--ip-masq=false")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("x"))
            .arg("--pidfile")
            .arg(dir.path().join("d.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let daemon = Daemon {
            child,
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s: {}",
                std::fs::read_to_string(daemon._dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .expect("run the docker client")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a child pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
