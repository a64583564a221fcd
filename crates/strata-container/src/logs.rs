//! A detached container's output, kept as docker's `json-file` driver keeps it: one JSON object
//! per line, `{"log":"…","stream":"stdout"|"stderr","time":"RFC 3339"}`, appended by the
//! supervisor as lines arrive, so `logs` can give each stream back to its own descriptor.
//! Bytes that are not UTF-8 are stored lossily (as docker does).

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ContainerError, IoContext, Result};

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: Stream,
    pub time: DateTime<Utc>,
}

/// Appends entries to a log file; cheap to clone (one file shared by both streams).
#[derive(Debug, Clone)]
pub struct LogWriter {
    file: Arc<Mutex<File>>,
}

impl LogWriter {
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .at("open", path)?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Records one line (newline included, as received). Write errors are dropped: a full
    /// disk must not kill the container.
    pub fn write(&self, stream: Stream, line: &[u8]) {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: Utc::now(),
        };
        let Ok(mut json) = serde_json::to_vec(&entry) else {
            return;
        };
        json.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.write_all(&json);
    }
}

/// Reads the entries of `reader` (a log file, possibly still growing: a last line without its
/// newline is left for the next read and its length not counted). Returns the bytes consumed.
pub fn read_entries(
    mut reader: impl BufRead,
    path: &Path,
    mut each: impl FnMut(LogEntry) -> std::io::Result<()>,
) -> Result<u64> {
    let mut consumed = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).at("read", path)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        let entry: LogEntry =
            serde_json::from_slice(&line).map_err(|source| ContainerError::Json {
                what: "log entry",
                path: path.to_owned(),
                source,
            })?;
        each(entry).at("write", "the log output")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let writer = LogWriter::open(&path).unwrap();
        writer.write(Stream::Stdout, b"out\n");
        writer.write(Stream::Stderr, b"err \xff\n");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"log\":\"partial");
        let mut seen = Vec::new();
        let consumed = read_entries(&bytes[..], &path, |e| {
            seen.push((e.stream, e.log));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (Stream::Stdout, "out\n".to_owned()),
                (Stream::Stderr, "err \u{fffd}\n".to_owned())
            ]
        );
        assert_eq!(consumed as usize, bytes.len() - b"{\"log\":\"partial".len());
    }
}
