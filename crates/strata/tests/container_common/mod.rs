//! The harness of the container tests: the `strata` binary on a temporary store into which
//! fixture images are loaded with `strata load`, run as a user runs it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "strata-fixtures/busybox:1.35";
pub const GOLANG: &str = "strata-fixtures/golang:1.19";

/// A temporary store and a scratch directory to work in.
pub struct Strata {
    pub root: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

fn fixtures() -> PathBuf {
    std::env::var_os("STRATA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/strata-fixtures"))
}

impl Strata {
    /// A fresh store with the given docker-archive fixtures (`busybox_1.35`) loaded.
    pub fn with(fixture_names: &[&str]) -> Strata {
        let strata = Strata {
            root: tempfile::tempdir().expect("tempdir"),
            work: tempfile::tempdir().expect("tempdir"),
        };
        for name in fixture_names {
            let archive = fixtures()
                .join("docker-archive")
                .join(format!("{name}.tar"));
            strata.ok(&["load", "-q", "-i", archive.to_str().expect("utf-8 path")]);
        }
        strata
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command
            .env("STRATA_ROOT", self.root.path())
            .current_dir(self.work.path())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run strata")
    }

    /// Runs strata, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "strata {args:?} failed with {}:\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `script` with `sh -c` in a throwaway container of `image`; asserts success,
    /// returns stdout.
    pub fn run_sh(&self, image: &str, script: &str) -> String {
        self.ok(&["run", "--rm", image, "sh", "-c", script])
    }

    /// The exit code and stderr of a run expected to fail.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "strata {args:?} unexpectedly succeeded"
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.work.path().join(rel)
    }

    /// `ps -a --no-trunc` rows (after the header), cut at the header's column offsets.
    pub fn ps_all(&self) -> Vec<Vec<String>> {
        let out = self.ok(&["ps", "-a", "--no-trunc"]);
        let mut lines = out.lines();
        let header: Vec<char> = lines.next().expect("a header").chars().collect();
        let starts: Vec<usize> = (0..header.len())
            .filter(|&i| {
                header[i] != ' '
                    && (i == 0 || (i >= 2 && header[i - 1] == ' ' && header[i - 2] == ' '))
            })
            .collect();
        lines
            .map(|line| {
                let chars: Vec<char> = line.chars().collect();
                starts
                    .iter()
                    .enumerate()
                    .map(|(n, &start)| {
                        let end = starts
                            .get(n + 1)
                            .copied()
                            .unwrap_or(chars.len())
                            .min(chars.len());
                        chars[start.min(end)..end]
                            .iter()
                            .collect::<String>()
                            .trim()
                            .to_owned()
                    })
                    .collect()
            })
            .collect()
    }
}

impl Drop for Strata {
    /// A failed test must not leave containers running (or their rootfs mounted under a
    /// temporary directory that is about to be deleted).
    fn drop(&mut self) {
        let Ok(out) = self.command(&["ps", "-aq", "--no-trunc"]).output() else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.command(&["rm", "-f", id]).output();
        }
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A plain HTTP/1.0 GET, retried until something answers (or 10 s pass).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            if stream
                .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .is_ok()
            {
                let mut response = String::new();
                if stream.read_to_string(&mut response).is_ok() && !response.is_empty() {
                    return response;
                }
            }
        }
        assert!(Instant::now() < deadline, "nothing answered on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a file exists (without following a final symlink).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
