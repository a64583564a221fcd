//! The stat cache file: content digests and extended-attribute sums of context entries from
//! earlier builds, validated git-index style by their stat.
//!
//! The file is grouped by directory so the parallel context walk can consume it without
//! building a map of 20,000 strings: the loader only indexes the directory groups (one entry
//! per directory), a walker thread finds its directory's group by binary search and merge-joins
//! the group's name-sorted records with its own name-sorted entries. Records stay in the one
//! buffer the file was read into; a record is addressed by its offset.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! "strata-statcache" u32:version(3) u32:groups
//! groups × { u32:len dir-path  u32:records
//!            records × { u32:len name  u64:size i64:mtime_ns i64:ctime_ns u64:ino
//!                        i64:hashed_at_ns u32:mode [32]:sha256
//!                        u8:has-xattrs [32]:xattr-sum (only when has-xattrs is 1) } }
//! ```
//!
//! Regular files have records (content digest and xattr sum), and so do directories whose
//! xattrs were read (sha256 all zero); the context root's record is the one named `""` in the
//! root group. `setxattr`/`removexattr` move the ctime, so the same stat validation covers
//! the xattr sum: a no-op rebuild lists no xattrs. Groups are sorted by directory path and
//! records by name (byte order). A missing, truncated or foreign file (version 2 had no xattr
//! sums) is an empty cache: the cache is an optimisation, never a source of truth.

use crate::source::FileMeta;

const MAGIC: &[u8; 16] = b"strata-statcache";
const VERSION: u32 = 3;
/// Size of the fixed part of a record (after its name), up to the xattr flag.
const FIXED: usize = 8 * 5 + 4 + 32;

/// A file whose ctime is this close to (or after) the time it was hashed is not trusted from
/// the stat cache: timestamps advance in coarse kernel ticks, so a write right after hashing
/// can leave every stat field unchanged.
pub(crate) const RACY_WINDOW_NS: i64 = 50_000_000;

/// One remembered entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub hashed_at_ns: i64,
    pub mode: u32,
    /// Content digest of a regular file (all zero for a directory).
    pub digest: [u8; 32],
    /// The entry's layer xattrs, summed ([`crate::source::xattr_sum`]); `None` when it has
    /// none.
    pub xattrs: Option<[u8; 32]>,
}

impl Record {
    /// Whether the digest still describes a file with this stat: same size, times, inode and
    /// mode, and hashed clearly after its last change (not racily clean).
    pub fn valid_for(&self, meta: &FileMeta) -> bool {
        self.size == meta.size
            && self.mtime_ns == meta.mtime_ns
            && self.ctime_ns == meta.ctime_ns
            && self.ino == meta.ino
            && self.mode == meta.mode
            && meta.ctime_ns.saturating_add(RACY_WINDOW_NS) < self.hashed_at_ns
    }

    /// The record for `meta` read (hashed, xattrs listed) from `hashed_at_ns` on.
    pub fn new(
        meta: &FileMeta,
        hashed_at_ns: i64,
        digest: [u8; 32],
        xattrs: Option<[u8; 32]>,
    ) -> Self {
        Self {
            size: meta.size,
            mtime_ns: meta.mtime_ns,
            ctime_ns: meta.ctime_ns,
            ino: meta.ino,
            hashed_at_ns,
            mode: meta.mode,
            digest,
            xattrs,
        }
    }

    /// Steps over the record after a name without decoding it (the loader indexes 20,000 of
    /// them); `None` where [`Self::decode`] would fail.
    fn skip(r: &mut Reader<'_>) -> Option<()> {
        r.take(FIXED)?;
        match r.take(1)? {
            [0] => Some(()),
            [1] => r.take(32).map(drop),
            _ => None,
        }
    }

    /// Decodes the record after a name; `None` when the bytes end early or the flag is not
    /// 0 or 1.
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        let fixed = r.take(FIXED)?;
        let u64_at = |i: usize| Some(u64::from_le_bytes(fixed.get(i..i + 8)?.try_into().ok()?));
        let xattrs = match r.take(1)? {
            [0] => None,
            [1] => Some(r.take(32)?.try_into().ok()?),
            _ => return None,
        };
        Some(Self {
            size: u64_at(0)?,
            mtime_ns: u64_at(8)? as i64,
            ctime_ns: u64_at(16)? as i64,
            ino: u64_at(24)?,
            hashed_at_ns: u64_at(32)? as i64,
            mode: u32::from_le_bytes(fixed.get(40..44)?.try_into().ok()?),
            digest: fixed.get(44..76)?.try_into().ok()?,
            xattrs,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.size,
            self.mtime_ns as u64,
            self.ctime_ns as u64,
            self.ino,
            self.hashed_at_ns as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.digest);
        match &self.xattrs {
            None => out.push(0),
            Some(sum) => {
                out.push(1);
                out.extend_from_slice(sum);
            }
        }
    }
}

/// A directory's records in the loaded file.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// Offset and length of the directory path.
    path: (usize, usize),
    /// Offset of the first record.
    first: usize,
    count: usize,
}

/// A loaded stat cache file.
#[derive(Debug, Default)]
pub(crate) struct StatCache {
    bytes: Vec<u8>,
    groups: Vec<Group>,
    records: usize,
}

impl StatCache {
    /// Reads `path`; anything unreadable is an empty cache.
    pub fn load(path: &std::path::Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(Self::parse)
            .unwrap_or_default()
    }

    /// Indexes a file's bytes (the directory groups only; records are read on demand).
    pub fn parse(bytes: Vec<u8>) -> Option<Self> {
        let mut r = Reader {
            bytes: &bytes,
            at: 0,
        };
        if r.take(16)? != MAGIC || r.u32()? != VERSION {
            return None;
        }
        let count = r.u32()? as usize;
        let mut groups = Vec::with_capacity(count.min(1 << 16));
        let mut records = 0;
        for _ in 0..count {
            let len = r.u32()? as usize;
            let path = (r.at, len);
            std::str::from_utf8(r.take(len)?).ok()?;
            let n = r.u32()? as usize;
            let first = r.at;
            for _ in 0..n {
                let len = r.u32()? as usize;
                r.take(len)?;
                Record::skip(&mut r)?;
            }
            groups.push(Group {
                path,
                first,
                count: n,
            });
            records += n;
        }
        let mut cache = Self {
            bytes,
            groups,
            records,
        };
        // The writer sorts; a file that is not sorted is still usable after sorting the index.
        if !cache
            .groups
            .windows(2)
            .all(|w| cache.path_of(&w[0]) < cache.path_of(&w[1]))
        {
            let mut groups = std::mem::take(&mut cache.groups);
            groups.sort_by(|a, b| cache.path_of(a).cmp(cache.path_of(b)));
            cache.groups = groups;
        }
        Some(cache)
    }

    fn path_of(&self, g: &Group) -> &[u8] {
        &self.bytes[g.path.0..g.path.0 + g.path.1]
    }

    /// Number of records in the file.
    pub fn len(&self) -> usize {
        self.records
    }

    /// The records of directory `dir` (context-relative, `""` for the root) in file order:
    /// `(offset, name, record)`.
    pub fn dir(&self, dir: &str) -> impl Iterator<Item = (u32, &[u8], Record)> + '_ {
        let group = self
            .groups
            .binary_search_by(|g| self.path_of(g).cmp(dir.as_bytes()))
            .ok()
            .map(|i| self.groups[i]);
        let mut r = Reader {
            bytes: &self.bytes,
            at: group.map_or(0, |g| g.first),
        };
        let mut left = group.map_or(0, |g| g.count);
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let at = r.at as u32;
            let len = r.u32()? as usize;
            let name = r.take(len)?;
            let record = Record::decode(&mut r)?;
            Some((at, name, record))
        })
    }

    /// The record at `offset` (as given by [`Self::dir`]).
    pub fn record_at(&self, offset: u32) -> Option<Record> {
        let mut r = Reader {
            bytes: &self.bytes,
            at: offset as usize,
        };
        let len = r.u32()? as usize;
        r.take(len)?;
        Record::decode(&mut r)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Builds a stat cache file; directories must be added in path order and names in name
/// order within each directory.
#[derive(Debug)]
pub(crate) struct Writer {
    out: Vec<u8>,
    groups: u32,
    /// Where the current group's record count goes, and the count so far.
    open: Option<(usize, u32)>,
}

impl Writer {
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        Self {
            out,
            groups: 0,
            open: None,
        }
    }

    /// Starts the group of directory `dir`.
    pub fn dir(&mut self, dir: &str) {
        self.close();
        self.out
            .extend_from_slice(&(dir.len() as u32).to_le_bytes());
        self.out.extend_from_slice(dir.as_bytes());
        self.open = Some((self.out.len(), 0));
        self.out.extend_from_slice(&0u32.to_le_bytes());
        self.groups += 1;
    }

    /// Adds a record to the current group.
    pub fn record(&mut self, name: &str, record: &Record) {
        self.out
            .extend_from_slice(&(name.len() as u32).to_le_bytes());
        self.out.extend_from_slice(name.as_bytes());
        record.encode(&mut self.out);
        if let Some((_, n)) = self.open.as_mut() {
            *n += 1;
        }
    }

    fn close(&mut self) {
        if let Some((at, n)) = self.open.take() {
            self.out[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
    }

    /// The file's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.close();
        self.out[20..24].copy_from_slice(&self.groups.to_le_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> Record {
        Record {
            size: u64::from(n),
            mtime_ns: 1_000 + i64::from(n),
            ctime_ns: -5,
            ino: 42,
            hashed_at_ns: 9_000_000_000,
            mode: 0o100644,
            digest: [n; 32],
            xattrs: (n % 2 == 1).then_some([n ^ 0xff; 32]),
        }
    }

    #[test]
    fn round_trip_by_directory() {
        let mut w = Writer::new();
        w.dir("");
        w.record("a", &record(1));
        w.record("b", &record(2));
        w.dir("src/x");
        w.record("main.rs", &record(3));
        w.dir("zz");
        let cache = StatCache::parse(w.finish()).expect("parses");
        assert_eq!(cache.len(), 3);
        let root: Vec<_> = cache.dir("").map(|(_, n, r)| (n.to_vec(), r)).collect();
        assert_eq!(
            root,
            vec![(b"a".to_vec(), record(1)), (b"b".to_vec(), record(2))]
        );
        let (offset, name, rec) = cache.dir("src/x").next().expect("one record");
        assert_eq!((name, rec), (&b"main.rs"[..], record(3)));
        assert_eq!(cache.record_at(offset), Some(record(3)));
        assert_eq!(cache.dir("zz").count(), 0);
        assert_eq!(cache.dir("missing").count(), 0);
    }

    #[test]
    fn damaged_files_are_empty_caches() {
        let mut w = Writer::new();
        w.dir("d");
        w.record("f", &record(7));
        let good = w.finish();
        for cut in [0, 10, 20, 24, 30, good.len() - 1] {
            assert!(
                StatCache::parse(good[..cut].to_vec()).is_none(),
                "truncated at {cut}"
            );
        }
        let mut foreign = good.clone();
        foreign[16] = 1; // version 1: the old, ungrouped format
        assert!(StatCache::parse(foreign).is_none());
        let mut v2 = good.clone();
        v2[16] = 2; // version 2: no xattr sums
        assert!(StatCache::parse(v2).is_none());
        let mut bad_flag = good.clone();
        let flag_at = good.len() - 33;
        assert_eq!(bad_flag[flag_at], 1, "record(7) has xattrs");
        bad_flag[flag_at] = 2;
        assert!(StatCache::parse(bad_flag).is_none());
        let mut huge = good;
        huge[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(StatCache::parse(huge).is_none());
    }

    #[test]
    fn unsorted_groups_are_still_found() {
        let mut w = Writer::new();
        w.dir("b");
        w.record("f", &record(2));
        w.dir("a");
        w.record("f", &record(1));
        let cache = StatCache::parse(w.finish()).expect("parses");
        assert_eq!(cache.dir("a").next().map(|(_, _, r)| r), Some(record(1)));
        assert_eq!(cache.dir("b").next().map(|(_, _, r)| r), Some(record(2)));
    }
}
