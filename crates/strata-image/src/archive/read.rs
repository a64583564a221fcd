//! Reading image archives in one pass: every regular file streams into the sink as it passes
//! (JSON documents and docker's bookkeeping files are also kept in memory), links are recorded,
//! and `resolve` turns what was seen into images at the end.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;

use super::{ArchiveError, BlobSink, HashingReader, LoadedImage, stream_error};
use crate::digest::Digest;
use crate::media::LayerCompression;

/// JSON documents (configs, manifests, indexes) are kept in memory up to this size.
pub(super) const JSON_LIMIT: u64 = 16 << 20;
/// How many links may chain (docker's dedup symlinks chain at most once; 40 as the kernel).
const MAX_LINKS: usize = 40;

/// A regular file seen in the archive.
#[derive(Debug)]
pub(super) struct FileInfo {
    pub(super) digest: Digest,
    pub(super) size: u64,
    /// The content, for JSON documents and docker's metadata files.
    pub(super) bytes: Option<Vec<u8>>,
    /// Whether the sink has the content.
    pub(super) ingested: bool,
    /// Compression detected from the first bytes.
    pub(super) compression: LayerCompression,
}

/// Everything the single pass saw.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) files: HashMap<String, FileInfo>,
    /// Symlinks (resolved relative to their directory) and hardlinks: path → target path.
    pub(super) links: HashMap<String, String>,
}

/// Reads an image archive (see the module docs for the layouts), streaming every blob into
/// `sink`, and returns the images it names.
pub fn read_archive(
    reader: impl Read,
    sink: &mut dyn BlobSink,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let head = buffered.fill_buf().map_err(stream_error)?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let seen = scan(stream, sink)?;
    super::resolve::resolve(seen, sink)
}

fn scan(stream: impl Read, sink: &mut dyn BlobSink) -> Result<Seen, ArchiveError> {
    let mut archive = tar::Archive::new(stream);
    let mut seen = Seen::default();
    let mut first = true;
    for entry in archive.entries().map_err(stream_error)? {
        let mut entry = entry.map_err(|e| {
            // A first header that does not parse means this was never a tar.
            if first && e.kind() != io::ErrorKind::UnexpectedEof {
                ArchiveError::NotAnArchive { source: e }
            } else {
                stream_error(e)
            }
        })?;
        first = false;
        let raw_path = entry.path_bytes().into_owned();
        let path = normalize_path(&String::from_utf8_lossy(&raw_path))?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name_bytes() else {
                continue;
            };
            let target = String::from_utf8_lossy(&target).into_owned();
            let resolved = if kind.is_symlink() && !target.starts_with('/') {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                normalize_path(&format!("{dir}/{target}"))?
            } else {
                normalize_path(&target)?
            };
            seen.links.insert(path, resolved);
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let size = entry.header().size().map_err(stream_error)?;
            let info = take_file(&path, &mut entry, size, sink)?;
            seen.files.insert(path, info);
        }
    }
    Ok(seen)
}

/// Streams one regular file into the sink (or memory, for docker's metadata files).
fn take_file(
    path: &str,
    entry: &mut dyn Read,
    size: u64,
    sink: &mut dyn BlobSink,
) -> Result<FileInfo, ArchiveError> {
    let mut head = vec![0u8; size.min(512) as usize];
    let got = read_full(entry, &mut head).map_err(stream_error)?;
    head.truncate(got);
    let expected = blob_digest_of_path(path);
    let compression = LayerCompression::detect(&head);
    let metadata = is_docker_metadata(path);

    if metadata || (looks_like_json(&head) && size <= JSON_LIMIT) {
        if size > JSON_LIMIT {
            return Err(ArchiveError::TooLarge {
                path: path.to_string(),
                what: "a metadata file",
                size,
                limit: JSON_LIMIT,
            });
        }
        let mut bytes = head;
        entry.read_to_end(&mut bytes).map_err(stream_error)?;
        if bytes.len() as u64 != size {
            return Err(ArchiveError::TruncatedEntry {
                path: path.to_string(),
                read: bytes.len() as u64,
                expected: size,
            });
        }
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ArchiveError::DigestMismatch {
                path: path.to_string(),
                expected,
                actual: digest,
            });
        }
        let mut info = FileInfo {
            digest,
            size,
            bytes: Some(bytes),
            ingested: false,
            compression,
        };
        if !metadata {
            ingest_in_memory(path, &mut info, sink)?;
        }
        return Ok(info);
    }

    let mut hashing = HashingReader::new(io::Cursor::new(head).chain(entry));
    let result = sink.ingest(&mut hashing, expected.map(|d| (d, size)));
    // Whatever the sink left unread still has to be hashed (and skipped in the tar).
    let drained = io::copy(&mut hashing, &mut io::sink());
    let (digest, read, stream_failure) = hashing.finish();
    if let Some(e) = stream_failure {
        return Err(stream_error(e));
    }
    drained.map_err(stream_error)?;
    if read != size {
        return Err(ArchiveError::TruncatedEntry {
            path: path.to_string(),
            read,
            expected: size,
        });
    }
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(ArchiveError::DigestMismatch {
            path: path.to_string(),
            expected,
            actual: digest,
        });
    }
    result.map_err(|source| ArchiveError::Sink {
        path: path.to_string(),
        source,
    })?;
    Ok(FileInfo {
        digest,
        size,
        bytes: None,
        ingested: true,
        compression,
    })
}

fn ingest_in_memory(
    path: &str,
    info: &mut FileInfo,
    sink: &mut dyn BlobSink,
) -> Result<(), ArchiveError> {
    if info.ingested {
        return Ok(());
    }
    let bytes = info.bytes.as_deref().unwrap_or_default();
    sink.ingest(&mut &bytes[..], Some((info.digest, info.size)))
        .map_err(|source| ArchiveError::Sink {
            path: path.to_string(),
            source,
        })?;
    info.ingested = true;
    Ok(())
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A JSON document starts with `{` or `[`; a tar whose first name starts with `{` is told
/// apart by its `ustar` magic.
fn looks_like_json(head: &[u8]) -> bool {
    let first = head.iter().find(|c| !c.is_ascii_whitespace());
    matches!(first, Some(b'{' | b'[')) && !(head.len() >= 262 && &head[257..262] == b"ustar")
}

/// docker's bookkeeping files, which are not blobs of any image.
fn is_docker_metadata(path: &str) -> bool {
    match path.rsplit_once('/') {
        None => matches!(
            path,
            "manifest.json" | "repositories" | "index.json" | "oci-layout"
        ),
        Some((dir, name)) => !dir.contains('/') && matches!(name, "json" | "VERSION"),
    }
}

/// The digest an OCI layout path promises: `blobs/sha256/<hex>`.
fn blob_digest_of_path(path: &str) -> Option<Digest> {
    Digest::from_hex(path.strip_prefix("blobs/sha256/")?).ok()
}

/// `./a/b`, `/a//b/` → `a/b`; `..` that would leave the archive root is refused.
fn normalize_path(raw: &str) -> Result<String, ArchiveError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(ArchiveError::UnsafePath {
                        path: raw.to_string(),
                    });
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl Seen {
    /// The file at `path`, following links.
    pub(super) fn file(
        &self,
        path: &str,
        referenced_by: &str,
    ) -> Result<(&str, &FileInfo), ArchiveError> {
        let mut current = path;
        for _ in 0..MAX_LINKS {
            if let Some((key, info)) = self.files.get_key_value(current) {
                return Ok((key.as_str(), info));
            }
            match self.links.get(current) {
                Some(target) => current = target,
                None => {
                    return Err(ArchiveError::MissingFile {
                        path: path.to_string(),
                        referenced_by: referenced_by.to_string(),
                    });
                }
            }
        }
        Err(ArchiveError::LinkLoop {
            path: path.to_string(),
        })
    }

    pub(super) fn bytes(&self, path: &str, referenced_by: &str) -> Result<&[u8], ArchiveError> {
        let (key, info) = self.file(path, referenced_by)?;
        info.bytes.as_deref().ok_or_else(|| ArchiveError::TooLarge {
            path: key.to_string(),
            what: "a JSON document",
            size: info.size,
            limit: JSON_LIMIT,
        })
    }

    pub(super) fn ensure_ingested(
        &mut self,
        path: &str,
        referenced_by: &str,
        sink: &mut dyn BlobSink,
    ) -> Result<(), ArchiveError> {
        let key = self.file(path, referenced_by)?.0.to_string();
        if let Some(info) = self.files.get_mut(&key) {
            ingest_in_memory(&key, info, sink)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_inside_the_archive() {
        for (raw, expected) in [
            ("manifest.json", "manifest.json"),
            ("./manifest.json", "manifest.json"),
            ("/blobs//sha256/abc", "blobs/sha256/abc"),
            ("a/b/../c", "a/c"),
            ("a/./b/", "a/b"),
        ] {
            assert_eq!(normalize_path(raw).unwrap(), expected);
        }
        for bad in ["../x", "a/../../x"] {
            assert!(matches!(
                normalize_path(bad),
                Err(ArchiveError::UnsafePath { .. })
            ));
        }
    }

    #[test]
    fn metadata_files() {
        assert!(is_docker_metadata("manifest.json"));
        assert!(is_docker_metadata("repositories"));
        assert!(is_docker_metadata("0123/json"));
        assert!(is_docker_metadata("0123/VERSION"));
        assert!(!is_docker_metadata("0123/layer.tar"));
        assert!(!is_docker_metadata("blobs/sha256/json"));
        assert!(!is_docker_metadata("abc.json"));
    }

    #[test]
    fn json_sniffing() {
        assert!(looks_like_json(b"{\"a\":1}"));
        assert!(looks_like_json(b"\n [1]"));
        assert!(!looks_like_json(b"\x1f\x8b"));
        let mut tar_named_brace = vec![0u8; 512];
        tar_named_brace[0] = b'{';
        tar_named_brace[257..262].copy_from_slice(b"ustar");
        assert!(!looks_like_json(&tar_named_brace));
    }
}
