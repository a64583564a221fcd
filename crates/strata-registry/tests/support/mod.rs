//! Test support: real `docker-registry` processes on free loopback ports (optionally behind
//! htpasswd), a bearer-token server fronting one, and helpers to open stores.
//!
//! Registries started here log every request (access log on) so tests can observe what a
//! client did, e.g. that a blob was mounted rather than uploaded.

#![allow(dead_code, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_image::reference::Reference;
use strata_registry::{
    Client, ClientOptions, Credential, PullOptions, Pulled, PushOptions, Pushed, pull, push,
};
use strata_store::{Image, Store};

/// The shared fixture registry (`STRATA_TEST_REGISTRY`, default 127.0.0.1:5000).
pub fn fixture_registry() -> String {
    std::env::var("STRATA_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_string())
}

/// The fixture images as `(repository, tag)`.
pub const FIXTURES: &[(&str, &str)] = &[
    ("library/busybox", "1.35"),
    ("library/debian", "bookworm-slim"),
    ("library/golang", "1.19"),
    ("library/gcc", "12"),
];

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A `docker-registry` process, killed (and its storage removed) on drop.
#[derive(Debug)]
pub struct TestRegistry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub const USER: &str = "strata";
pub const PASSWORD: &str = "strata-test";

impl TestRegistry {
    /// Starts a registry; with `htpasswd`, protected by basic auth for [`USER`]/[`PASSWORD`].
    pub fn start(htpasswd: bool) -> TestRegistry {
        Self::start_with(htpasswd, false)
    }

    /// Starts a registry serving HTTPS with a self-signed certificate for 127.0.0.1.
    pub fn start_tls() -> TestRegistry {
        Self::start_with(false, true)
    }

    fn start_with(htpasswd: bool, tls: bool) -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut auth = String::new();
        if htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let line = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            std::fs::write(dir.path().join("htpasswd"), format!("{line}\n"))
                .expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let mut tls_yaml = String::new();
        if tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let status = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .args(["-addext", "subjectAltName=IP:127.0.0.1"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl failed");
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: \"\"\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: strata-test-secret\n{tls_yaml}{auth}",
            storage = dir.path().join("data").display(),
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = TestRegistry { port, dir, child };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = write!(stream, "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry on port {} did not start: {}",
            self.port,
            self.log()
        );
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The registry's on-disk file holding blob `hex` (its `data` file).
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client for loopback registries, with `credentials` for some of them.
pub fn client(credentials: &[(&str, &str, &str)]) -> Client {
    let mut options = ClientOptions {
        docker_config: None,
        ..ClientOptions::default()
    };
    for (registry, user, password) in credentials {
        options.credentials.insert(
            registry.to_string(),
            Credential {
                username: user.to_string(),
                secret: password.to_string(),
            },
        );
    }
    options.retry_delay = Duration::from_millis(20);
    Client::new(options).expect("client")
}

/// Pushes `image` from `store` to `target` with default options, ignoring progress events.
pub fn push_to(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    store: &Arc<Store>,
    image: &Image,
    target: &Reference,
) -> strata_registry::Result<Pushed> {
    rt.block_on(push(
        client,
        store,
        image,
        target,
        &PushOptions::default(),
        &strata_registry::events::ignore,
    ))
}

/// Pulls `reference` into `store` with default options, ignoring progress events.
pub fn pull_from(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    store: &Arc<Store>,
    reference: &Reference,
) -> strata_registry::Result<Pulled> {
    rt.block_on(pull(
        client,
        store,
        reference,
        &PullOptions::default(),
        &strata_registry::events::ignore,
    ))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A bearer-token server in front of a registry, as Docker Hub's auth works: the front answers
/// `401 WWW-Authenticate: Bearer realm=…/token,service=…,scope=…` to any `/v2/` request
/// without a token granting the needed scope, issues tokens at `/token` (basic credentials
/// [`USER`]/[`PASSWORD`], or anonymously with pull-only scopes when `anonymous_pull`), and
/// proxies authorized requests to the registry. It counts token requests by scope.
#[derive(Debug)]
pub struct TokenServer {
    pub port: u16,
    state: Arc<TokenState>,
}

#[derive(Debug, Default)]
pub struct TokenState {
    /// token → granted scopes (`repository:name:actions`).
    tokens: Mutex<HashMap<String, Vec<String>>>,
    /// Every `scope` query of every token request, in order.
    pub token_requests: Mutex<Vec<Vec<String>>>,
    pub rejected: AtomicUsize,
    pub anonymous_pull: AtomicBool,
    counter: AtomicUsize,
    /// When set, authorized blob downloads are redirected (307) to a "storage" server on
    /// another loopback address, as registries redirect to a CDN.
    storage_port: Mutex<Option<u16>>,
    /// For each request the storage server got: whether it carried an Authorization header.
    pub storage_requests: Mutex<Vec<bool>>,
    /// Refresh tokens accepted by the OAuth2 `POST /token` flow (identity tokens).
    pub refresh_tokens: Mutex<Vec<String>>,
}

impl TokenServer {
    pub fn start(upstream_port: u16) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(TokenState::default());
        let thread_state = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&thread_state);
                std::thread::spawn(move || {
                    let _ = serve(stream, port, upstream_port, &state);
                });
            }
        });
        TokenServer { port, state }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn state(&self) -> &TokenState {
        &self.state
    }

    /// Redirects blob downloads to a storage server on 127.0.0.2 from now on.
    pub fn redirect_blobs(&self, upstream_port: u16) {
        let listener = TcpListener::bind("127.0.0.2:0").expect("bind storage server");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::clone(&self.state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let mut stream = stream;
                    while let Some(request) = read_request(&mut reader)? {
                        state
                            .storage_requests
                            .lock()
                            .expect("lock")
                            .push(request.header("authorization").is_some());
                        let upstream = Request {
                            method: "GET".into(),
                            target: format!("/v2{}", request.target),
                            headers: vec![("Host".into(), format!("127.0.0.1:{upstream_port}"))],
                            body: Vec::new(),
                        };
                        proxy(&upstream, upstream_port, &mut stream)?;
                    }
                    Ok(())
                });
            }
        });
        *self.state.storage_port.lock().expect("lock") = Some(port);
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        request.body = body;
    } else if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
        request
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("transfer-encoding"));
        request
            .headers
            .push(("Content-Length".into(), request.body.len().to_string()));
    }
    Ok(Some(request))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n",
        body.len()
    )?;
    for (k, v) in headers {
        write!(stream, "{k}: {v}\r\n")?;
    }
    write!(stream, "\r\n")?;
    stream.write_all(body)?;
    stream.flush()
}

fn query_values(target: &str, key: &str) -> Vec<String> {
    let Some((_, query)) = target.split_once('?') else {
        return vec![];
    };
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(hex, 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The scope a `/v2/` request needs: `repository:<name>:pull` or `:pull,push`.
fn needed_scope(method: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let rest = rest.split('?').next().unwrap_or(rest);
    let marker = ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .find_map(|m| rest.find(m))?;
    let name = &rest[..marker];
    let push = !matches!(method, "GET" | "HEAD");
    Some(format!(
        "repository:{name}:{}",
        if push { "pull,push" } else { "pull" }
    ))
}

fn grants(granted: &[String], needed: &str) -> bool {
    let Some((prefix, actions)) = needed.rsplit_once(':') else {
        return false;
    };
    granted.iter().any(|g| {
        g.rsplit_once(':').is_some_and(|(gp, ga)| {
            gp == prefix && actions.split(',').all(|a| ga.split(',').any(|x| x == a))
        })
    })
}

/// The scopes a token request (`query`: `?scope=…&…`) asks for, recorded in `state`.
fn record_token_request(state: &TokenState, query: &str) -> Vec<String> {
    let scopes: Vec<String> = query_values(query, "scope")
        .iter()
        .flat_map(|s| s.split(' ').map(str::to_string))
        .collect();
    state
        .token_requests
        .lock()
        .expect("lock")
        .push(scopes.clone());
    scopes
}

/// Counts a refused token request and answers it 401 with `message`.
fn refuse_token(stream: &mut TcpStream, state: &TokenState, message: &str) -> std::io::Result<()> {
    state.rejected.fetch_add(1, Ordering::Relaxed);
    let body = format!(r#"{{"errors":[{{"code":"UNAUTHORIZED","message":"{message}"}}]}}"#);
    respond_json(stream, "401 Unauthorized", body.as_bytes())
}

fn respond_json(stream: &mut TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    respond(
        stream,
        status,
        &[("Content-Type", "application/json".into())],
        body,
    )
}

/// A new token named `{prefix}-{n}` that grants `scopes`.
fn issue_token(state: &TokenState, prefix: &str, scopes: Vec<String>) -> String {
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let token = format!("{prefix}-{n}");
    state
        .tokens
        .lock()
        .expect("lock")
        .insert(token.clone(), scopes);
    token
}

fn serve(stream: TcpStream, port: u16, upstream: u16, state: &TokenState) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(request) = read_request(&mut reader)? {
        let path = request.target.clone();
        if path.starts_with("/token") && request.method == "POST" {
            let form = format!("?{}", String::from_utf8_lossy(&request.body));
            let scopes = record_token_request(state, &form);
            let refresh = query_values(&form, "refresh_token");
            let accepted = query_values(&form, "grant_type") == ["refresh_token"]
                && refresh.len() == 1
                && state
                    .refresh_tokens
                    .lock()
                    .expect("lock")
                    .contains(&refresh[0]);
            if !accepted {
                refuse_token(&mut stream, state, "invalid refresh token")?;
                continue;
            }
            let token = issue_token(state, "oauth", scopes);
            let body = format!(r#"{{"access_token":"{token}","expires_in":300,"scope":""}}"#);
            respond_json(&mut stream, "200 OK", body.as_bytes())?;
            continue;
        }
        if path.starts_with("/token") {
            let scopes = record_token_request(state, &path);
            let expected = format!("Basic {}", base64_encode(&format!("{USER}:{PASSWORD}")));
            let authorized = request.header("authorization") == Some(expected.as_str());
            let anonymous_ok = request.header("authorization").is_none()
                && state.anonymous_pull.load(Ordering::Relaxed)
                && scopes.iter().all(|s| s.ends_with(":pull"));
            if !(authorized || anonymous_ok) {
                refuse_token(&mut stream, state, "incorrect username or password")?;
                continue;
            }
            let token = issue_token(state, "token", scopes);
            let body = format!(r#"{{"token":"{token}","expires_in":300}}"#);
            respond_json(&mut stream, "200 OK", body.as_bytes())?;
            continue;
        }
        let needed = needed_scope(&request.method, &path);
        let granted = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| state.tokens.lock().expect("lock").get(t).cloned());
        let ok = match (&needed, &granted) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(needed), Some(granted)) => {
                let mount_from = query_values(&path, "from");
                grants(granted, needed)
                    && mount_from
                        .iter()
                        .all(|from| grants(granted, &format!("repository:{from}:pull")))
            }
        };
        if !ok {
            let scope = needed
                .map(|s| format!(",scope=\"{s}\""))
                .unwrap_or_default();
            let challenge = format!(
                "Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"strata-test\"{scope}"
            );
            respond(
                &mut stream,
                "401 Unauthorized",
                &[
                    ("WWW-Authenticate", challenge),
                    ("Content-Type", "application/json".into()),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )?;
            continue;
        }
        let storage = *state.storage_port.lock().expect("lock");
        if let Some(storage) = storage
            && request.method == "GET"
            && path.starts_with("/v2/")
            && path.contains("/blobs/sha256:")
        {
            let location = format!("http://127.0.0.2:{storage}{}", &path[3..]);
            respond(
                &mut stream,
                "307 Temporary Redirect",
                &[("Location", location)],
                b"",
            )?;
            continue;
        }
        proxy(&request, upstream, &mut stream)?;
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// Forwards one request to the registry and copies its answer back verbatim. The `Host`
/// header is kept, so the registry's absolute `Location`s point back at the front.
fn proxy(request: &Request, upstream: u16, client: &mut TcpStream) -> std::io::Result<()> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    write!(up, "{} {} HTTP/1.1\r\n", request.method, request.target)?;
    for (k, v) in &request.headers {
        if k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("connection") {
            continue;
        }
        write!(up, "{k}: {v}\r\n")?;
    }
    write!(up, "Connection: close\r\n\r\n")?;
    up.write_all(&request.body)?;
    up.flush()?;
    // The registry closes after answering; rewrite its answer to keep our connection alive by
    // giving it a Content-Length.
    let mut reader = BufReader::new(up);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        headers.push(h);
    }
    let chunked = headers.iter().any(|h| {
        h.to_ascii_lowercase().starts_with("transfer-encoding:")
            && h.to_ascii_lowercase().contains("chunked")
    });
    let mut body = Vec::new();
    if request.method != "HEAD" {
        if chunked {
            loop {
                let mut size_line = String::new();
                reader.read_line(&mut size_line)?;
                let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            reader.read_to_end(&mut body)?;
        }
    }
    write!(client, "{}\r\n", status.trim_end())?;
    for h in &headers {
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") || lower.starts_with("connection:") {
            continue;
        }
        if lower.starts_with("content-length:") && request.method != "HEAD" {
            continue;
        }
        write!(client, "{h}\r\n")?;
    }
    if request.method != "HEAD" {
        write!(client, "Content-Length: {}\r\n", body.len())?;
    }
    write!(client, "\r\n")?;
    client.write_all(&body)?;
    client.flush()
}

pub fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Opens an empty store in a new temporary directory.
pub fn empty_store() -> (tempfile::TempDir, Arc<strata_store::Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = strata_store::Store::open(dir.path().join("store")).expect("open store");
    (dir, Arc::new(store))
}

/// Files under `dir` (recursively), for "nothing left behind" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
