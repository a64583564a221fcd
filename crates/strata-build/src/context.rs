//! The build context: a filtered, in-memory view of the context directory with content digests
//! backed by a persistent stat cache.
//!
//! [`BuildContext::scan`] walks the directory once (`read_dir` + `lstat`, no file reads),
//! applying `.dockerignore` the way BuildKit's file sync does: an excluded directory is skipped
//! unless an exception could re-include something inside it, and an excluded directory that
//! does contain a re-included path is kept (with its real metadata) so the path has a parent.
//!
//! File contents are hashed lazily, only when a COPY/ADD needs them, and the digests are
//! remembered in a stat cache keyed by path and validated git-index style by size, mtime,
//! ctime, inode and mode (all in nanoseconds where the kernel gives them). An entry whose
//! ctime is too close to the moment it was hashed is "racy" (the file could have been written
//! again within the same timestamp tick) and is not trusted, exactly the problem git solves
//! with its racily-clean check. Unchanged files are therefore never re-read, which makes a
//! no-op rebuild cost one directory walk.

use crate::ignore::{MatchInfo, PatternMatcher};
use crate::source::{FileKind, FileMeta, SourceTree};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use strata_image::Digest;
use thiserror::Error;

/// A file whose ctime is this close to (or after) the time it was hashed is not trusted from
/// the stat cache: timestamps advance in coarse kernel ticks, so a write right after hashing
/// can leave every stat field unchanged.
const RACY_WINDOW_NS: i64 = 50_000_000;

const STAT_CACHE_MAGIC: &[u8; 16] = b"strata-statcache";
const STAT_CACHE_VERSION: u32 = 1;

/// Errors reading the context.
#[derive(Debug, Error)]
pub enum ContextError {
    /// The context directory itself is unusable.
    #[error("build context {path}: {source}")]
    Root {
        /// The context directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A file or directory inside the context could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// The path on the host.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A path that is not in the (filtered) context.
    #[error("{path:?} is not in the build context")]
    NotInContext {
        /// The context-relative path.
        path: String,
    },
    /// The stat cache could not be written.
    #[error("write stat cache {path}: {source}")]
    StatCacheWrite {
        /// The cache file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Counters for the work a context did (for tests, benchmarks and `--progress=plain`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Files whose content was read and hashed.
    pub files_hashed: u64,
    /// Bytes read for hashing.
    pub bytes_hashed: u64,
    /// Digests served from the stat cache without reading the file.
    pub cache_hits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CachedDigest {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    mode: u32,
    hashed_at_ns: i64,
    digest: [u8; 32],
}

impl CachedDigest {
    fn valid_for(&self, meta: &FileMeta) -> bool {
        self.size == meta.size
            && self.mtime_ns == meta.mtime_ns
            && self.ctime_ns == meta.ctime_ns
            && self.ino == meta.ino
            && self.mode == meta.mode
            && meta.ctime_ns.saturating_add(RACY_WINDOW_NS) < self.hashed_at_ns
    }
}

#[derive(Debug, Default)]
struct StatCache {
    records: HashMap<String, CachedDigest>,
    dirty: bool,
}

impl StatCache {
    /// Loads a cache file; a missing, truncated or foreign file is an empty cache (the cache
    /// is an optimisation and never a source of truth).
    fn load(path: &Path) -> Self {
        let Ok(bytes) = std::fs::read(path) else {
            return Self::default();
        };
        Self::decode(&bytes).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = bytes;
        let magic = take(&mut r, 16)?;
        if magic != STAT_CACHE_MAGIC {
            return None;
        }
        if u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) != STAT_CACHE_VERSION {
            return None;
        }
        let count = u64::from_le_bytes(take(&mut r, 8)?.try_into().ok()?);
        let mut records = HashMap::with_capacity(count.min(1 << 20) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
            let path = std::str::from_utf8(take(&mut r, len)?).ok()?.to_string();
            let fixed = take(&mut r, 8 * 6 + 4 + 32)?;
            let u =
                |i: usize| u64::from_le_bytes(fixed[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let mode = u32::from_le_bytes(fixed[48..52].try_into().ok()?);
            let digest: [u8; 32] = fixed[52..84].try_into().ok()?;
            records.insert(
                path,
                CachedDigest {
                    size: u(0),
                    mtime_ns: u(1) as i64,
                    ctime_ns: u(2) as i64,
                    ino: u(3),
                    hashed_at_ns: u(4) as i64,
                    mode,
                    digest,
                },
            );
            // Field 5 is reserved (device), kept zero for now.
            let _ = u(5);
        }
        Some(Self {
            records,
            dirty: false,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.records.len() * 128);
        out.extend_from_slice(STAT_CACHE_MAGIC);
        out.extend_from_slice(&STAT_CACHE_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.records.len() as u64).to_le_bytes());
        let mut keys: Vec<&String> = self.records.keys().collect();
        keys.sort();
        for key in keys {
            let rec = &self.records[key];
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key.as_bytes());
            for v in [
                rec.size,
                rec.mtime_ns as u64,
                rec.ctime_ns as u64,
                rec.ino,
                rec.hashed_at_ns as u64,
                0,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&rec.mode.to_le_bytes());
            out.extend_from_slice(&rec.digest);
        }
        out
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, tail) = r.split_at(n);
    *r = tail;
    Some(head)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Converts `std` metadata into the engine's [`FileMeta`].
pub(crate) fn meta_from_std(md: &std::fs::Metadata, link_target: Option<String>) -> FileMeta {
    let ft = md.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_symlink() {
        FileKind::Symlink(link_target.unwrap_or_default())
    } else if ft.is_file() {
        FileKind::File
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else if ft.is_char_device() {
        FileKind::CharDevice
    } else if ft.is_block_device() {
        FileKind::BlockDevice
    } else {
        FileKind::Socket
    };
    FileMeta {
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_file() { md.size() } else { 0 },
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        atime_ns: md.atime() * 1_000_000_000 + md.atime_nsec(),
        ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        ino: md.ino(),
        dev: md.dev(),
        nlink: md.nlink(),
        rdev: md.rdev(),
    }
}

/// The filtered build context.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    root_meta: FileMeta,
    entries: BTreeMap<String, FileMeta>,
    stat_cache_path: Option<PathBuf>,
    cache: Mutex<StatCache>,
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    cache_hits: AtomicU64,
}

impl BuildContext {
    /// Walks `root`, keeping what `ignore` does not exclude. `stat_cache` is the file that
    /// persists content digests between builds (under the store root, one per context
    /// directory); `None` disables persistence.
    pub fn scan(
        root: &Path,
        ignore: &PatternMatcher,
        stat_cache: Option<&Path>,
    ) -> Result<Self, ContextError> {
        let root_md = std::fs::metadata(root).map_err(|source| ContextError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        if !root_md.is_dir() {
            return Err(ContextError::Root {
                path: root.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        // The top level is read here; its directories are walked on two threads (a context of
        // 20,000 files is 20,000 lstat calls, and the machine has two cores).
        let mut walker = Walker {
            ignore,
            entries: BTreeMap::new(),
            pending: Vec::new(),
            deferred: Some(Vec::new()),
        };
        walker.walk(root, "", &MatchInfo::default())?;
        let tasks = walker.deferred.take().unwrap_or_default();
        let (even, odd): (Vec<_>, Vec<_>) =
            tasks.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let walk_all =
            |tasks: Vec<(usize, Deferred)>| -> Result<BTreeMap<String, FileMeta>, ContextError> {
                let mut entries = BTreeMap::new();
                for (_, task) in tasks {
                    let mut sub = Walker {
                        ignore,
                        entries: BTreeMap::new(),
                        pending: task
                            .pending
                            .into_iter()
                            .map(|(r, m)| (r, m, false))
                            .collect(),
                        deferred: None,
                    };
                    sub.walk(&task.host, &task.rel, &task.info)?;
                    entries.append(&mut sub.entries);
                }
                Ok(entries)
            };
        let (a, b) = std::thread::scope(|scope| {
            let handle = scope.spawn(|| walk_all(odd));
            let b = walk_all(even);
            (handle.join(), b)
        });
        walker.entries.append(&mut b?);
        match a {
            Ok(a) => walker.entries.append(&mut a?),
            Err(_) => {
                return Err(ContextError::Io {
                    path: root.to_path_buf(),
                    source: std::io::Error::other("context scan thread panicked"),
                });
            }
        }
        let cache = stat_cache.map(StatCache::load).unwrap_or_default();
        Ok(Self {
            root: root.to_path_buf(),
            root_meta: meta_from_std(&root_md, None),
            entries: walker.entries,
            stat_cache_path: stat_cache.map(Path::to_path_buf),
            cache: Mutex::new(cache),
            files_hashed: AtomicU64::new(0),
            bytes_hashed: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }

    /// The context directory on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of entries visible in the context (files, directories, links, ...).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the context is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The visible entries in sorted order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &FileMeta)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Work counters since the scan.
    pub fn stats(&self) -> HashStats {
        HashStats {
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// The content digest of the regular file at `rel`, from the stat cache when its stat
    /// still matches, otherwise by reading it.
    pub fn file_digest(&self, rel: &str) -> Result<Digest, ContextError> {
        let meta = self
            .entries
            .get(rel)
            .ok_or_else(|| ContextError::NotInContext {
                path: rel.to_string(),
            })?;
        if let Ok(cache) = self.cache.lock()
            && let Some(rec) = cache.records.get(rel)
            && rec.valid_for(meta)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Digest::from_bytes(rec.digest));
        }
        let hashed_at_ns = now_ns();
        let host = self.root.join(rel);
        let (digest, read) = hash_file(&host)?;
        self.files_hashed.fetch_add(1, Ordering::Relaxed);
        self.bytes_hashed.fetch_add(read, Ordering::Relaxed);
        // Only remember the digest if the file was not modified while it was read.
        let unchanged = std::fs::symlink_metadata(&host)
            .map(|md| {
                let now = meta_from_std(&md, None);
                now.size == meta.size
                    && now.mtime_ns == meta.mtime_ns
                    && now.ctime_ns == meta.ctime_ns
            })
            .unwrap_or(false);
        if unchanged && let Ok(mut cache) = self.cache.lock() {
            cache.records.insert(
                rel.to_string(),
                CachedDigest {
                    size: meta.size,
                    mtime_ns: meta.mtime_ns,
                    ctime_ns: meta.ctime_ns,
                    ino: meta.ino,
                    mode: meta.mode,
                    hashed_at_ns,
                    digest: *digest.as_bytes(),
                },
            );
            cache.dirty = true;
        }
        Ok(digest)
    }

    /// Digests of several files, hashing the ones the cache cannot answer on two threads.
    pub fn file_digests(&self, rels: &[&str]) -> Result<Vec<Digest>, ContextError> {
        if rels.len() < 8 {
            return rels.iter().map(|r| self.file_digest(r)).collect();
        }
        let half = rels.len() / 2;
        let (a, b) = rels.split_at(half);
        let (ra, rb) = std::thread::scope(|s| {
            let handle = s.spawn(|| {
                a.iter()
                    .map(|r| self.file_digest(r))
                    .collect::<Result<Vec<_>, _>>()
            });
            let rb = b
                .iter()
                .map(|r| self.file_digest(r))
                .collect::<Result<Vec<_>, _>>();
            (handle.join(), rb)
        });
        let mut out = match ra {
            Ok(result) => result?,
            Err(_) => return rels.iter().map(|r| self.file_digest(r)).collect(),
        };
        out.extend(rb?);
        Ok(out)
    }

    /// Writes the stat cache (atomically: temp file + rename) if it changed, keeping only
    /// entries that are still in the context.
    pub fn save_stat_cache(&self) -> Result<(), ContextError> {
        let Some(path) = &self.stat_cache_path else {
            return Ok(());
        };
        let Ok(mut cache) = self.cache.lock() else {
            return Ok(());
        };
        // Nothing new was hashed and there cannot be more records than files: the file on disk
        // is already right (a no-op rebuild ends here without touching 20,000 keys).
        let files = self
            .entries
            .values()
            .filter(|m| m.kind == FileKind::File)
            .count();
        if !cache.dirty && cache.records.len() <= files {
            return Ok(());
        }
        cache.records.retain(|k, _| self.entries.contains_key(k));
        let bytes = cache.encode();
        let err = |source| ContextError::StatCacheWrite {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(err)?;
        cache.dirty = false;
        Ok(())
    }
}

fn hash_file(path: &Path) -> Result<(Digest, u64), ContextError> {
    let err = |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), total))
}

/// A top-level directory left for a scanning thread.
struct Deferred {
    host: PathBuf,
    rel: String,
    info: MatchInfo,
    /// The directory itself when it is excluded (added only if something inside is kept).
    pending: Option<(String, FileMeta)>,
}

struct Walker<'a> {
    ignore: &'a PatternMatcher,
    /// When set, directories of the top level are queued here instead of walked.
    deferred: Option<Vec<Deferred>>,
    entries: BTreeMap<String, FileMeta>,
    /// Excluded directories we descended into (because an exception may re-include something
    /// below them), not yet added: they are added when a descendant is.
    pending: Vec<(String, FileMeta, bool)>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, rel: &str, info: &MatchInfo) -> Result<(), ContextError> {
        let io = |source| ContextError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut children: Vec<(std::ffi::OsString, std::fs::DirEntry)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            children.push((entry.file_name(), entry));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, entry) in children {
            let Some(name) = name.to_str() else {
                // Non-UTF-8 names cannot be named in a Dockerfile; leave them out.
                continue;
            };
            let child_rel = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let (excluded, child_info) = if self.ignore.is_empty() {
                (false, MatchInfo::default())
            } else {
                self.ignore.matches_using_parent_results(&child_rel, info)
            };
            let host = entry.path();
            let md = entry.metadata().map_err(|source| ContextError::Io {
                path: host.clone(),
                source,
            })?;
            let is_dir = md.is_dir();
            if excluded && !(is_dir && self.ignore.may_reinclude_under(&child_rel)) {
                continue;
            }
            let link = if md.file_type().is_symlink() {
                let target = std::fs::read_link(&host).map_err(|source| ContextError::Io {
                    path: host.clone(),
                    source,
                })?;
                Some(target.to_string_lossy().into_owned())
            } else {
                None
            };
            let meta = meta_from_std(&md, link);
            if excluded {
                if rel.is_empty()
                    && let Some(deferred) = self.deferred.as_mut()
                {
                    deferred.push(Deferred {
                        host,
                        rel: child_rel,
                        info: child_info,
                        pending: Some((name.to_string(), meta)),
                    });
                    continue;
                }
                self.pending.push((child_rel.clone(), meta, false));
                self.walk(&host, &child_rel, &child_info)?;
                self.pending.pop();
                continue;
            }
            self.flush_pending();
            self.entries.insert(child_rel.clone(), meta);
            if is_dir {
                if rel.is_empty()
                    && let Some(deferred) = self.deferred.as_mut()
                {
                    deferred.push(Deferred {
                        host,
                        rel: child_rel,
                        info: child_info,
                        pending: None,
                    });
                    continue;
                }
                self.walk(&host, &child_rel, &child_info)?;
            }
        }
        Ok(())
    }

    fn flush_pending(&mut self) {
        for (rel, meta, added) in self.pending.iter_mut() {
            if !*added {
                self.entries.insert(rel.clone(), meta.clone());
                *added = true;
            }
        }
    }
}

impl SourceTree for BuildContext {
    fn lstat(&self, rel: &str) -> std::io::Result<Option<FileMeta>> {
        if rel.is_empty() {
            return Ok(Some(self.root_meta.clone()));
        }
        Ok(self.entries.get(rel).cloned())
    }

    fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let mut names = Vec::new();
        let range = if prefix.is_empty() {
            self.entries.range::<String, _>(..)
        } else {
            // Every key under `rel/` sorts between `rel/` and `rel0` ('0' follows '/').
            let end = format!("{rel}0");
            self.entries.range(prefix.clone()..end)
        };
        for (key, _) in range {
            let rest = &key[prefix.len()..];
            if !rest.is_empty() && !rest.contains('/') {
                names.push(rest.to_string());
            }
        }
        Ok(names)
    }

    fn open(&self, rel: &str) -> std::io::Result<File> {
        if !self.entries.contains_key(rel) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.root.join(rel))
    }

    fn host_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn forced_owner(&self) -> Option<(u32, u32)> {
        // BuildKit's file sync resets ownership of context files to root.
        Some((0, 0))
    }

    fn content_digest(&self, rel: &str) -> Option<std::io::Result<Digest>> {
        Some(
            self.file_digest(rel)
                .map_err(|e| std::io::Error::other(e.to_string())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignore::parse_ignore_file;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn scan(root: &Path, ignore: &str) -> BuildContext {
        let m = PatternMatcher::new(&parse_ignore_file(ignore)).unwrap();
        BuildContext::scan(root, &m, None).unwrap()
    }

    fn names(ctx: &BuildContext) -> Vec<String> {
        ctx.entries().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn ignored_paths_are_not_in_the_context() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.txt", "a");
        write(dir.path(), "b.log", "b");
        write(dir.path(), "sub/c.log", "c");
        write(dir.path(), "node_modules/x/y.js", "y");
        let ctx = scan(dir.path(), "*.log\nnode_modules\n");
        assert_eq!(names(&ctx), vec!["a.txt", "sub", "sub/c.log"]);
    }

    #[test]
    fn exceptions_reinclude_inside_excluded_directories_with_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "docs/keep.md", "k");
        write(dir.path(), "docs/drop.md", "d");
        write(dir.path(), "docs/deep/keep.md", "k2");
        write(dir.path(), "other/x", "x");
        let ctx = scan(dir.path(), "docs\nother\n!docs/keep.md\n!**/deep/keep.md\n");
        assert_eq!(
            names(&ctx),
            vec!["docs", "docs/deep", "docs/deep/keep.md", "docs/keep.md"]
        );
        assert_eq!(ctx.list("docs").unwrap(), vec!["deep", "keep.md"]);
        assert_eq!(ctx.list("").unwrap(), vec!["docs"]);
    }

    #[test]
    fn digests_come_from_the_stat_cache_when_nothing_changed() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = cache_dir.path().join("ctx.statcache");
        write(dir.path(), "f1", "one");
        write(dir.path(), "f2", "two");
        // Let the files age past the racy window.
        std::thread::sleep(std::time::Duration::from_millis(120));
        let m = PatternMatcher::default();

        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        let d1 = ctx.file_digest("f1").unwrap();
        assert_eq!(d1, Digest::of(b"one"));
        ctx.file_digest("f2").unwrap();
        assert_eq!(ctx.stats().files_hashed, 2);
        ctx.save_stat_cache().unwrap();

        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        assert_eq!(ctx.file_digest("f1").unwrap(), d1);
        ctx.file_digest("f2").unwrap();
        assert_eq!(
            ctx.stats(),
            HashStats {
                files_hashed: 0,
                bytes_hashed: 0,
                cache_hits: 2
            }
        );

        // A rewrite with the same size is detected through mtime/ctime.
        write(dir.path(), "f1", "ONE");
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        assert_eq!(ctx.file_digest("f1").unwrap(), Digest::of(b"ONE"));
        assert_eq!(ctx.stats().files_hashed, 1);
    }

    #[test]
    fn a_freshly_written_file_is_racy_and_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = cache_dir.path().join("c");
        write(dir.path(), "f", "x");
        let m = PatternMatcher::default();
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        ctx.file_digest("f").unwrap();
        ctx.save_stat_cache().unwrap();
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        ctx.file_digest("f").unwrap();
        assert_eq!(
            ctx.stats().files_hashed,
            1,
            "hashed within the racy window: not trusted"
        );
    }

    #[test]
    fn corrupt_stat_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "f", "x");
        let cache = dir.path().join("cachefile");
        std::fs::write(&cache, b"strata-statcache\x01\x00\x00\x00\xff\xff").unwrap();
        let ctx = BuildContext::scan(dir.path(), &PatternMatcher::default(), Some(&cache)).unwrap();
        assert_eq!(ctx.file_digest("f").unwrap(), Digest::of(b"x"));
    }

    #[test]
    fn parallel_digests_match_serial_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut rels = Vec::new();
        for i in 0..40 {
            write(dir.path(), &format!("d/f{i}"), &format!("content {i}"));
            rels.push(format!("d/f{i}"));
        }
        let ctx = scan(dir.path(), "");
        let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
        let digests = ctx.file_digests(&refs).unwrap();
        for (i, d) in digests.iter().enumerate() {
            assert_eq!(*d, Digest::of(format!("content {i}").as_bytes()));
        }
    }
}
