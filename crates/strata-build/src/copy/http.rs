//! ADD of remote URLs: a deliberately tiny HTTP/1.1 GET client over `std::net::TcpStream`.
//!
//! Only plain `http://` is supported (redirects followed, chunked and length-delimited bodies);
//! `https://` is refused with a clear error for now. The download is streamed to a file while
//! its sha256 is computed, so `ADD --checksum=sha256:…` is verified without a second read.
//! As in BuildKit, the file is named after the last path segment of the URL (`__unnamed__`
//! when there is none), gets mode 0600, and its mtime comes from `Last-Modified` when the
//! server sends one. Remote files are never extracted.

use sha2::{Digest as _, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_image::Digest;
use thiserror::Error;

const MAX_REDIRECTS: usize = 10;
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Errors downloading an ADD source.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Not an `http://` URL we can parse.
    #[error("invalid url {url:?}")]
    InvalidUrl {
        /// The URL.
        url: String,
    },
    /// TLS is not implemented by the built-in client.
    #[error(
        "{url}: https sources are not supported yet\nhint: download the file into the build context and COPY it"
    )]
    HttpsUnsupported {
        /// The URL.
        url: String,
    },
    /// Connecting or reading failed.
    #[error("GET {url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The server answered with something we cannot read.
    #[error("GET {url}: malformed response: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A non-2xx status.
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
    #[error("digest mismatch {expected}: {actual}")]
    ChecksumMismatch {
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

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The file's name (last URL path segment).
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

/// Whether an ADD source is a remote URL (BuildKit's `isHTTPSource`, without git URLs).
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The file name BuildKit gives a downloaded source.
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

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, HttpError> {
    if url.starts_with("https://") {
        return Err(HttpError::HttpsUnsupported {
            url: url.to_string(),
        });
    }
    let invalid = || HttpError::InvalidUrl {
        url: url.to_string(),
    };
    let rest = url.strip_prefix("http://").ok_or_else(invalid)?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.to_string(), p.parse().map_err(|_| invalid())?)
        }
        _ => (authority.to_string(), 80),
    };
    if host.is_empty() {
        return Err(invalid());
    }
    Ok(Url { host, port, path })
}

/// Downloads `url` into directory `dir` under [`file_name_for`]`(url)`, verifying `checksum`.
pub fn download(url: &str, dir: &Path, checksum: Option<&Digest>) -> Result<Downloaded, HttpError> {
    let file_name = file_name_for(url);
    let path = dir.join(&file_name);
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let parsed = parse_url(&current)?;
        let io = |source| HttpError::Io {
            url: current.clone(),
            source,
        };
        let mut stream = TcpStream::connect((parsed.host.as_str(), parsed.port)).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(io)?;
        let host_header = if parsed.port == 80 {
            parsed.host.clone()
        } else {
            format!("{}:{}", parsed.host, parsed.port)
        };
        // One write: some servers answer (and close) as soon as they have the request line.
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: strata\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
            parsed.path
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader, &current)?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if (300..400).contains(&status) && status != 304 {
            let location = header("location").ok_or(HttpError::Malformed {
                url: current.clone(),
                reason: "redirect without location",
            })?;
            current = if location.starts_with("http://") || location.starts_with("https://") {
                location.to_string()
            } else if location.starts_with('/') {
                format!("http://{}:{}{}", parsed.host, parsed.port, location)
            } else {
                let base = parsed.path.rsplit_once('/').map(|(b, _)| b).unwrap_or("");
                format!(
                    "http://{}:{}{}/{}",
                    parsed.host, parsed.port, base, location
                )
            };
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(HttpError::Status {
                url: current,
                status,
            });
        }
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let last_modified = header("last-modified").and_then(parse_http_date);
        let write_err = |source| HttpError::Write {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::create(&path).map_err(write_err)?;
        let mut hasher = Sha256::new();
        let mut sink = HashingWriter {
            inner: &mut file,
            hasher: &mut hasher,
            written: 0,
        };
        if chunked {
            copy_chunked(&mut reader, &mut sink, &current)?;
        } else if let Some(len) = length {
            let copied = std::io::copy(&mut reader.by_ref().take(len), &mut sink).map_err(io)?;
            if copied != len {
                return Err(HttpError::Malformed {
                    url: current,
                    reason: "body shorter than content-length",
                });
            }
        } else {
            std::io::copy(&mut reader, &mut sink).map_err(io)?;
        }
        let size = sink.written;
        let digest = Digest::from_bytes(hasher.finalize().into());
        if let Some(expected) = checksum
            && *expected != digest
        {
            let _ = std::fs::remove_file(&path);
            return Err(HttpError::ChecksumMismatch {
                expected: *expected,
                actual: digest,
            });
        }
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(write_err)?;
        if let Some(secs) = last_modified {
            let when = std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
            file.set_times(
                std::fs::FileTimes::new()
                    .set_accessed(when)
                    .set_modified(when),
            )
            .map_err(write_err)?;
        }
        return Ok(Downloaded {
            file_name,
            path,
            digest,
            size,
            last_modified,
        });
    }
    Err(HttpError::TooManyRedirects {
        url: url.to_string(),
    })
}

struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hasher: &'a mut Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn read_line_limited(
    reader: &mut impl BufRead,
    url: &str,
    budget: &mut usize,
) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(*budget as u64)
        .read_until(b'\n', &mut line)
        .map_err(|source| HttpError::Io {
            url: url.to_string(),
            source,
        })?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(HttpError::Malformed {
            url: url.to_string(),
            reason: "truncated or oversized header",
        });
    }
    *budget -= n;
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string())
}

fn read_head(
    reader: &mut impl BufRead,
    url: &str,
) -> Result<(u16, Vec<(String, String)>), HttpError> {
    let mut budget = MAX_HEADER_BYTES;
    let status_line = read_line_limited(reader, url, &mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed {
            url: url.to_string(),
            reason: "not an HTTP/1.x status line",
        });
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HttpError::Malformed {
            url: url.to_string(),
            reason: "bad status code",
        })?;
    let mut headers = Vec::new();
    loop {
        let line = read_line_limited(reader, url, &mut budget)?;
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

fn copy_chunked(
    reader: &mut impl BufRead,
    out: &mut impl Write,
    url: &str,
) -> Result<(), HttpError> {
    let io = |source| HttpError::Io {
        url: url.to_string(),
        source,
    };
    loop {
        let mut budget = MAX_HEADER_BYTES;
        let size_line = read_line_limited(reader, url, &mut budget)?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_hex, 16).map_err(|_| HttpError::Malformed {
            url: url.to_string(),
            reason: "bad chunk size",
        })?;
        if size == 0 {
            // Trailers until an empty line.
            loop {
                let line = read_line_limited(reader, url, &mut budget)?;
                if line.is_empty() {
                    return Ok(());
                }
            }
        }
        let copied = std::io::copy(&mut reader.by_ref().take(size), out).map_err(io)?;
        if copied != size {
            return Err(HttpError::Malformed {
                url: url.to_string(),
                reason: "truncated chunk",
            });
        }
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(io)?;
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.split_once(", ").map(|(_, r)| r)?;
    let mut it = rest.split_whitespace();
    let day: i64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
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
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = hms.next()?.parse().ok()?;
    if it.next()? != "GMT" {
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
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nhello world",
                body.len()
            )
            .into_bytes(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/files/greeting.txt?x=1");
        let got = download(&url, dir.path(), Some(&Digest::of(body))).unwrap();
        assert_eq!(got.file_name, "greeting.txt");
        assert_eq!(std::fs::read(&got.path).unwrap(), body);
        let md = std::fs::metadata(&got.path).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
        assert_eq!(md.mtime(), 784111777);
    }

    #[test]
    fn chunked_bodies_and_redirects() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let responses = [
                    "HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n".to_string(),
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6; ext=1\r\n world\r\n0\r\n\r\n".to_string(),
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
            "named after the requested URL, not the redirect"
        );
    }

    #[test]
    fn checksum_mismatch_and_status_errors() {
        let port = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/f");
        let err = download(&url, dir.path(), Some(&Digest::of(b"other"))).unwrap_err();
        assert!(matches!(err, HttpError::ChecksumMismatch { .. }), "{err}");
        assert!(!dir.path().join("f").exists());
        let err = download(&url, dir.path(), None).unwrap_err();
        assert!(
            matches!(err, HttpError::Status { status: 404, .. }),
            "{err}"
        );
    }

    #[test]
    fn https_is_refused_clearly_and_names_follow_buildkit() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            download("https://127.0.0.1/x", dir.path(), None),
            Err(HttpError::HttpsUnsupported { .. })
        ));
        assert_eq!(file_name_for("http://h/"), "__unnamed__");
        assert_eq!(file_name_for("http://h"), "__unnamed__");
        assert_eq!(file_name_for("http://h/a/b.tar.gz?x#y"), "b.tar.gz");
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sat, 29 Feb 2020 12:00:00 GMT"),
            Some(1582977600)
        );
        assert_eq!(parse_http_date("garbage"), None);
    }
}
