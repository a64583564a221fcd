//! ADD of remote sources: `http://` and `https://` downloads through the workspace's HTTP
//! stack (reqwest on rustls with the `ring` provider, as strata-registry uses it), and git
//! repositories (BuildKit's git source rules, in [`git`]).
//!
//! Trust: the system's roots, loaded by `rustls-native-certs`, which reads `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when they are set (the usual way to trust a private CA; the tests use it for a
//! loopback server with a test CA). Unlike registries, a loopback URL gets no exception: BuildKit
//! verifies every https source.
//!
//! What BuildKit's http source does, and this module does too (`source/http` and the Dockerfile
//! frontend's ADD):
//! - redirects are followed (up to 10), and the file is named after the last path segment of
//!   the URL as written in the Dockerfile, `__unnamed__` when there is none. The Dockerfile
//!   frontend always passes that name explicitly, so neither the redirect target nor a
//!   `Content-Disposition` header changes it;
//! - the body is streamed to a file (mode 0600) while its sha256 is computed, so
//!   `ADD --checksum=sha256:…` is verified without a second read and a mismatch fails the step;
//! - the file's mtime is `Last-Modified` when the server sends one, else the Unix epoch;
//! - status codes outside 200..=399 fail; remote files are never extracted.

pub mod git;

use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use strata_image::Digest;
use thiserror::Error;

const MAX_REDIRECTS: usize = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors downloading an ADD source.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Not an `http://` or `https://` URL we can parse.
    #[error("invalid url {url:?}")]
    InvalidUrl {
        /// The URL.
        url: String,
    },
    /// A git command for an `ADD <git repository>` failed.
    #[error("{url}: git {command}: {message}")]
    Git {
        /// The source as written.
        url: String,
        /// The git command line (without the isolation options).
        command: String,
        /// git's error output, or why it could not run.
        message: String,
    },
    /// `ADD --checksum` of a git source that is not a hex commit id (prefix); BuildKit's
    /// wording.
    #[error("invalid checksum {checksum} for Git URL, expected hex commit hash")]
    GitChecksumInvalid {
        /// The `--checksum` value.
        checksum: String,
    },
    /// The ref of a git source resolved to a commit (or annotated tag) that the `--checksum`
    /// is not a prefix of; BuildKit's wording after the source.
    #[error("{url}: expected checksum to match {expected}, got {got}")]
    GitChecksumMismatch {
        /// The source as written.
        url: String,
        /// The `--checksum` value.
        expected: String,
        /// The resolved ids: `<commit>`, or `<tag object> or <commit>` for an annotated tag.
        got: String,
    },
    /// The TLS configuration could not be built.
    #[error("tls configuration: {source}")]
    Tls {
        /// The failure.
        source: rustls::Error,
    },
    /// The HTTP client could not be set up.
    // The causes are rendered in the message (reqwest's own text hides the reason), so the
    // error is not exposed as a `source` that a caller would print a second time.
    #[error("http client: {}", chain(error))]
    Client {
        /// The failure.
        error: reqwest::Error,
    },
    /// Connecting, the TLS handshake (an untrusted certificate included) or reading failed.
    #[error("GET {url}: {}{hint}", chain(error))]
    Request {
        /// The URL.
        url: String,
        /// The failure, its causes rendered in the message.
        error: reqwest::Error,
        /// A `hint:` line when there is an action to take (empty otherwise).
        hint: &'static str,
    },
    /// A status outside 200..=399 (after redirects).
    #[error("GET {url}: invalid response status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// Too many redirects.
    #[error("GET {url}: stopped after {MAX_REDIRECTS} redirects")]
    TooManyRedirects {
        /// The original URL.
        url: String,
    },
    /// `--checksum` did not match the content.
    #[error("digest mismatch for {url}: {actual} (expected: {expected})")]
    ChecksumMismatch {
        /// The URL.
        url: String,
        /// The `--checksum` value.
        expected: Digest,
        /// The digest of what was downloaded.
        actual: Digest,
    },
    /// Writing the downloaded file failed.
    #[error("write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// An error's causes, `: `-separated, without reqwest's own top line (`error sending request
/// for url (…)`, which repeats the URL and hides the reason, e.g. the TLS one); the error's
/// text when it has no cause.
fn chain(error: &dyn std::error::Error) -> String {
    let Some(first) = error.source() else {
        return error.to_string();
    };
    let mut out = first.to_string();
    let mut source = first.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The file's name (last path segment of the URL as written).
    pub file_name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// sha256 of the content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// `Last-Modified`, in seconds since the epoch.
    pub last_modified: Option<i64>,
}

/// Whether an ADD source is remote rather than a context path: an `http(s)://` URL or a git
/// source ([`is_git_source`]). Remote sources go to [`download`].
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://") || is_git_source(source)
}

/// Whether BuildKit's Dockerfile frontend reads an ADD source as a git repository
/// (`gitutil.ParseGitRef` accepting it and it not being `IndistinguishableFromLocal`):
/// `git://…` and `ssh://…` URLs, scp-like `user@host:path`, and `http(s)://` URLs whose path
/// ends in `.git` (a `#ref:subdir` fragment or a `?query` may follow). `github.com/x/y` alone
/// is a local path for ADD.
pub fn is_git_source(source: &str) -> bool {
    if source.starts_with("./") || source.starts_with("../") || source.starts_with("github.com/") {
        return false;
    }
    if source.starts_with("git://") || source.starts_with("ssh://") {
        return true;
    }
    if let Some(rest) = source
        .strip_prefix("http://")
        .or_else(|| source.strip_prefix("https://"))
    {
        let without_fragment = rest.split('#').next().unwrap_or("");
        let path = without_fragment.split('?').next().unwrap_or("");
        return path.contains('/') && path.ends_with(".git");
    }
    // scp-like syntax: `user@host:path`, no scheme, the user and host without `/`.
    match source.split_once(':') {
        Some((user_host, path)) => {
            !source.contains("://")
                && !path.is_empty()
                && user_host.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && !host.is_empty() && !user_host.contains('/')
                })
        }
        None => false,
    }
}

/// The file name BuildKit's Dockerfile frontend gives a downloaded source.
pub fn file_name_for(url: &str) -> String {
    let without_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = without_scheme
        .find('/')
        .map(|i| &without_scheme[i..])
        .unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("");
    let base = crate::paths::base(path);
    if base == "/" || base == "." || base.is_empty() {
        "__unnamed__".to_string()
    } else {
        base.to_string()
    }
}

/// rustls on `ring` with the system's trust roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).
fn tls_config() -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A malformed system certificate is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| HttpError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One client per download: building it costs a few milliseconds (the roots), and a client is
/// tied to the runtime that first drives it, which differs between builds.
fn client() -> Result<reqwest::Client, HttpError> {
    reqwest::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls_config()?)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .build()
        .map_err(|error| HttpError::Client { error })
}

/// Downloads `url` into directory `dir` under [`file_name_for`]`(url)`, verifying `checksum`;
/// a git source is checked out instead (see [`git::download`] for its options), and the
/// result names the directory to copy.
///
/// Blocking: call it from a blocking thread. It drives the download on the current tokio
/// runtime when there is one (the build's), else on a private one.
pub fn download(url: &str, dir: &Path, checksum: Option<&Digest>) -> Result<Downloaded, HttpError> {
    if is_git_source(url) {
        // A git checksum is a commit id: a sha256 digest is refused by the git source with
        // BuildKit's message. [`git::download`] takes the Dockerfile's options directly.
        let options = git::GitOptions {
            keep_git_dir: false,
            checksum: checksum.map(|c| c.to_string()),
        };
        // Child processes, waited for on this (blocking) thread.
        return git::download(url, dir, &options);
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(download_async(url, dir, checksum)),
        Err(_) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| HttpError::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
            runtime.block_on(download_async(url, dir, checksum))
        }
    }
}

/// The http(s) half of [`download`], as a future. The file is written with blocking calls
/// (small sequential writes): it is driven from the blocking thread [`download`] runs on.
async fn download_async(
    url: &str,
    dir: &Path,
    checksum: Option<&Digest>,
) -> Result<Downloaded, HttpError> {
    let invalid = || HttpError::InvalidUrl {
        url: url.to_string(),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid())?;
    let request_error = |error: reqwest::Error| {
        if error.is_redirect() {
            return HttpError::TooManyRedirects {
                url: url.to_string(),
            };
        }
        let hint = if chain(&error).contains("certificate") {
            "\nhint: to trust a private certificate authority, point SSL_CERT_FILE at its PEM file"
        } else {
            ""
        };
        HttpError::Request {
            url: url.to_string(),
            error,
            hint,
        }
    };
    let mut response = client()?.get(parsed).send().await.map_err(request_error)?;
    let status = response.status().as_u16();
    if !(200..400).contains(&status) {
        return Err(HttpError::Status {
            url: response.url().to_string(),
            status,
        });
    }
    let last_modified = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);

    let file_name = file_name_for(url);
    let path = dir.join(&file_name);
    let write_err = |source| HttpError::Write {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(write_err)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    // Chunk by chunk: the body is never held in memory.
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        file.write_all(&chunk).map_err(write_err)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    let digest = Digest::from_bytes(hasher.finalize().into());
    if let Some(expected) = checksum
        && *expected != digest
    {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(HttpError::ChecksumMismatch {
            url: url.to_string(),
            expected: *expected,
            actual: digest,
        });
    }
    // Mode 0600 regardless of the umask, as BuildKit's http source creates it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(write_err)?;
    let when =
        std::time::UNIX_EPOCH + Duration::from_secs(last_modified.unwrap_or(0).max(0) as u64);
    file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(when)
            .set_modified(when),
    )
    .map_err(write_err)?;
    Ok(Downloaded {
        file_name,
        path,
        digest,
        size,
        last_modified,
    })
}

/// Parses an HTTP date (RFC 9110: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` and asctime `Sun Nov  6 08:49:37 1994`
/// forms, which Go's `http.ParseTime` also accepts) into seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (day, month, year, time) = if let Some((_, rest)) = s.split_once(", ") {
        let mut it = rest.split_whitespace();
        match (it.next()?, it.next(), it.next(), it.next(), it.next()) {
            // IMF-fixdate.
            (day, Some(month), Some(year), Some(time), Some("GMT")) => {
                (day.parse().ok()?, month, year.parse().ok()?, time)
            }
            // RFC 850: `06-Nov-94`, two-digit years in 1970..2069 as Go reads them.
            (date, Some(time), Some("GMT"), None, None) => {
                let mut d = date.split('-');
                let day = d.next()?.parse().ok()?;
                let month = d.next()?;
                let yy: i64 = d.next()?.parse().ok()?;
                let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
                (day, month, year, time)
            }
            _ => return None,
        }
    } else {
        // asctime: `Sun Nov  6 08:49:37 1994`.
        let mut it = s.split_whitespace();
        let _weekday = it.next()?;
        let month = it.next()?;
        let day = it.next()?.parse().ok()?;
        let time = it.next()?;
        let year = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        (day, month, year, time)
    };
    let month = match month {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let mut hms = time.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = hms.next()?.parse().ok()?;
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::os::unix::fs::MetadataExt;

    fn read_request(conn: &mut std::net::TcpStream) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Serves canned responses, one per connection, on a loopback port.
    fn serve(responses: Vec<Vec<u8>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for response in responses {
                let (mut conn, _) = listener.accept().unwrap();
                read_request(&mut conn);
                let _ = conn.write_all(&response);
            }
        });
        port
    }

    #[test]
    fn downloads_with_length_checksum_mode_and_last_modified() {
        let body = b"hello world";
        let port = serve(vec![
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\nhello world",
                body.len()
            )
            .into_bytes(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/files/greeting.txt?x=1");
        let got = download(&url, dir.path(), Some(&Digest::of(body))).unwrap();
        assert_eq!(got.file_name, "greeting.txt");
        assert_eq!(got.size, body.len() as u64);
        assert_eq!(std::fs::read(&got.path).unwrap(), body);
        let md = std::fs::metadata(&got.path).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(md.mtime(), 784111777);
    }

    #[test]
    fn chunked_bodies_redirects_and_the_epoch_without_last_modified() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let responses = [
                    "HTTP/1.1 302 Found\r\nLocation: /final.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Disposition: attachment; filename=\"other.txt\"\r\nConnection: close\r\n\r\n5\r\nhello\r\n6; ext=1\r\n world\r\n0\r\n\r\n".to_string(),
                ];
                for r in responses {
                    let (mut conn, _) = listener.accept().unwrap();
                    read_request(&mut conn);
                    conn.write_all(r.as_bytes()).unwrap();
                }
            });
            port
        };
        let dir = tempfile::tempdir().unwrap();
        let got = download(&format!("http://127.0.0.1:{port}/start"), dir.path(), None).unwrap();
        assert_eq!(std::fs::read_to_string(&got.path).unwrap(), "hello world");
        assert_eq!(
            got.file_name, "start",
            "named after the URL as written: not the redirect, not Content-Disposition"
        );
        assert_eq!(got.last_modified, None);
        assert_eq!(std::fs::metadata(&got.path).unwrap().mtime(), 0);
    }

    #[test]
    fn checksum_mismatch_and_status_errors() {
        let port = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/f");
        let err = download(&url, dir.path(), Some(&Digest::of(b"other"))).unwrap_err();
        match &err {
            HttpError::ChecksumMismatch {
                expected, actual, ..
            } => {
                assert_eq!(*expected, Digest::of(b"other"));
                assert_eq!(*actual, Digest::of(b"abc"));
            }
            other => panic!("{other}"),
        }
        assert!(!dir.path().join("f").exists());
        let err = download(&url, dir.path(), None).unwrap_err();
        assert!(
            matches!(err, HttpError::Status { status: 404, .. }),
            "{err}"
        );
    }

    #[test]
    fn redirect_loops_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                read_request(&mut conn);
                let _ = conn.write_all(
                    b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let err = download(&format!("http://127.0.0.1:{port}/loop"), dir.path(), None).unwrap_err();
        assert!(matches!(err, HttpError::TooManyRedirects { .. }), "{err}");
    }

    #[test]
    fn names_follow_buildkit() {
        assert_eq!(file_name_for("http://h/"), "__unnamed__");
        assert_eq!(file_name_for("http://h"), "__unnamed__");
        assert_eq!(file_name_for("http://h/a/b.tar.gz?x#y"), "b.tar.gz");
        assert_eq!(file_name_for("https://h:8443/a/"), "a");
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            download("ftp://127.0.0.1/x", dir.path(), None),
            Err(HttpError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn git_sources_are_recognised_as_buildkit_does_and_refused() {
        for (source, git) in [
            ("https://example.test/org/repo.git", true),
            ("https://example.test/org/repo.git#v1.2:sub/dir", true),
            ("http://127.0.0.1:8080/repo.git?ref=main", true),
            ("git://127.0.0.1/repo", true),
            ("ssh://git@example.test/org/repo", true),
            ("git@example.test:org/repo.git", true),
            ("user@host:path", true),
            ("https://example.test/file.tar.gz", false),
            ("https://example.test/x.git/file", false),
            ("https://example.test.git", false),
            ("github.com/org/repo", false),
            ("./git@host:x", false),
            ("dir/user@host:x", false),
            ("plain.txt", false),
            ("C:stuff", false),
        ] {
            assert_eq!(is_git_source(source), git, "{source}");
            if git {
                assert!(is_url(source), "{source} is remote");
            }
        }
    }

    #[test]
    fn http_dates() {
        for (text, want) in [
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Sat, 29 Feb 2020 12:00:00 GMT", Some(1582977600)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(784111777)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(784111777)),
            ("Sun Nov  6 08:49:37 1994", Some(784111777)),
            ("Sun, 06 Nov 1994 08:49:37 PST", None),
            ("Sun, 32 Nov 1994 08:49:37 GMT", None),
            ("garbage", None),
        ] {
            assert_eq!(parse_http_date(text), want, "{text}");
        }
    }
}
