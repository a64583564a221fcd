//! `strata pull`, `push`, `login` and `logout` as a user runs them: the binary against the
//! fixture registry and against htpasswd-protected `docker-registry` processes started here,
//! with docker's `config.json` in a temporary `DOCKER_CONFIG`.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "strata";
const PASSWORD: &str = "strata-test";

fn fixture_registry() -> String {
    std::env::var("STRATA_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_string())
}

/// An htpasswd-protected `docker-registry` on a free port, killed on drop.
struct AuthRegistry {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl AuthRegistry {
    fn start() -> AuthRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("run htpasswd");
        std::fs::write(dir.path().join("htpasswd"), &out.stdout).expect("write htpasswd");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: strata-cli-test\nauth:\n  htpasswd:\n    realm: strata-test\n    path: {htpasswd}\n",
            data = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        AuthRegistry {
            port,
            _dir: dir,
            child,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `strata` with its own store and docker config directory.
fn strata(root: &Path, docker_config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    if let Some(mut pipe) = child.stdin.take()
        && let Some(input) = stdin
    {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for strata")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn pull_prints_docker_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, config) = (dir.path().join("root"), dir.path().join("docker"));
    let image = format!("{}/library/busybox:1.35", fixture_registry());
    let out = strata(&root, &config, &["pull", &image], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1.35: Pulling from library/busybox");
    // One layer, reported in the order docker reports it without a terminal.
    let id = &lines[1][..12];
    assert_eq!(
        lines[1..5],
        [
            format!("{id}: Pulling fs layer"),
            format!("{id}: Verifying Checksum"),
            format!("{id}: Download complete"),
            format!("{id}: Pull complete"),
        ]
    );
    assert!(lines[5].starts_with("Digest: sha256:"), "{stdout}");
    assert_eq!(
        lines[6],
        format!("Status: Downloaded newer image for {image}")
    );
    assert_eq!(lines[7], image);

    let again = strata(&root, &config, &["pull", &image], None);
    let stdout = text(&again.stdout);
    assert_eq!(
        stdout.lines().nth(2),
        Some(format!("Status: Image is up to date for {image}").as_str()),
        "{stdout}"
    );

    let quiet = strata(&root, &config, &["pull", "-q", &image], None);
    assert_eq!(text(&quiet.stdout), format!("{image}\n"));

    let bad = strata(
        &root,
        &config,
        &["pull", "--platform", "linux", &image],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("invalid platform \"linux\": expected os/arch[/variant]"),
        "{}",
        text(&bad.stderr)
    );

    let missing = strata(
        &root,
        &config,
        &[
            "pull",
            &format!("{}/library/busybox:nope", fixture_registry()),
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("MANIFEST_UNKNOWN"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn login_push_logout() {
    let registry = AuthRegistry::start();
    let host = registry.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, config) = (dir.path().join("root"), dir.path().join("docker"));
    let source = format!("{}/library/busybox:1.35", fixture_registry());
    assert!(
        strata(&root, &config, &["pull", "-q", &source], None)
            .status
            .success()
    );
    let target = format!("{host}/cli/busybox:1");
    assert!(
        strata(&root, &config, &["tag", &source, &target], None)
            .status
            .success()
    );

    // Not logged in: refused with a hint.
    let out = strata(&root, &config, &["push", &target], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{host}: authentication required")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("hint: log in with `strata login {host}`")),
        "{stderr}"
    );

    // A wrong password writes nothing and never echoes the password.
    let out = strata(
        &root,
        &config,
        &["login", "-u", USER, "--password-stdin", &host],
        Some("not-it\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stderr).contains("not-it"));
    assert!(!config.join("config.json").exists());

    let out = strata(
        &root,
        &config,
        &["login", "-u", USER, "--password-stdin", &host],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Login Succeeded\n");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.join("config.json")).expect("config.json"))
            .expect("json");
    assert_eq!(saved["auths"][&host]["auth"], "c3RyYXRhOnN0cmF0YS10ZXN0"); // strata:strata-test
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(config.join("config.json"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = strata(&root, &config, &["push", &target], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{host}/cli/busybox]")
    );
    assert!(lines.iter().any(|l| l.ends_with(": Pushed")), "{stdout}");
    let last = lines.last().expect("digest line");
    assert!(
        last.starts_with("1: digest: sha256:") && last.contains(" size: "),
        "{stdout}"
    );

    // Pushing again: the registry has every layer.
    let out = strata(&root, &config, &["push", &target], None);
    assert!(
        text(&out.stdout).contains(": Layer already exists"),
        "{}",
        text(&out.stdout)
    );

    let out = strata(&root, &config, &["logout", &host], None);
    assert_eq!(
        text(&out.stdout),
        format!("Removing login credentials for {host}\n")
    );
    let out = strata(&root, &config, &["logout", &host], None);
    assert_eq!(text(&out.stdout), format!("Not logged in to {host}\n"));
    let out = strata(&root, &config, &["push", &target], None);
    assert_eq!(out.status.code(), Some(1));
}
