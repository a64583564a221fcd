//! The context walk: every directory read once through its own file descriptor
//! (`getdents64`, then `statx` of each name relative to that descriptor, so the kernel never
//! resolves a full path), directories shared out to all cores as they are discovered.
//!
//! A stat by path costs a path lookup per component; relative to an open directory it is one
//! dentry lookup. With 20,000 entries that difference is most of a no-op rebuild. Each
//! directory is one job: the thread that takes it reads and stats its entries, applies
//! `.dockerignore`, merge-joins them with the stat cache's records for that directory and
//! queues its subdirectories, so two threads stay busy whatever the shape of the tree.

use super::statcache::StatCache;
use crate::ignore::{MatchInfo, PatternMatcher};
use crate::source::{FileKind, FileMeta};
use rustix::fs::{AtFlags, Mode, OFlags, RawDir, ResolveFlags, StatxFlags};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// No directory (the entry is not a directory).
pub(crate) const NO_DIR: u32 = u32::MAX;
/// No stat cache record.
pub(crate) const NO_RECORD: u32 = u32::MAX;

/// One entry of a directory.
#[derive(Debug)]
pub(crate) struct Node {
    /// Offset of the name in the directory's name buffer (the name is followed by a NUL).
    name_at: u32,
    name_len: u32,
    /// The `lstat`.
    pub meta: FileMeta,
    /// The directory's index when this is a directory.
    pub child: u32,
    /// Offset of this file's or directory's record in the loaded stat cache, or
    /// [`NO_RECORD`].
    pub record: u32,
    /// The record is valid for this stat: its digest is the file's content digest and its
    /// xattr sum the entry's.
    pub cached: bool,
    /// An excluded directory walked only because an exception may re-include something below
    /// it: kept only if something is.
    pending: bool,
}

/// One directory: its entries sorted by name.
#[derive(Debug, Default)]
pub(crate) struct Dir {
    /// Context-relative path (`""` for the root).
    pub rel: String,
    /// The names, each followed by a NUL (so a name is also a C string for the syscalls).
    names: String,
    pub entries: Vec<Node>,
}

impl Dir {
    /// The name of `node`.
    pub fn name(&self, node: &Node) -> &str {
        name_of(&self.names, node)
    }

    /// The entry named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|n| self.name(n).as_bytes().cmp(name.as_bytes()))
            .ok()
    }
}

/// The walked tree; `dirs[0]` is the root.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub dirs: Vec<Dir>,
    /// Stat cache records whose name is still a file or directory in the context.
    pub matched_records: usize,
    /// Files whose record is valid for their stat.
    pub cached_files: usize,
}

/// What failed during the walk.
#[derive(Debug)]
pub(crate) struct WalkError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

struct Job {
    slot: u32,
    rel: String,
    info: MatchInfo,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Jobs taken and not finished (they may still queue more).
    active: usize,
    /// Threads waiting for a job (only then is a wake-up worth a syscall).
    waiting: usize,
    failed: Option<WalkError>,
}

struct Shared<'a> {
    root: &'a Path,
    /// Subdirectories are opened beneath it by their context path (no descriptor is kept
    /// open for a queued directory, so a deep tree cannot run out of descriptors).
    root_fd: BorrowedFd<'a>,
    ignore: &'a PatternMatcher,
    cache: &'a StatCache,
    queue: Mutex<Queue>,
    wake: Condvar,
    slots: AtomicU32,
    matched: AtomicUsize,
    cached: AtomicUsize,
}

/// Walks the directory open as `root_fd` (at `root` on the host).
pub(crate) fn walk(
    root: &Path,
    root_fd: OwnedFd,
    ignore: &PatternMatcher,
    cache: &StatCache,
) -> Result<Tree, WalkError> {
    let shared = Shared {
        root,
        root_fd: root_fd.as_fd(),
        ignore,
        cache,
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        slots: AtomicU32::new(1),
        matched: AtomicUsize::new(0),
        cached: AtomicUsize::new(0),
    };
    let mut scratch = Scratch::new();
    let mut done = Vec::new();
    // The root on this thread; helpers start only if it has subdirectories.
    let (dir, subdirs) = read_dir(
        &shared,
        root_fd.as_fd(),
        String::new(),
        &MatchInfo::default(),
        &mut scratch,
    )?;
    done.push((0, dir));
    if !subdirs.is_empty() {
        let jobs = subdirs
            .into_iter()
            .map(|(slot, rel, info)| Job { slot, rel, info });
        lock(&shared.queue).jobs.extend(jobs);
        let helpers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 4)
            - 1;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..helpers)
                .map(|_| scope.spawn(|| work(&shared)))
                .collect();
            done.extend(work(&shared));
            for handle in handles {
                match handle.join() {
                    Ok(dirs) => done.extend(dirs),
                    Err(_) => {
                        lock(&shared.queue).failed.get_or_insert(WalkError {
                            path: root.to_path_buf(),
                            source: std::io::Error::other("context walk thread panicked"),
                        });
                    }
                }
            }
        });
    }
    if let Some(e) = lock(&shared.queue).failed.take() {
        return Err(e);
    }
    let count = shared.slots.load(Ordering::Relaxed) as usize;
    let mut dirs: Vec<Dir> = (0..count).map(|_| Dir::default()).collect();
    for (slot, dir) in done {
        dirs[slot as usize] = dir;
    }
    prune_pending(&mut dirs);
    Ok(Tree {
        dirs,
        matched_records: shared.matched.load(Ordering::Relaxed),
        cached_files: shared.cached.load(Ordering::Relaxed),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A thread's loop: take a directory, read it, queue its subdirectories, until no thread has
/// anything left.
fn work(shared: &Shared<'_>) -> Vec<(u32, Dir)> {
    let mut scratch = Scratch::new();
    let mut done = Vec::new();
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if q.failed.is_some() {
                    break None;
                }
                if let Some(job) = q.jobs.pop() {
                    q.active += 1;
                    break Some(job);
                }
                if q.active == 0 {
                    break None;
                }
                q.waiting += 1;
                q = shared
                    .wake
                    .wait(q)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                q.waiting -= 1;
            }
        };
        let Some(job) = job else {
            // Finished (or failed): let the waiting threads see it too.
            shared.wake.notify_all();
            return done;
        };
        let result = open_subdir(shared, &job.rel)
            .and_then(|fd| read_dir(shared, fd.as_fd(), job.rel, &job.info, &mut scratch));
        let mut q = lock(&shared.queue);
        q.active -= 1;
        match result {
            Ok((dir, subdirs)) => {
                done.push((job.slot, dir));
                q.jobs.extend(
                    subdirs
                        .into_iter()
                        .map(|(slot, rel, info)| Job { slot, rel, info }),
                );
            }
            Err(e) => {
                q.failed.get_or_insert(e);
            }
        }
        // Waiters need waking for new jobs, or to learn that the walk is over or failed.
        let wake = q.waiting > 0 && (!q.jobs.is_empty() || q.active == 0 || q.failed.is_some());
        drop(q);
        if wake {
            shared.wake.notify_all();
        }
    }
}

/// Opens the directory `rel` beneath the root without following any symlink on the way (it
/// was a directory when its parent was read; a swap for a link fails instead of escaping).
fn open_subdir(shared: &Shared<'_>, rel: &str) -> Result<OwnedFd, WalkError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let opened = match rustix::fs::openat2(
        shared.root_fd,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // Kernels before 5.6: only the last component is checked.
        Err(rustix::io::Errno::NOSYS) => {
            rustix::fs::openat(shared.root_fd, rel, flags, Mode::empty())
        }
        other => other,
    };
    opened.map_err(|e| WalkError {
        path: shared.root.join(rel),
        source: e.into(),
    })
}

type Subdirs = Vec<(u32, String, MatchInfo)>;

/// Reads one directory: entries stat'ed, filtered, sorted and matched with the stat cache.
fn read_dir(
    shared: &Shared<'_>,
    fd: std::os::fd::BorrowedFd<'_>,
    rel: String,
    info: &MatchInfo,
    scratch: &mut Scratch,
) -> Result<(Dir, Subdirs), WalkError> {
    let io = |rel: &str, source: rustix::io::Errno| WalkError {
        path: shared.root.join(rel),
        source: source.into(),
    };
    let mut dir = Dir {
        rel,
        names: std::mem::take(&mut scratch.names),
        entries: std::mem::take(&mut scratch.entries),
    };
    let mut child_infos: Vec<(u32, MatchInfo)> = Vec::new();
    let mut path = String::new();
    // The match info of the current entry; kept (cloned) only for directories.
    let mut entry_info = MatchInfo::default();
    let mut raw = RawDir::new(fd, &mut scratch.buf);
    while let Some(entry) = raw.next() {
        let entry = entry.map_err(|e| io(&dir.rel, e))?;
        let name_c = entry.file_name();
        let bytes = name_c.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(bytes) else {
            // Non-UTF-8 names cannot be named in a Dockerfile; leave them out.
            continue;
        };
        let filtering = !shared.ignore.is_empty();
        if filtering {
            path.clear();
            if !dir.rel.is_empty() {
                path.push_str(&dir.rel);
                path.push('/');
            }
            path.push_str(name);
        }
        let st = rustix::fs::statx(
            fd,
            name_c,
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::STATX_DONT_SYNC,
            StatxFlags::BASIC_STATS,
        );
        let st = match st {
            Ok(st) => st,
            // Deleted between getdents and statx: it is not in the context.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(io(&child_path(&dir.rel, name), e)),
        };
        let is_dir = u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFDIR;
        let excluded = filtering
            && shared
                .ignore
                .matches_using_parent_results_into(&path, info, &mut entry_info);
        if excluded && !(is_dir && shared.ignore.may_reinclude_under(&path)) {
            continue;
        }
        let link = if u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFLNK {
            let target = rustix::fs::readlinkat(fd, name_c, Vec::new())
                .map_err(|e| io(&child_path(&dir.rel, name), e))?;
            Some(target.to_string_lossy().into_owned())
        } else {
            None
        };
        let name_at = dir.names.len() as u32;
        dir.names.push_str(name);
        dir.names.push('\0');
        if is_dir && filtering {
            child_infos.push((name_at, entry_info.clone()));
        }
        dir.entries.push(Node {
            name_at,
            name_len: name.len() as u32,
            meta: meta_from_statx(&st, link),
            child: NO_DIR,
            record: NO_RECORD,
            cached: false,
            pending: excluded,
        });
    }
    // Sort by name; a subdirectory's match info is found again by its name offset.
    let names = &dir.names;
    dir.entries.sort_unstable_by(|a, b| {
        name_of(names, a)
            .as_bytes()
            .cmp(name_of(names, b).as_bytes())
    });
    // Merge-join with the stat cache's records for this directory (both sorted by name).
    if shared.cache.len() > 0 {
        let mut records = shared.cache.dir(&dir.rel).peekable();
        let (mut matched, mut cached) = (0, 0);
        for i in 0..dir.entries.len() {
            let name = dir.name(&dir.entries[i]).as_bytes();
            while records.next_if(|(_, n, _)| *n < name).is_some() {}
            if let Some((at, _, record)) = records.next_if(|(_, n, _)| *n == name) {
                let node = &mut dir.entries[i];
                if matches!(node.meta.kind, FileKind::File | FileKind::Dir) {
                    matched += 1;
                    node.record = at;
                    node.cached = record.valid_for(&node.meta);
                    cached += usize::from(node.cached && node.meta.kind == FileKind::File);
                }
            }
        }
        shared.matched.fetch_add(matched, Ordering::Relaxed);
        shared.cached.fetch_add(cached, Ordering::Relaxed);
    }
    let mut subdirs = Vec::new();
    for node in dir.entries.iter_mut() {
        if node.meta.kind == FileKind::Dir {
            let slot = shared.slots.fetch_add(1, Ordering::Relaxed);
            node.child = slot;
            let info = child_infos
                .binary_search_by_key(&node.name_at, |(at, _)| *at)
                .ok()
                .map(|i| std::mem::take(&mut child_infos[i].1))
                .unwrap_or_default();
            subdirs.push((slot, child_path(&dir.rel, name_of(&dir.names, node)), info));
        }
    }
    scratch.settle(&mut dir);
    Ok((dir, subdirs))
}

/// A walker thread's buffers, reused from one directory to the next: a directory's entries
/// are collected here and then moved into allocations of their exact size, so memory is
/// touched once instead of once per doubling.
struct Scratch {
    buf: Vec<MaybeUninit<u8>>,
    entries: Vec<Node>,
    names: String,
}

impl Scratch {
    fn new() -> Self {
        Self {
            buf: vec![MaybeUninit::uninit(); 32 * 1024],
            entries: Vec::new(),
            names: String::new(),
        }
    }

    /// Gives `dir` exact-size copies of its buffers and keeps the (emptied) originals.
    fn settle(&mut self, dir: &mut Dir) {
        let entries: Vec<Node> = dir.entries.drain(..).collect();
        self.entries = std::mem::replace(&mut dir.entries, entries);
        let names = dir.names.as_str().to_owned();
        self.names = std::mem::replace(&mut dir.names, names);
        self.names.clear();
    }
}

fn name_of<'a>(names: &'a str, node: &Node) -> &'a str {
    let at = node.name_at as usize;
    names.get(at..at + node.name_len as usize).unwrap_or("")
}

fn child_path(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        let mut p = String::with_capacity(rel.len() + 1 + name.len());
        p.push_str(rel);
        p.push('/');
        p.push_str(name);
        p
    }
}

/// Drops excluded directories that were walked for a possible exception but hold nothing
/// kept. A directory's slot is always greater than its parent's (slots are handed out while
/// the parent is read), so one pass from the last slot down sees children before parents.
fn prune_pending(dirs: &mut [Dir]) {
    let mut kept = vec![true; dirs.len()];
    for slot in (0..dirs.len()).rev() {
        let entries = &mut dirs[slot].entries;
        entries.retain(|n| !n.pending || kept.get(n.child as usize).copied().unwrap_or(false));
        kept[slot] = !entries.is_empty();
    }
}

/// The engine's [`FileMeta`] from a `statx` (and the link target of a symlink).
pub(crate) fn meta_from_statx(st: &rustix::fs::Statx, link: Option<String>) -> FileMeta {
    let mode = u32::from(st.stx_mode);
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink(link.unwrap_or_default()),
        libc::S_IFREG => FileKind::File,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFCHR => FileKind::CharDevice,
        libc::S_IFBLK => FileKind::BlockDevice,
        _ => FileKind::Socket,
    };
    let ns = |t: &rustix::fs::StatxTimestamp| t.tv_sec * 1_000_000_000 + i64::from(t.tv_nsec);
    FileMeta {
        size: if kind == FileKind::File {
            st.stx_size
        } else {
            0
        },
        kind,
        mode,
        uid: st.stx_uid,
        gid: st.stx_gid,
        mtime_ns: ns(&st.stx_mtime),
        atime_ns: ns(&st.stx_atime),
        ctime_ns: ns(&st.stx_ctime),
        ino: st.stx_ino,
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        nlink: u64::from(st.stx_nlink),
        rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor),
    }
}

/// `statx` of the open directory itself.
pub(crate) fn stat_fd(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<FileMeta> {
    let st = rustix::fs::statx(
        fd,
        c"",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::BASIC_STATS,
    )?;
    Ok(meta_from_statx(&st, None))
}
