//! The build context: a filtered, in-memory view of the context directory with content digests
//! backed by a persistent stat cache.
//!
//! [`BuildContext::scan`] walks the directory once ([`walk`]: `getdents64` + `statx` relative
//! to each directory's descriptor, directories shared out to all cores, no file reads),
//! applying `.dockerignore` the way BuildKit's file sync does: an excluded directory is skipped
//! unless an exception could re-include something inside it, and an excluded directory that
//! does contain a re-included path is kept (with its real metadata) so the path has a parent.
//! Entries live per directory, sorted by name, in one name buffer per directory: looking a
//! path up is a binary search per component and listing a directory allocates nothing.
//!
//! File contents are hashed only when a COPY/ADD needs them, and the digests are remembered in
//! a stat cache ([`statcache`]) validated git-index style by size, mtime, ctime, inode and mode
//! (all in nanoseconds where the kernel gives them). An entry whose ctime is too close to the
//! moment it was hashed is "racy" (the file could have been written again within the same
//! timestamp tick) and is not trusted, exactly the problem git solves with its racily-clean
//! check. The walk validates every file against the cache as it stats it, so a no-op rebuild
//! costs one directory walk and reads no file; the cache file is rewritten only when a digest
//! was computed or a remembered file disappeared.
//!
//! Extended attributes reach the layer (files and directories), so they are part of the COPY
//! checksum, and reading them for 20,000 entries on every build would cost as much as the
//! walk. They are remembered the same way: a file's xattr sum is read through the descriptor
//! its content was just hashed from and stored in its record; a directory's (and the context
//! root's) is read when a checksum first needs it and stored in a record of its own. Setting
//! or removing an xattr moves the ctime, which the record is validated by, so an unchanged
//! entry's xattrs are never listed again.

mod statcache;
mod walk;

use crate::ignore::PatternMatcher;
use crate::source::{FileKind, FileMeta, Known, SourceTree, XattrSum};
use sha2::{Digest as _, Sha256};
use statcache::{Record, StatCache};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use strata_image::Digest;
use thiserror::Error;
use walk::{NO_DIR, NO_RECORD, Tree};

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
    /// Files whose stat cache record still matches their stat: their digest is known without
    /// reading them.
    pub cache_hits: u64,
    /// Files and directories whose extended attributes were listed (`listxattr`): those
    /// hashed, and directories whose record was missing or stale.
    pub xattrs_read: u64,
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

/// Where an entry is: directory index and position in it, or [`ROOT`].
type Loc = (u32, u32);

/// The context directory itself (it has no parent entry; its record is the root group's
/// record named `""`).
const ROOT: Loc = (NO_DIR, NO_DIR);

/// The filtered build context.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    root_meta: FileMeta,
    /// The root's record in the stat cache ([`NO_RECORD`] if none) and whether it is valid.
    root_record: (u32, bool),
    tree: Tree,
    cache: StatCache,
    stat_cache_path: Option<PathBuf>,
    /// Digests and xattr sums read during this build, by entry, to be remembered.
    fresh: Mutex<HashMap<Loc, Record>>,
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    xattrs_read: AtomicU64,
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
        let root_err = |source: std::io::Error| ContextError::Root {
            path: root.to_path_buf(),
            source,
        };
        let fd = rustix::fs::open(
            root,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| root_err(e.into()))?;
        let root_meta = walk::stat_fd(std::os::fd::AsFd::as_fd(&fd)).map_err(root_err)?;
        let cache = stat_cache.map(StatCache::load).unwrap_or_default();
        let mut tree = walk::walk(root, fd, ignore, &cache).map_err(|e| ContextError::Io {
            path: e.path,
            source: e.source,
        })?;
        let root_record = cache
            .dir("")
            .next()
            .filter(|(_, name, _)| name.is_empty())
            .map_or((NO_RECORD, false), |(at, _, record)| {
                (at, record.valid_for(&root_meta))
            });
        tree.matched_records += usize::from(root_record.0 != NO_RECORD);
        Ok(Self {
            root: root.to_path_buf(),
            root_meta,
            root_record,
            tree,
            cache,
            stat_cache_path: stat_cache.map(Path::to_path_buf),
            fresh: Mutex::new(HashMap::new()),
            files_hashed: AtomicU64::new(0),
            bytes_hashed: AtomicU64::new(0),
            xattrs_read: AtomicU64::new(0),
        })
    }

    /// The context directory on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of entries visible in the context (files, directories, links, ...).
    pub fn len(&self) -> usize {
        self.reachable().map(|d| d.entries.len()).sum()
    }

    /// Whether the context is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.dirs.first().is_none_or(|d| d.entries.is_empty())
    }

    /// The visible entries, depth first with each directory's names in byte order (a
    /// directory comes right before its contents).
    pub fn entries(&self) -> Vec<(String, &FileMeta)> {
        let mut out = Vec::new();
        let mut stack: Vec<(u32, usize)> = vec![(0, 0)];
        while let Some((d, i)) = stack.pop() {
            let Some(dir) = self.tree.dirs.get(d as usize) else {
                continue;
            };
            let Some(node) = dir.entries.get(i) else {
                continue;
            };
            stack.push((d, i + 1));
            let name = dir.name(node);
            out.push((
                if dir.rel.is_empty() {
                    name.to_string()
                } else {
                    format!("{}/{name}", dir.rel)
                },
                &node.meta,
            ));
            if node.child != NO_DIR {
                stack.push((node.child, 0));
            }
        }
        out
    }

    /// The directories reachable from the root.
    fn reachable(&self) -> impl Iterator<Item = &walk::Dir> {
        let mut stack = vec![0u32];
        std::iter::from_fn(move || {
            let dir = self.tree.dirs.get(stack.pop()? as usize)?;
            stack.extend(
                dir.entries
                    .iter()
                    .filter(|n| n.child != NO_DIR)
                    .map(|n| n.child),
            );
            Some(dir)
        })
    }

    /// Work counters since the scan.
    pub fn stats(&self) -> HashStats {
        HashStats {
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
            cache_hits: self.tree.cached_files as u64,
            xattrs_read: self.xattrs_read.load(Ordering::Relaxed),
        }
    }

    /// Finds `rel` (cleaned, relative, no symlink components): a binary search per component.
    fn locate(&self, rel: &str) -> Option<Loc> {
        let mut dir = 0u32;
        let mut parts = rel.split('/').peekable();
        loop {
            let name = parts.next()?;
            let d = self.tree.dirs.get(dir as usize)?;
            let i = d.find(name)?;
            if parts.peek().is_none() {
                return Some((dir, i as u32));
            }
            dir = d.entries[i].child;
            if dir == NO_DIR {
                return None;
            }
        }
    }

    fn node(&self, (d, i): Loc) -> &walk::Node {
        &self.tree.dirs[d as usize].entries[i as usize]
    }

    fn fresh(&self) -> MutexGuard<'_, HashMap<Loc, Record>> {
        self.fresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn meta(&self, loc: Loc) -> &FileMeta {
        if loc == ROOT {
            &self.root_meta
        } else {
            &self.node(loc).meta
        }
    }

    /// The entry's record in the loaded stat cache and whether it is valid for its stat.
    fn stored_record(&self, loc: Loc) -> (u32, bool) {
        if loc == ROOT {
            self.root_record
        } else {
            let node = self.node(loc);
            (node.record, node.cached)
        }
    }

    /// The record the stat cache (or an earlier read in this build) gives for the entry.
    fn known_record(&self, loc: Loc) -> Option<Record> {
        if let (at, true) = self.stored_record(loc)
            && let Some(record) = self.cache.record_at(at)
        {
            return Some(record);
        }
        self.fresh().get(&loc).copied()
    }

    /// The digest the stat cache (or an earlier hash in this build) gives for the file.
    fn known_digest(&self, loc: Loc) -> Option<Digest> {
        self.known_record(loc)
            .map(|record| Digest::from_bytes(record.digest))
    }

    /// What is known of a regular file or directory without reading it.
    fn known(&self, loc: Loc, kind: &FileKind) -> Known {
        let record = match kind {
            FileKind::File | FileKind::Dir => self.known_record(loc),
            _ => None,
        };
        record.map_or(Known::default(), |record| Known {
            content: (*kind == FileKind::File).then(|| Digest::from_bytes(record.digest)),
            xattrs: Some(record.xattrs.map(Digest::from_bytes)),
        })
    }

    /// The layer xattrs of the entry at `rel`, summed: from the stat cache when its stat still
    /// matches, otherwise listed (and, for a directory, remembered).
    pub fn entry_xattr_sum(&self, rel: &str) -> Result<XattrSum, ContextError> {
        let loc = if rel.is_empty() {
            ROOT
        } else {
            self.locate(rel).ok_or_else(|| ContextError::NotInContext {
                path: rel.to_string(),
            })?
        };
        if let Some(record) = self.known_record(loc) {
            return Ok(record.xattrs.map(Digest::from_bytes));
        }
        let meta = self.meta(loc);
        let host = self.root.join(rel);
        let read_at_ns = now_ns();
        let sum = crate::source::read_xattr_sum(&host).map_err(|source| ContextError::Io {
            path: host.clone(),
            source,
        })?;
        self.xattrs_read.fetch_add(1, Ordering::Relaxed);
        // A file's sum is remembered with its content digest (see `file_digest`, which a
        // checksum asks first); a directory's on its own, if nothing changed while reading.
        if meta.kind == FileKind::Dir && unchanged_since(&host, meta) {
            self.fresh().insert(
                loc,
                Record::new(meta, read_at_ns, [0; 32], sum.map(|d| *d.as_bytes())),
            );
        }
        Ok(sum)
    }

    /// The content digest of the regular file at `rel`, from the stat cache when its stat
    /// still matches, otherwise by reading it.
    pub fn file_digest(&self, rel: &str) -> Result<Digest, ContextError> {
        let loc = self.locate(rel).ok_or_else(|| ContextError::NotInContext {
            path: rel.to_string(),
        })?;
        if let Some(digest) = self.known_digest(loc) {
            return Ok(digest);
        }
        let meta = &self.node(loc).meta;
        let hashed_at_ns = now_ns();
        let host = self.root.join(rel);
        let (digest, read, xattrs) = hash_file(&host)?;
        self.files_hashed.fetch_add(1, Ordering::Relaxed);
        self.bytes_hashed.fetch_add(read, Ordering::Relaxed);
        self.xattrs_read.fetch_add(1, Ordering::Relaxed);
        // Only remember the digest if the file was not modified (content or xattrs: both move
        // the ctime) while it was read.
        if unchanged_since(&host, meta) {
            self.fresh().insert(
                loc,
                Record::new(
                    meta,
                    hashed_at_ns,
                    *digest.as_bytes(),
                    xattrs.map(|d| *d.as_bytes()),
                ),
            );
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

    /// Writes the stat cache (atomically: temp file + rename) if it changed: a digest was
    /// computed in this build, or a remembered file is no longer in the context. A no-op
    /// rebuild writes nothing.
    pub fn save_stat_cache(&self) -> Result<(), ContextError> {
        let Some(path) = &self.stat_cache_path else {
            return Ok(());
        };
        let fresh = self.fresh();
        if fresh.is_empty() && self.tree.matched_records == self.cache.len() {
            return Ok(());
        }
        let mut dirs: Vec<(u32, &walk::Dir)> = Vec::new();
        let mut stack = vec![0u32];
        while let Some(d) = stack.pop() {
            let Some(dir) = self.tree.dirs.get(d as usize) else {
                continue;
            };
            dirs.push((d, dir));
            stack.extend(
                dir.entries
                    .iter()
                    .filter(|n| n.child != NO_DIR)
                    .map(|n| n.child),
            );
        }
        dirs.sort_by(|a, b| a.1.rel.as_bytes().cmp(b.1.rel.as_bytes()));
        let mut writer = statcache::Writer::new();
        let root_record = match fresh.get(&ROOT) {
            Some(record) => Some(*record),
            None if self.root_record.0 != NO_RECORD => self.cache.record_at(self.root_record.0),
            None => None,
        };
        for (d, dir) in dirs {
            let mut opened = false;
            if d == 0
                && let Some(record) = &root_record
            {
                // Named "": sorts before every entry of the root group.
                writer.dir("");
                writer.record("", record);
                opened = true;
            }
            for (i, node) in dir.entries.iter().enumerate() {
                let record = match fresh.get(&(d, i as u32)) {
                    Some(record) => Some(*record),
                    None if node.record != NO_RECORD => self.cache.record_at(node.record),
                    None => None,
                };
                if let Some(record) = record {
                    if !opened {
                        writer.dir(&dir.rel);
                        opened = true;
                    }
                    writer.record(dir.name(node), &record);
                }
            }
        }
        let bytes = writer.finish();
        drop(fresh);
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
        Ok(())
    }
}

/// Whether the entry at `host` still has the size, times and inode of `meta` (so what was
/// read from it describes that stat).
fn unchanged_since(host: &Path, meta: &FileMeta) -> bool {
    std::fs::symlink_metadata(host)
        .map(|md| {
            let now = meta_from_std(&md, None);
            now.size == meta.size
                && now.mtime_ns == meta.mtime_ns
                && now.ctime_ns == meta.ctime_ns
                && now.ino == meta.ino
        })
        .unwrap_or(false)
}

/// Hashes a regular file's content, then sums its layer xattrs through the same descriptor.
fn hash_file(path: &Path) -> Result<(Digest, u64, XattrSum), ContextError> {
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
    let xattrs = crate::source::read_xattr_sum_fd(std::os::fd::AsFd::as_fd(&f)).map_err(err)?;
    Ok((Digest::from_bytes(hasher.finalize().into()), total, xattrs))
}

impl SourceTree for BuildContext {
    fn lstat(&self, rel: &str) -> std::io::Result<Option<FileMeta>> {
        if rel.is_empty() {
            return Ok(Some(self.root_meta.clone()));
        }
        Ok(self.locate(rel).map(|loc| self.node(loc).meta.clone()))
    }

    fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        let Some(d) = self.dir_index(rel) else {
            return Ok(Vec::new());
        };
        let dir = &self.tree.dirs[d as usize];
        Ok(dir
            .entries
            .iter()
            .map(|n| dir.name(n).to_string())
            .collect())
    }

    fn visit_dir(&self, rel: &str, visit: &mut crate::source::Visit<'_>) -> std::io::Result<()> {
        let Some(d) = self.dir_index(rel) else {
            return Ok(());
        };
        let dir = &self.tree.dirs[d as usize];
        for (i, node) in dir.entries.iter().enumerate() {
            // The fresh-record lock is taken per uncached entry, never across `visit`.
            let known = self.known((d, i as u32), &node.meta.kind);
            if visit(dir.name(node), &node.meta, known).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn open(&self, rel: &str) -> std::io::Result<File> {
        if self.locate(rel).is_none() {
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

    fn xattr_sum(&self, rel: &str) -> std::io::Result<XattrSum> {
        self.entry_xattr_sum(rel)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

impl BuildContext {
    /// The index of directory `rel` (`""` is the root).
    fn dir_index(&self, rel: &str) -> Option<u32> {
        if rel.is_empty() {
            return Some(0);
        }
        let child = self.node(self.locate(rel)?).child;
        (child != NO_DIR).then_some(child)
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
        ctx.entries().into_iter().map(|(k, _)| k).collect()
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
                cache_hits: 2,
                xattrs_read: 0,
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

    fn aged(dir: &Path) {
        // Let the files age past the stat cache's racy window.
        let _ = dir;
        std::thread::sleep(std::time::Duration::from_millis(120));
    }

    fn copy_all() -> crate::copy::CopySpec {
        crate::copy::CopySpec {
            sources: vec![".".into()],
            dest: "/app/".into(),
            workdir: "/".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_noop_build_does_not_rewrite_the_stat_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = cache_dir.path().join("c");
        for i in 0..30 {
            write(dir.path(), &format!("d{}/f{i}", i % 3), "x");
        }
        aged(dir.path());
        let m = PatternMatcher::default();
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        crate::copy::prepare_checksum(&ctx, &copy_all()).unwrap();
        ctx.save_stat_cache().unwrap();
        let stamp = |p: &Path| {
            let md = std::fs::metadata(p).unwrap();
            (md.ino(), md.mtime(), md.mtime_nsec())
        };
        let before = stamp(&cache);

        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        crate::copy::prepare_checksum(&ctx, &copy_all()).unwrap();
        assert_eq!(ctx.stats().files_hashed, 0);
        assert_eq!(ctx.stats().cache_hits, 30);
        ctx.save_stat_cache().unwrap();
        assert_eq!(
            stamp(&cache),
            before,
            "a no-op build rewrote the stat cache"
        );

        // A deleted file's record is dropped: that is a change worth writing.
        std::fs::remove_file(dir.path().join("d0/f0")).unwrap();
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        ctx.save_stat_cache().unwrap();
        assert_ne!(stamp(&cache), before);
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        assert_eq!(ctx.stats().cache_hits, 29);
    }

    #[test]
    fn a_changed_byte_is_found_after_a_noop_build() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = cache_dir.path().join("c");
        for i in 0..50 {
            write(
                dir.path(),
                &format!("src/p{}/f{i}.go", i % 5),
                "package main\n",
            );
        }
        aged(dir.path());
        let m = PatternMatcher::default();
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        let first = crate::copy::prepare_checksum(&ctx, &copy_all()).unwrap();
        ctx.save_stat_cache().unwrap();
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        assert_eq!(
            crate::copy::prepare_checksum(&ctx, &copy_all()).unwrap(),
            first
        );
        assert_eq!(ctx.stats().files_hashed, 0);

        // Same size, one byte different.
        write(dir.path(), "src/p3/f13.go", "package main\r");
        let ctx = BuildContext::scan(dir.path(), &m, Some(&cache)).unwrap();
        let changed = crate::copy::prepare_checksum(&ctx, &copy_all()).unwrap();
        assert_ne!(changed, first);
        assert_eq!(ctx.stats().files_hashed, 1);
        assert_eq!(
            ctx.file_digest("src/p3/f13.go").unwrap(),
            Digest::of(b"package main\r")
        );
    }

    /// Every kind of entry the walk can meet, compared with a plain `std::fs` walk.
    #[test]
    fn the_walk_sees_what_lstat_sees() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a/b/c/deep.txt", "deep");
        write(root, "a.txt", "a");
        write(root, "a-b/x", "x");
        std::fs::create_dir_all(root.join("empty/nested")).unwrap();
        std::os::unix::fs::symlink("a/b", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("a/dangling")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("a/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o640),
            0,
        )
        .unwrap();
        std::fs::hard_link(root.join("a.txt"), root.join("a/b/hard")).unwrap();
        std::fs::write(
            root.join(std::ffi::OsStr::from_bytes(b"bad\xffname")),
            "not utf-8",
        )
        .unwrap();
        for i in 0..300 {
            write(root, &format!("wide/d{}/f{i}", i % 40), "w");
        }

        let ctx = scan(root, "");
        let mut expected = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
                let entry = entry.unwrap();
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let child = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let md = std::fs::symlink_metadata(root.join(&child)).unwrap();
                let link = md
                    .file_type()
                    .is_symlink()
                    .then(|| std::fs::read_link(root.join(&child)).unwrap());
                let meta = meta_from_std(&md, link.map(|l| l.to_string_lossy().into_owned()));
                if md.is_dir() {
                    stack.push(child.clone());
                }
                expected.push((child, meta));
            }
        }
        let key = |p: &str| p.split('/').map(str::to_string).collect::<Vec<_>>();
        expected.sort_by_key(|(p, _)| key(p));
        let got: Vec<(String, FileMeta)> = ctx
            .entries()
            .into_iter()
            .map(|(p, m)| (p, m.clone()))
            .collect();
        assert_eq!(got.len(), expected.len());
        for ((gp, gm), (ep, em)) in got.iter().zip(&expected) {
            assert_eq!(gp, ep);
            // atime moves when the std walk reads directories.
            assert_eq!(
                FileMeta {
                    atime_ns: 0,
                    ..gm.clone()
                },
                FileMeta {
                    atime_ns: 0,
                    ..em.clone()
                },
                "{gp}"
            );
        }
        assert_eq!(ctx.len(), expected.len());
        assert_eq!(ctx.list("a").unwrap(), vec!["b", "dangling", "fifo"]);
        assert_eq!(ctx.list("missing").unwrap(), Vec::<String>::new());
        assert!(ctx.lstat("a/b/c/deep.txt").unwrap().is_some());
        assert!(
            ctx.lstat("link/c").unwrap().is_none(),
            "lookups never follow links"
        );
        assert!(ctx.lstat("a.txt/x").unwrap().is_none());
    }

    /// The parallel walk with `.dockerignore` exceptions agrees with the path-by-path rule:
    /// a path is in the context if it is not excluded, or if it is a directory holding
    /// something that is.
    #[test]
    fn dockerignore_in_a_wide_tree_matches_the_path_rule() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..24 {
            for f in 0..8 {
                let ext = if f % 3 == 0 { "log" } else { "txt" };
                write(root, &format!("d{d}/s{}/f{f}.{ext}", d % 4), "x");
            }
        }
        write(root, "keep/deep/a.log", "k");
        let cases = [
            "*.log\n",
            "d1*\n!d1*/s1/f3.txt\n",
            "**/*.log\n!keep/**\n",
            "d*\n!d2/s2\n!**/f7.txt\n",
            "*\n!d5/s1/f4.txt\n",
        ];
        for text in cases {
            let patterns = parse_ignore_file(text);
            let m = PatternMatcher::new(&patterns).unwrap();
            let ctx = BuildContext::scan(root, &m, None).unwrap();
            let got: std::collections::BTreeSet<String> =
                ctx.entries().into_iter().map(|(p, _)| p).collect();

            // Oracle: every path on disk, decided bottom-up.
            let mut all: Vec<(String, bool)> = Vec::new();
            let mut stack = vec![String::new()];
            while let Some(rel) = stack.pop() {
                for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
                    let name = entry.unwrap().file_name().into_string().unwrap();
                    let child = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    let is_dir = root.join(&child).is_dir();
                    if is_dir {
                        stack.push(child.clone());
                    }
                    all.push((child, is_dir));
                }
            }
            all.sort_by_key(|(p, _)| std::cmp::Reverse(p.matches('/').count()));
            let mut expected = std::collections::BTreeSet::new();
            for (path, is_dir) in &all {
                let kept_inside = *is_dir
                    && expected
                        .iter()
                        .any(|e: &String| e.starts_with(&format!("{path}/")));
                if !m.matches_or_parent_matches(path) || kept_inside {
                    expected.insert(path.clone());
                }
            }
            assert_eq!(got, expected, "{text:?}");
        }
    }

    /// Queued directories hold no descriptor: a tree deeper than the descriptor limit (1024
    /// by default) with a sibling directory at every level still walks.
    #[test]
    fn a_tree_deeper_than_the_descriptor_limit_is_walked() {
        // tmpfs when there is one: ext4 takes seconds to allocate 2,200 nested directories.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let depth = 1100;
        // The common default soft limit (this machine's may be higher); 1,024 is plenty for
        // the tests running alongside.
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(limit.current.map_or(1024, |c| c.min(1024))),
                maximum: limit.maximum,
            },
        )
        .unwrap();
        let mut path = dir.path().to_path_buf();
        for _ in 0..depth {
            // "a" sorts first, so it is still queued while the walk goes down "d".
            std::fs::create_dir(path.join("a")).unwrap();
            path.push("d");
            std::fs::create_dir(&path).unwrap();
        }
        std::fs::write(path.join("leaf"), "x").unwrap();
        let ctx = scan(dir.path(), "");
        assert_eq!(ctx.len(), 2 * depth + 1);
        let leaf = format!("{}leaf", "d/".repeat(depth));
        assert_eq!(ctx.file_digest(&leaf).unwrap(), Digest::of(b"x"));
    }
}
