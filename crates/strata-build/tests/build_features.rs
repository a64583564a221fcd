//! Features BuildKit has that strata added late, built for real on the busybox fixture with
//! runc: cache mounts seeded `from` a stage, and ADD from an `https://` server on loopback
//! whose certificate is signed by a test CA (trusted through `SSL_CERT_FILE`, as a user
//! trusts a private CA). Needs root, runc, openssl and the fixtures.

mod common;

use common::{BASE, cached, env, logs};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use strata_build::progress::Event;
use strata_image::Digest;

/// A stage whose `/seed` directory seeds the cache; `SEED` changes its content.
fn seeded_dockerfile(run: &str) -> String {
    format!(
        "FROM strata-fixtures/busybox:1.35 AS seed\nARG SEED=v1\nRUN mkdir -p /seed/sub && echo \"$SEED\" > /seed/sub/file && echo top > /seed/top && chown -R 1000:1000 /seed/sub\n\n{BASE}ARG ROUND\n{run}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_mounts_seeded_from_a_stage_start_with_its_files_and_keep_their_writes() {
    let env = env();
    let mount = "--mount=type=cache,id=deps,target=/c,from=seed,source=/seed";
    let dockerfile = seeded_dockerfile(&format!(
        "RUN {mount} echo \"round $ROUND\" && echo \"$ROUND\" >> /c/log"
    ));

    // First use: the seed's files (ownership kept) are there, and nothing else.
    let first = seeded_dockerfile(&format!(
        "RUN {mount} test \"$(cat /c/sub/file)\" = v1 && test \"$(cat /c/top)\" = top && test \"$(stat -c %u:%g /c/sub/file)\" = 1000:1000 && test ! -e /c/log && echo one >> /c/log && echo changed > /c/sub/file"
    ));
    env.build_args_ok(&first, &[("ROUND", "1")]).await;

    // Same id, same `from` content: the same instance, with the first build's writes; the
    // seed is not applied again (the changed file stays changed).
    let second = seeded_dockerfile(&format!(
        "RUN {mount} test \"$(cat /c/log)\" = one && test \"$(cat /c/sub/file)\" = changed && echo two >> /c/log"
    ));
    env.build_args_ok(&second, &[("ROUND", "2")]).await;
    let third = seeded_dockerfile(&format!(
        "RUN {mount} test \"$(cat /c/log | tr '\\n' ' ')\" = 'one two '"
    ));
    env.build_args_ok(&third, &[("ROUND", "3")]).await;

    // Different `from` content: BuildKit keys the instance by id and the from snapshot, so a
    // new cache starts from the new seed.
    let fresh = seeded_dockerfile(&format!(
        "RUN {mount} test \"$(cat /c/sub/file)\" = v2 && test ! -e /c/log"
    ));
    env.build_args_ok(&fresh, &[("ROUND", "4"), ("SEED", "v2")])
        .await;

    // The same id without `from` is yet another cache: empty.
    let plain = seeded_dockerfile(
        "RUN --mount=type=cache,id=deps,target=/c test -z \"$(ls -A /c)\" && echo plain > /c/p",
    );
    env.build_args_ok(&plain, &[("ROUND", "5")]).await;

    // The RUN cache key covers the `from` content: an unchanged rebuild is cached, a changed
    // seed reruns the step.
    let first_events = env.build_args_ok(&dockerfile, &[("ROUND", "6")]).await;
    assert!(logs(&first_events).iter().any(|l| l == "round 6"));
    let again = env.build_args_ok(&dockerfile, &[("ROUND", "6")]).await;
    assert!(
        !logs(&again).iter().any(|l| l == "round 6") && cached(&again) > cached(&first_events),
        "an unchanged rebuild is cached: {again:?}"
    );
    let changed = env
        .build_args_ok(&dockerfile, &[("ROUND", "6"), ("SEED", "v3")])
        .await;
    assert!(
        logs(&changed).iter().any(|l| l == "round 6"),
        "a new from content reruns the step: {:?}",
        logs(&changed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_mounts_from_an_image_or_with_mode_and_no_source() {
    let env = env();
    // BuildKit's frontend: with uid/gid/mode and no source, `/cache` of the from tree is the
    // mounted directory, created with those attributes when the tree has none.
    let dockerfile = seeded_dockerfile(
        "RUN --mount=type=cache,id=perm,target=/c,from=seed,uid=1234,gid=99,mode=0700 test \"$(stat -c %u:%g:%a /c)\" = 1234:99:700 && test -z \"$(ls -A /c)\"",
    );
    env.build_args_ok(&dockerfile, &[("ROUND", "1")]).await;
    // An image as the seed.
    let from_image = format!(
        "{BASE}RUN --mount=type=cache,id=img,target=/c,from=strata-fixtures/busybox:1.35,source=/etc test -s /c/passwd && test ! -e /c/bin\n"
    );
    env.build_args_ok(&from_image, &[]).await;
    // A missing source is an error that names it.
    let missing =
        seeded_dockerfile("RUN --mount=type=cache,id=m,target=/c,from=seed,source=/nowhere true");
    let (result, _) = env.build(env.options(&missing)).await;
    let err = result
        .expect_err("a missing cache source fails")
        .to_string();
    assert!(
        err.contains("/nowhere") && err.contains("not found"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// ADD https://

/// A CA and a leaf certificate for 127.0.0.1 signed by it, made with the openssl CLI.
struct TestPki {
    dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
}

impl TestPki {
    fn new() -> TestPki {
        let owned = tempfile::tempdir().unwrap();
        let dir = owned.path().to_path_buf();
        let p = |name: &str| dir.join(name);
        std::fs::write(
            p("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(&[
            &["req", "-x509", "-nodes"][..],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=strata test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ][..],
        ]
        .concat());
        run(&[
            &["req", "-new", "-nodes"][..],
            &ec[..],
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ][..],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
        TestPki {
            dir,
            _owned: Some(owned),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

const PAYLOAD: &str = "payload over tls\n";
const LAST_MODIFIED: (&str, i64) = ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777);

/// Serves HTTPS on a loopback port until the process ends: `/redirect` answers 302 to
/// `/files/data.txt`, which answers the payload with a Last-Modified date; anything else 404.
fn serve_https(pki: &TestPki) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("leaf.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("leaf.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { break };
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let response = match path {
                    "/redirect" => "HTTP/1.1 302 Found\r\nLocation: /files/data.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    "/files/data.txt" => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n{PAYLOAD}",
                        PAYLOAD.len(),
                        LAST_MODIFIED.0
                    ),
                    _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = tls.write_all(response.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

fn add_https_dockerfile(port: u16, checksum: &Digest) -> String {
    format!(
        "{BASE}ADD --checksum={checksum} https://127.0.0.1:{port}/redirect /data/\nRUN test \"$(cat /data/redirect)\" = '{}' && test \"$(stat -c %a:%Y /data/redirect)\" = 600:{}\n",
        PAYLOAD.trim_end(),
        LAST_MODIFIED.1
    )
}

/// The half of [`add_https_from_a_server_with_a_private_ca`] that trusts the test CA: it runs
/// in a child test process started with `SSL_CERT_FILE` naming the CA (setting the variable
/// inside this multi-threaded test process would race with the other tests).
async fn add_https_trusting_the_ca(pki_dir: String) {
    assert!(std::env::var_os("SSL_CERT_FILE").is_some());
    let pki = TestPki {
        dir: PathBuf::from(pki_dir),
        _owned: None,
    };
    let port = serve_https(&pki);
    let env = env();

    // A redirect followed, the checksum verified, the name from the URL as written, mode
    // 0600 and Last-Modified as the mtime; a rebuild is fully cached.
    let good = add_https_dockerfile(port, &Digest::of(PAYLOAD.as_bytes()));
    env.build_args_ok(&good, &[]).await;
    let events = env.build_args_ok(&good, &[]).await;
    assert!(cached(&events) >= 2, "ADD and RUN cached: {events:?}");

    // A wrong checksum fails the step, naming both digests.
    let wrong = Digest::of(b"something else");
    let (result, _) = env
        .build(env.options(&add_https_dockerfile(port, &wrong)))
        .await;
    let err = result.expect_err("a wrong checksum fails").to_string();
    assert!(
        err.contains("digest mismatch")
            && err.contains(&wrong.to_string())
            && err.contains(&Digest::of(PAYLOAD.as_bytes()).to_string()),
        "{err}"
    );

    // A 404 fails with its status.
    let missing = format!("{BASE}ADD https://127.0.0.1:{port}/nothing-here /data/\n");
    let (result, _) = env.build(env.options(&missing)).await;
    let err = result.expect_err("a 404 fails").to_string();
    assert!(err.contains("404"), "{err}");
}

#[test]
fn add_https_from_a_server_with_a_private_ca() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(pki_dir) = std::env::var("STRATA_TEST_PKI") {
        // This is the child process started below.
        runtime.block_on(add_https_trusting_the_ca(pki_dir));
        return;
    }
    let pki = TestPki::new();

    // Without trusting the CA, the certificate is refused (loopback gets no exception).
    let port = serve_https(&pki);
    let env = env();
    let dockerfile = add_https_dockerfile(port, &Digest::of(PAYLOAD.as_bytes()));
    let mut options = env.options(&dockerfile);
    options.no_cache = true;
    let (result, _) = runtime.block_on(env.build(options));
    let err = result
        .expect_err("an untrusted certificate fails")
        .to_string();
    assert!(
        err.contains("certificate") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );

    // Trusting it through SSL_CERT_FILE, in a child process.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "add_https_from_a_server_with_a_private_ca",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .env("STRATA_TEST_PKI", &pki.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// ADD <git repository>

/// A `git-daemon` on a loopback port serving the bare repositories under its base path;
/// killed (by its pid) when dropped.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git_daemon(base: &std::path::Path) -> GitDaemon {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The server binary itself, not the `git daemon` wrapper: the wrapper forks it, and
    // killing the wrapper would leave the server running.
    let exec_path = git(base, &["--exec-path"]);
    let child = Command::new(std::path::Path::new(&exec_path).join("git-daemon"))
        .arg("--reuseaddr")
        .arg("--export-all")
        .arg(format!("--base-path={}", base.display()))
        .arg("--listen=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(base)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start git daemon");
    let daemon = GitDaemon { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return daemon;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("git daemon did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_of_a_git_repository_checks_out_a_ref_and_subdirectory() {
    let env = env();
    let repo = ServedRepo::new();
    let remote = repo.remote();
    let first_commit = &repo.commit;

    // The default branch, without .git, modes kept; then a tag's subdirectory.
    let whole = |readme: &str| {
        format!(
            "{BASE}ADD {remote} /src\nRUN test \"$(cat /src/README)\" = {readme} && test ! -e /src/.git && test -x /src/sub/dir/run.sh && test \"$(stat -c %u:%g /src/README)\" = 0:0\n"
        )
    };
    env.build_args_ok(&whole("v1"), &[]).await;
    let sub = format!(
        "{BASE}ADD {remote}#v1:sub/dir /only/\nRUN test \"$(cat /only/file)\" = 'in sub' && test ! -e /only/README && test ! -e /only/sub\n"
    );
    env.build_args_ok(&sub, &[]).await;

    // The key is the resolved commit: unchanged → cached; the branch moves → rebuilt.
    let again = env.build_args_ok(&whole("v1"), &[]).await;
    assert_eq!(cached(&again), 2, "ADD and RUN cached: {again:?}");
    repo.push_readme("v2\n");
    let moved = env.build_args_ok(&whole("v2"), &[]).await;
    assert_eq!(cached(&moved), 0, "a moved branch rebuilds: {moved:?}");

    // A commit id as the ref.
    let pinned = format!(
        "{BASE}ADD {remote}#{first_commit} /pinned\nRUN test \"$(cat /pinned/README)\" = v1\n"
    );
    env.build_args_ok(&pinned, &[]).await;

    // An unknown ref and a missing subdirectory fail with git's reason.
    for (source, expected) in [
        (format!("{remote}#no-such-branch"), "no-such-branch"),
        (format!("{remote}#v1:nowhere"), "/nowhere not found"),
    ] {
        let dockerfile = format!("{BASE}ADD {source} /x/\n");
        let (result, _) = env.build(env.options(&dockerfile)).await;
        let err = result.expect_err("a bad git source fails").to_string();
        assert!(err.contains(expected), "{source}: {err}");
    }
}

/// A repository served by a loopback git daemon: `main` has one commit (README `v1`, a
/// `sub/dir/file` and an executable `sub/dir/run.sh`), tagged with the lightweight tag `v1`
/// and the annotated tag `v1a`.
struct ServedRepo {
    root: tempfile::TempDir,
    daemon: GitDaemon,
    commit: String,
    /// The id of the annotated tag object `v1a` (not of its commit).
    tag_object: String,
}

impl ServedRepo {
    fn new() -> ServedRepo {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("work");
        let served = root.path().join("served");
        std::fs::create_dir_all(work.join("sub/dir")).unwrap();
        std::fs::create_dir_all(&served).unwrap();
        std::fs::write(work.join("README"), "v1\n").unwrap();
        std::fs::write(work.join("sub/dir/file"), "in sub\n").unwrap();
        std::fs::write(work.join("sub/dir/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            work.join("sub/dir/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        git(&work, &["-c", "init.defaultBranch=main", "init", "-q"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "one"]);
        git(&work, &["tag", "v1"]);
        git(&work, &["tag", "-a", "-m", "annotated", "v1a"]);
        let commit = git(&work, &["rev-parse", "HEAD"]);
        let tag_object = git(&work, &["rev-parse", "v1a"]);
        assert_ne!(commit, tag_object);
        git(
            root.path(),
            &[
                "clone",
                "-q",
                "--bare",
                &work.to_string_lossy(),
                &served.join("repo.git").to_string_lossy(),
            ],
        );
        let daemon = git_daemon(&served);
        ServedRepo {
            root,
            daemon,
            commit,
            tag_object,
        }
    }

    fn remote(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.daemon.port)
    }

    /// Commits `content` as the README on `main` and pushes it to the served repository.
    fn push_readme(&self, content: &str) {
        let work = self.root.path().join("work");
        let bare = self.root.path().join("served/repo.git");
        std::fs::write(work.join("README"), content).unwrap();
        git(&work, &["commit", "-q", "-am", "two"]);
        git(&work, &["push", "-q", &bare.to_string_lossy(), "main"]);
    }
}

/// How many ADD steps of a build were CACHED (by their vertex names, `[n/m] ADD …`).
fn cached_adds(events: &[Event]) -> usize {
    let adds: std::collections::HashSet<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { vertex, name } if name.contains("] ADD ") => Some(*vertex),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter(|e| matches!(e, Event::Cached { vertex } if adds.contains(vertex)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_git_keep_git_dir_keeps_a_repository_of_the_fetched_commit() {
    let env = env();
    let repo = ServedRepo::new();
    let remote = repo.remote();
    let commit = &repo.commit;

    // Without the flag: no .git. With it, for the same source and destination: a different
    // key (not CACHED), and a repository whose HEAD is the commit (detached), whose origin is
    // the remote, with the branch kept under its name and no FETCH_HEAD.
    let plain = format!("{BASE}ADD {remote} /src\nRUN test ! -e /src/.git\n");
    env.build_args_ok(&plain, &[]).await;
    let kept = format!(
        "{BASE}ADD --keep-git-dir=true {remote} /src\nRUN test \"$(cat /src/README)\" = v1 && test \"$(cat /src/.git/HEAD)\" = {commit} && grep -q 'url = {remote}' /src/.git/config && test \"$(cat /src/.git/refs/heads/main)\" = {commit} && test ! -e /src/.git/FETCH_HEAD && test \"$(stat -c %u /src/.git/HEAD)\" = 0\n"
    );
    let first = env.build_args_ok(&kept, &[]).await;
    assert_eq!(
        cached_adds(&first),
        0,
        "--keep-git-dir is in the key: {first:?}"
    );
    let again = env.build_args_ok(&kept, &[]).await;
    assert_eq!(cached(&again), 2, "ADD and RUN cached: {again:?}");

    // An annotated tag is kept as a tag; a commit id is checked out detached.
    let tagged = format!(
        "{BASE}ADD --keep-git-dir=true {remote}#v1a /t\nRUN test \"$(cat /t/.git/HEAD)\" = {commit} && test \"$(cat /t/.git/refs/tags/v1a)\" = {}\n",
        repo.tag_object
    );
    env.build_args_ok(&tagged, &[]).await;
    let pinned = format!(
        "{BASE}ADD --keep-git-dir=true {remote}#{commit} /p\nRUN test \"$(cat /p/.git/HEAD)\" = {commit}\n"
    );
    env.build_args_ok(&pinned, &[]).await;

    // With a subdirectory BuildKit keeps no .git: only the subdirectory's files.
    let sub = format!(
        "{BASE}ADD --keep-git-dir=true {remote}#main:sub/dir /only/\nRUN test \"$(cat /only/file)\" = 'in sub' && test ! -e /only/.git\n"
    );
    env.build_args_ok(&sub, &[]).await;
}

/// `--checksum` of a git source, at the git source itself (every accepted and refused form;
/// the build-level tests below go through the Dockerfile).
#[test]
fn add_git_checksum_is_a_commit_id_prefix_as_in_buildkit() {
    use strata_build::copy::http::git::{self, GitOptions};
    let repo = ServedRepo::new();
    let remote = repo.remote();
    let checkout = |checksum: &str, reference: &str| {
        let dir = tempfile::tempdir().unwrap();
        let options = GitOptions {
            keep_git_dir: false,
            checksum: Some(checksum.to_string()),
        };
        git::download(&format!("{remote}#{reference}"), dir.path(), &options)
            .map(|d| std::fs::read_to_string(d.path.join("README")).unwrap())
            .map_err(|e| e.to_string())
    };

    // The full commit id, a prefix of it, and (for an annotated tag) a prefix of the tag
    // object's id are accepted.
    for (checksum, reference) in [
        (repo.commit.as_str(), "v1"),
        (&repo.commit[..10], "main"),
        (&repo.tag_object[..10], "v1a"),
        (&repo.commit[..10], repo.commit.as_str()),
    ] {
        assert_eq!(
            checkout(checksum, reference).as_deref(),
            Ok("v1\n"),
            "{checksum} {reference}"
        );
    }

    // Another commit's id fails naming what the ref resolved to (the tag object too for an
    // annotated tag); a non-hex value is refused with BuildKit's message.
    let wrong = "0123456789abcdef";
    for (checksum, reference, expected) in [
        (
            wrong,
            "v1",
            format!("expected checksum to match {wrong}, got {}", repo.commit),
        ),
        (
            wrong,
            "v1a",
            format!(
                "expected checksum to match {wrong}, got {} or {}",
                repo.tag_object, repo.commit
            ),
        ),
        (
            "foobar",
            "v1",
            "invalid checksum foobar for Git URL, expected hex commit hash".to_string(),
        ),
    ] {
        let err = checkout(checksum, reference).expect_err("a wrong git checksum fails");
        assert!(err.contains(&expected), "{checksum}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_git_with_a_commit_id_checksum_builds_and_a_wrong_one_fails() {
    let env = env();
    let repo = ServedRepo::new();
    let remote = repo.remote();
    let pinned = format!(
        "{BASE}ADD --checksum={} {remote}#v1 /src\nRUN test \"$(cat /src/README)\" = v1\n",
        &repo.commit[..12]
    );
    env.build_args_ok(&pinned, &[]).await;
    let wrong = "0123456789abcdef";
    let dockerfile = format!("{BASE}ADD --checksum={wrong} {remote}#v1 /src\n");
    let (result, _) = env.build(env.options(&dockerfile)).await;
    let err = result.expect_err("another commit's id").to_string();
    assert!(
        err.contains(&format!(
            "expected checksum to match {wrong}, got {}",
            repo.commit
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_git_with_a_digest_checksum_is_refused_as_buildkit_does() {
    let env = env();
    let repo = ServedRepo::new();
    let checksum = format!("sha256:{}", "a".repeat(64));
    let dockerfile = format!(
        "{BASE}ADD --checksum={checksum} {}#v1 /src\n",
        repo.remote()
    );
    let (result, _) = env.build(env.options(&dockerfile)).await;
    let err = result.expect_err("a digest is no commit id").to_string();
    assert!(
        err.contains(&format!(
            "invalid checksum {checksum} for Git URL, expected hex commit hash"
        )),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// ADD --checksum of a URL: keyed by the checksum

const COUNTED_PAYLOAD: &str = "counted payload\n";

/// Serves `COUNTED_PAYLOAD` over plain HTTP on a loopback port for every request, counting
/// them.
fn serve_counted() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n{COUNTED_PAYLOAD}",
                    COUNTED_PAYLOAD.len(),
                    LAST_MODIFIED.0
                )
                .as_bytes(),
            );
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_url_with_checksum_is_cached_without_a_request() {
    let env = env();
    let (port, requests) = serve_counted();
    let count = || requests.load(std::sync::atomic::Ordering::SeqCst);
    let good = Digest::of(COUNTED_PAYLOAD.as_bytes());
    let url = format!("http://127.0.0.1:{port}/files/data.txt");
    let with_checksum = |flags: &str, checksum: &Digest| {
        format!(
            "{BASE}ADD {flags}--checksum={checksum} {url} /data/\nRUN test \"$(cat /data/data.txt)\" = '{}'\n",
            COUNTED_PAYLOAD.trim_end()
        )
    };

    // The first build downloads once; the rebuild is CACHED and asks the server nothing.
    env.build_args_ok(&with_checksum("", &good), &[]).await;
    assert_eq!(count(), 1);
    let again = env.build_args_ok(&with_checksum("", &good), &[]).await;
    assert_eq!(cached(&again), 2, "ADD and RUN cached: {again:?}");
    assert_eq!(count(), 1, "a cached ADD --checksum makes no request");

    // `--keep-git-dir` on a URL is ignored, as BuildKit ignores it: the same step, cached.
    let flagged = env
        .build_args_ok(&with_checksum("--keep-git-dir=true ", &good), &[])
        .await;
    assert_eq!(cached(&flagged), 2, "{flagged:?}");
    assert_eq!(count(), 1);

    // Another checksum is another key: a miss downloads, and the content must match it.
    let wrong = Digest::of(b"something else");
    let (result, _) = env.build(env.options(&with_checksum("", &wrong))).await;
    let err = result.expect_err("a wrong checksum fails").to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(count(), 2);

    // Without --checksum every build asks the server (the key is the content and
    // Last-Modified), and the unchanged content is cached.
    let plain = format!("{BASE}ADD {url} /data/\n");
    env.build_args_ok(&plain, &[]).await;
    let rebuilt = env.build_args_ok(&plain, &[]).await;
    assert_eq!(cached_adds(&rebuilt), 1, "{rebuilt:?}");
    assert_eq!(count(), 4);
}
