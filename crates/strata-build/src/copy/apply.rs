//! The destination side of COPY/ADD: writing resolved sources into a rootfs, following
//! fsutil's copier rules.
//!
//! - The destination's parents are created (0755, owned by the `--chown` user).
//! - A file onto an existing directory goes inside it under its base name; a directory's
//!   contents merge into an existing directory; a file replaces an existing file or symlink
//!   (never writing through the link); a directory onto a file, or a file onto a directory at
//!   the exact target, is an error with BuildKit's message.
//! - Ownership is the `--chown` user, else the tree's forced owner (0:0 for the context),
//!   else the source's; `--chmod` applies to every copied entry; atime/mtime come from the
//!   source (or a fixed time); xattrs are copied except the kernel's `trusted.overlay.*` and,
//!   as BuildKit's file sync, `com.apple.*`.
//! - Hard links between copied files are recreated as hard links.
//! - An existing destination directory that is the copy root keeps its metadata (only its
//!   times are set from the source), as BuildKit's `overwriteTargetMetadata=false`.
//!
//! Incremental copies ([`copy_source_tracked`] with a [`PreviousCopy`]): when the same COPY ran
//! on the same parent before and only some sources changed, a regular file whose source is
//! unchanged (same inode, same ctime — which any change of content, mode, owner or xattrs
//! moves — and same content digest) and whose copy in the previous, committed snapshot carries
//! exactly the mode, owner, size and mtime this copy would give it, is not copied: it is
//! hard-linked from that snapshot into the new upper directory once the view is unmounted
//! ([`link_previous`]). Committed snapshots are never written to (a later step's changes go to
//! its own upper directory, copied up by overlayfs or diffed by the copying snapshotter), so
//! sharing their inodes is safe, and the layer written from the new upper directory is
//! byte-identical to a full copy's. Only files in directories this copy created are linked, so
//! nothing of the parent layers is shadowed differently.

use crate::copy::CopyError;
use crate::copy::fsops::{self, DestRoot};
use crate::copy::mode::Chmod;
use crate::copy::resolve::{Item, ResolvedSource};
use crate::paths;
use crate::source::{self, DirTree, FileKind, FileMeta, SourceTree};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use strata_image::Digest;

/// How copied entries are owned, permissioned and timed.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    /// `--chown`, already resolved to ids.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<Chmod>,
    /// A fixed mtime (and atime) in nanoseconds for every copied entry, instead of the source's.
    pub mtime_ns: Option<i64>,
}

/// Counters of what a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Regular files written.
    pub files: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Regular files left to hard-link from the previous result instead of being copied.
    pub reused: u64,
}

/// What a copied regular file was copied from: the file is unchanged while the same inode
/// has the same ctime (moved by any change of content, mode, owner or xattrs) and the same
/// content digest (which also covers a change within the ctime's granularity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// Device of the source file.
    pub dev: u64,
    /// Inode of the source file.
    pub ino: u64,
    /// Its ctime in nanoseconds.
    pub ctime_ns: i64,
    /// Its content digest.
    pub digest: Digest,
}

/// The previous result of the same copy on the same parent: a committed snapshot (an overlay
/// diff, never written to) and what its regular files were copied from.
#[derive(Debug, Clone, Default)]
pub struct PreviousCopy {
    /// The snapshot directory.
    pub snapshot: PathBuf,
    /// Source identities by destination path (rootfs-relative, no leading `/`).
    pub files: HashMap<String, SourceIdentity>,
}

/// What a tracked copy did and what it leaves to do once the view is unmounted.
#[derive(Debug, Clone, Default)]
pub struct CopyOutcome {
    /// Counters.
    pub stats: CopyStats,
    /// Destination paths to hard-link from the previous snapshot, parents before children.
    pub links: Vec<String>,
    /// Directory (path, atime ns, mtime ns) in creation order, for setting their times again
    /// after the links changed them.
    pub dir_times: Vec<(String, i64, i64)>,
    /// The regular files copied or linked whose source identity is known: the next build's
    /// [`PreviousCopy::files`].
    pub files: Vec<(String, SourceIdentity)>,
}

/// Hard-links every path of `links` from `previous` to the same path under `upper`.
fn link_all(upper: &Path, previous: &Path, links: &[String]) -> Result<(), CopyError> {
    if links.is_empty() {
        return Ok(());
    }
    let mut from = SnapshotDirs::open(previous).map_err(|source| root_error(previous, source))?;
    let mut to = SnapshotDirs::open(upper).map_err(|source| root_error(upper, source))?;
    for rel in links {
        let (parent, name) = split(rel);
        let missing = || dest_io(rel, std::io::ErrorKind::NotFound.into());
        let from_dir = from
            .dir(parent)
            .map_err(|e| dest_io(parent, e))?
            .ok_or_else(missing)?;
        let to_dir = to
            .dir(parent)
            .map_err(|e| dest_io(parent, e))?
            .ok_or_else(missing)?;
        rustix::fs::linkat(from_dir, name, to_dir, name, AtFlags::empty())
            .map_err(|e| errno_io(rel, e))?;
    }
    Ok(())
}

/// Directories of a committed snapshot opened one at a time (files come directory by
/// directory), without following symlinks and without leaving the snapshot.
struct SnapshotDirs {
    root: OwnedFd,
    current: Option<(String, Option<OwnedFd>)>,
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

impl SnapshotDirs {
    fn open(path: &Path) -> std::io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root,
            current: None,
        })
    }

    /// The directory `rel`, or `None` when the snapshot has no such directory.
    fn dir(&mut self, rel: &str) -> std::io::Result<Option<&OwnedFd>> {
        if self.current.as_ref().is_none_or(|(r, _)| r != rel) {
            let fd = match rustix::fs::openat2(
                &self.root,
                if rel.is_empty() { "." } else { rel },
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                BENEATH,
            ) {
                Ok(fd) => Some(fd),
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => None,
                Err(e) => return Err(e.into()),
            };
            self.current = Some((rel.to_string(), fd));
        }
        Ok(self.current.as_ref().and_then(|(_, fd)| fd.as_ref()))
    }
}

/// Incremental-copy state of a [`Copier`].
struct Tracking<'a> {
    previous: Option<(&'a PreviousCopy, SnapshotDirs)>,

    links: Vec<String>,
    files: Vec<(String, SourceIdentity)>,
}

struct Copier<'a> {
    root: &'a DestRoot,
    tree: &'a dyn SourceTree,
    attrs: &'a Attributes,
    /// (dev, ino) of a multiply-linked source file → the rootfs path it was first copied to.
    inodes: HashMap<(u64, u64), String>,
    /// Directories whose times are set once their contents are written (children change a
    /// directory's mtime), in creation order.
    dir_times: Vec<(String, i64, i64)>,
    stats: CopyStats,
    /// Directories this copy created. They held nothing before, and each path of a source is
    /// written once, so an entry in them needs no check for something already there, and
    /// nothing of the parent layers is below it.
    created: HashSet<String>,
    /// The last parent directory opened for an item: items come directory by directory, so
    /// most reuse it instead of resolving their parent's path again.
    parent: Option<(String, std::rc::Rc<OwnedFd>)>,
    tracking: Option<Tracking<'a>>,
}

/// Copies `source` into `root` at `dest` (rootfs-absolute; a trailing `/` marks a directory).
pub fn copy_source(
    root: &DestRoot,
    tree: &dyn SourceTree,
    source: &ResolvedSource,
    dest: &str,
    attrs: &Attributes,
) -> Result<CopyStats, CopyError> {
    copy_source_impl(root, tree, source, dest, attrs, None).map(|o| o.stats)
}

/// [`copy_source`], also recording where every regular file came from and, given the
/// previous result of the same copy on the same parent, leaving unchanged files to be linked
/// from it by [`link_previous`] once the view is unmounted (see the module docs).
///
/// The links are decided per destination path, so `previous` must only be given for a copy
/// of exactly one source (two sources could write the same path).
pub fn copy_source_tracked(
    root: &DestRoot,
    tree: &dyn SourceTree,
    source: &ResolvedSource,
    dest: &str,
    attrs: &Attributes,
    previous: Option<&PreviousCopy>,
) -> Result<CopyOutcome, CopyError> {
    let previous = match previous {
        Some(p) => match SnapshotDirs::open(&p.snapshot) {
            Ok(dirs) => Some((p, dirs)),
            // A pruned previous snapshot only means a full copy.
            Err(_) => None,
        },
        None => None,
    };
    let tracking = Tracking {
        previous,
        links: Vec::new(),
        files: Vec::new(),
    };
    copy_source_impl(root, tree, source, dest, attrs, Some(tracking))
}

fn copy_source_impl<'a>(
    root: &'a DestRoot,
    tree: &'a dyn SourceTree,
    source: &ResolvedSource,
    dest: &str,
    attrs: &'a Attributes,
    tracking: Option<Tracking<'a>>,
) -> Result<CopyOutcome, CopyError> {
    let parent_owner = attrs.chown.unwrap_or((0, 0));
    let dest_tree = DirTree::new(root.path());
    // fsutil: ensure the destination (a trailing slash) or its parent exists.
    let ensure = if dest.ends_with('/') {
        dest.to_string()
    } else {
        paths::dir(dest)
    };
    let ensure_rel = source::resolve_for_create(&dest_tree, &ensure)?;
    let ensure_existed = root
        .lstat(&ensure_rel)
        .map_err(|e| dest_io(&ensure_rel, e))?
        .is_some();
    root.mkdir_all(&ensure_rel, parent_owner)?;
    let mut created = HashSet::new();
    if !ensure_existed {
        created.insert(ensure_rel.trim_end_matches('/').to_string());
    }

    // The destination itself, symlinks followed in-root (BuildKit's fs.RootPath).
    let mut target = source::resolve_for_create(&dest_tree, dest.trim_end_matches('/'))?;
    let existing = root.lstat(&target).map_err(|e| dest_io(&target, e))?;
    let dest_is_dir = existing
        .as_ref()
        .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
    let src_is_dir = source.root_meta.is_dir();
    if !src_is_dir && dest_is_dir {
        target = paths::join(&target, &source.base_name)
            .trim_start_matches('/')
            .to_string();
    }
    let parent_dir = if src_is_dir && existing.is_none() {
        target.clone()
    } else {
        parent_of(&target)
    };
    root.mkdir_all(&parent_dir, parent_owner)?;
    if src_is_dir && existing.is_none() {
        created.insert(target.clone());
    }

    let mut copier = Copier {
        root,
        tree,
        attrs,
        inodes: HashMap::new(),
        dir_times: Vec::new(),
        stats: CopyStats::default(),
        created,
        parent: None,
        tracking,
    };
    if src_is_dir {
        copier.copy_dir_root(source, &target)?;
    } else {
        let (parent, name) = split(&target);
        let parent_fd = root.open_dir(parent).map_err(|e| dest_io(parent, e))?;
        copier.copy_entry(&parent_fd, parent, name, &source.root, &source.root_meta)?;
    }
    copier.finish_dirs()?;
    let (links, files) = match copier.tracking {
        Some(t) => (t.links, t.files),
        None => (Vec::new(), Vec::new()),
    };
    Ok(CopyOutcome {
        stats: copier.stats,
        links,
        dir_times: copier.dir_times,
        files,
    })
}

/// Finishes an incremental copy in the unmounted upper directory `upper`: hard-links every
/// file of `outcome.links` from the previous snapshot `previous`, then sets the times of the
/// directories the links changed back to what the copy gave them.
pub fn link_previous(
    upper: &Path,
    previous: &Path,
    outcome: &CopyOutcome,
) -> Result<(), CopyError> {
    if outcome.links.is_empty() {
        return Ok(());
    }
    // Two threads (the machines this targets have two cores), split at a directory boundary
    // so they do not contend for one directory's lock.
    let links = &outcome.links;
    let mut mid = links.len() / 2;
    while mid < links.len() && mid > 0 && split(&links[mid]).0 == split(&links[mid - 1]).0 {
        mid += 1;
    }
    let (first, second) = links.split_at(mid);
    let (a, b) = std::thread::scope(|scope| {
        let other = scope.spawn(|| link_all(upper, previous, second));
        (link_all(upper, previous, first), other.join())
    });
    a?;
    b.map_err(|_| dest_io("", std::io::Error::other("the linking thread panicked")))??;
    let to = SnapshotDirs::open(upper).map_err(|source| root_error(upper, source))?;
    let touched: HashSet<&str> = links.iter().map(|rel| split(rel).0).collect();
    for (rel, atime, mtime) in outcome.dir_times.iter().rev() {
        if !touched.contains(rel.as_str()) {
            continue;
        }
        let fd = rustix::fs::openat2(
            &to.root,
            if rel.is_empty() { "." } else { rel.as_str() },
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        )
        .map_err(|e| errno_io(rel, e))?;
        rustix::fs::futimens(&fd, &fsops::timestamps(*atime, *mtime))
            .map_err(|e| errno_io(rel, e))?;
    }
    Ok(())
}

/// [`crate::copy::execute`] with tracking: a copy of exactly one source without archive
/// unpacking records where its files came from and, given `previous`, leaves unchanged files to
/// [`link_previous`]; any other copy is executed as usual and reports only its counters.
pub fn execute_tracked(
    rootfs: &Path,
    tree: &dyn SourceTree,
    copy: &crate::copy::PreparedCopy,
    previous: Option<&PreviousCopy>,
) -> Result<CopyOutcome, CopyError> {
    let [source] = copy.sources.as_slice() else {
        return crate::copy::execute(rootfs, tree, copy).map(untracked);
    };
    if copy.unpack {
        return crate::copy::execute(rootfs, tree, copy).map(untracked);
    }
    let (root, attrs) = crate::copy::open_destination(rootfs, copy)?;
    copy_source_tracked(&root, tree, source, &copy.dest, &attrs, previous)
}

fn untracked(stats: CopyStats) -> CopyOutcome {
    CopyOutcome {
        stats,
        ..CopyOutcome::default()
    }
}

fn parent_of(rel: &str) -> String {
    match rel.rfind('/') {
        Some(i) => rel[..i].to_string(),
        None => String::new(),
    }
}

fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn root_error(path: &Path, source: std::io::Error) -> CopyError {
    CopyError::Root {
        path: path.to_path_buf(),
        source,
    }
}

fn dest_io(rel: &str, source: std::io::Error) -> CopyError {
    CopyError::DestIo {
        path: format!("/{rel}"),
        source,
    }
}

fn errno_io(rel: &str, e: rustix::io::Errno) -> CopyError {
    dest_io(rel, e.into())
}

impl Copier<'_> {
    fn owner(&self, meta: &FileMeta) -> (u32, u32) {
        self.attrs
            .chown
            .or(self.tree.forced_owner())
            .unwrap_or((meta.uid, meta.gid))
    }

    fn perms(&self, meta: &FileMeta) -> u32 {
        match &self.attrs.chmod {
            Some(chmod) => chmod.apply(meta.permissions(), meta.is_dir()),
            None => meta.permissions(),
        }
    }

    fn times(&self, meta: &FileMeta) -> (i64, i64) {
        match self.attrs.mtime_ns {
            Some(t) => (t, t),
            None => (meta.atime_ns, meta.mtime_ns),
        }
    }

    /// A directory source: its contents merge into `target`.
    fn copy_dir_root(&mut self, source: &ResolvedSource, target: &str) -> Result<(), CopyError> {
        let created = if target.is_empty() {
            false
        } else {
            let (parent, name) = split(target);
            let parent_fd = self.root.open_dir(parent).map_err(|e| dest_io(parent, e))?;
            self.ensure_dir(&parent_fd, target, name)?
        };
        if created {
            self.created.insert(target.to_string());
        }
        let dir_fd = self.root.open_dir(target).map_err(|e| dest_io(target, e))?;
        if created {
            self.apply_metadata(&dir_fd, target, &source.root, &source.root_meta)?;
        }
        let (atime, mtime) = self.times(&source.root_meta);
        self.dir_times.push((target.to_string(), atime, mtime));
        drop(dir_fd);
        let items = source.items.clone();
        for item in &items {
            self.copy_item(target, item)?;
        }
        Ok(())
    }

    fn copy_item(&mut self, target_root: &str, item: &Item) -> Result<(), CopyError> {
        let dest_rel = join_rel(target_root, &item.rel);
        let (parent, name) = split(&dest_rel);
        // The parent was created (or verified to be a real directory) by an earlier item, so
        // opening it without following symlinks keeps every write inside the root; no item
        // replaces a directory, so the cached fd stays the parent.
        let parent_fd = match &self.parent {
            Some((rel, fd)) if rel == parent => fd.clone(),
            _ => {
                let fd = std::rc::Rc::new(
                    self.root
                        .open_in_root(
                            parent,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                        )
                        .map_err(|e| dest_io(parent, e))?,
                );
                self.parent = Some((parent.to_string(), fd.clone()));
                fd
            }
        };
        if item.meta.is_dir() {
            let created = self.ensure_dir(&parent_fd, &dest_rel, name)?;
            if created {
                self.created.insert(dest_rel.clone());
            }
            if !item.implicit || created {
                let fd = rustix::fs::openat(
                    &parent_fd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                self.apply_metadata(&fd, &dest_rel, &item.src, &item.meta)?;
                let (atime, mtime) = self.times(&item.meta);
                self.dir_times.push((dest_rel, atime, mtime));
            }
            Ok(())
        } else {
            self.copy_entry(&parent_fd, parent, name, &item.src, &item.meta)
        }
    }

    /// Creates directory `name` under `parent_fd` if missing; errors if a non-directory is
    /// there. Returns whether it was created.
    fn ensure_dir(
        &mut self,
        parent_fd: &OwnedFd,
        dest_rel: &str,
        name: &str,
    ) -> Result<bool, CopyError> {
        // In a directory this copy created, only the copy root can already be there (made
        // with its parents): try creating first.
        if self.created.contains(split(dest_rel).0) {
            match rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    self.stats.dirs += 1;
                    return Ok(true);
                }
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(errno_io(dest_rel, e)),
            }
        }
        match rustix::fs::statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(false),
            Ok(_) => Err(CopyError::NotADirectory {
                path: format!("/{dest_rel}"),
            }),
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| errno_io(dest_rel, e))?;
                self.stats.dirs += 1;
                Ok(true)
            }
            Err(e) => Err(errno_io(dest_rel, e)),
        }
    }

    /// Copies a non-directory entry to `name` under `parent_fd`.
    fn copy_entry(
        &mut self,
        parent_fd: &OwnedFd,
        parent: &str,
        name: &str,
        src: &str,
        meta: &FileMeta,
    ) -> Result<(), CopyError> {
        let dest_rel = join_rel(parent, name);
        let existing = if self.created.contains(parent) {
            Err(rustix::io::Errno::NOENT)
        } else {
            rustix::fs::statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW)
        };
        // fsutil's ensureEmptyFileTarget: a directory is never replaced by a file.
        match existing {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(CopyError::ReplaceDirectoryWithFile {
                    path: format!("/{dest_rel}"),
                });
            }
            Ok(_) => rustix::fs::unlinkat(parent_fd, name, AtFlags::empty())
                .map_err(|e| errno_io(&dest_rel, e))?,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(errno_io(&dest_rel, e)),
        }
        match &meta.kind {
            FileKind::File => {
                if meta.nlink > 1
                    && let Some(first) = self.inodes.get(&(meta.dev, meta.ino)).cloned()
                {
                    let first_fd = self
                        .root
                        .open_in_root(&first, OFlags::PATH | OFlags::NOFOLLOW)
                        .map_err(|e| dest_io(&first, e))?;
                    rustix::fs::linkat(&first_fd, "", parent_fd, name, AtFlags::EMPTY_PATH)
                        .map_err(|e| errno_io(&dest_rel, e))?;
                    self.stats.hardlinks += 1;
                    return Ok(());
                }
                if self.track_file(parent, name, &dest_rel, src, meta)? {
                    self.stats.reused += 1;
                    return Ok(());
                }
                let fd = rustix::fs::openat(
                    parent_fd,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                let mut out = std::fs::File::from(fd);
                let mut input = self.tree.open(src).map_err(|e| CopyError::SourceIo {
                    path: format!("/{src}"),
                    source: e,
                })?;
                let n = std::io::copy(&mut input, &mut out).map_err(|e| dest_io(&dest_rel, e))?;
                self.stats.files += 1;
                self.stats.bytes += n;
                let fd = OwnedFd::from(out);
                self.apply_metadata(&fd, &dest_rel, src, meta)?;
                let (atime, mtime) = self.times(meta);
                rustix::fs::futimens(&fd, &fsops::timestamps(atime, mtime))
                    .map_err(|e| errno_io(&dest_rel, e))?;
                if meta.nlink > 1 {
                    self.inodes.insert((meta.dev, meta.ino), dest_rel);
                }
            }
            FileKind::Symlink(target) => {
                rustix::fs::symlinkat(target.as_str(), parent_fd, name)
                    .map_err(|e| errno_io(&dest_rel, e))?;
                let (uid, gid) = self.owner(meta);
                rustix::fs::chownat(
                    parent_fd,
                    name,
                    Some(fsops::uid(uid)),
                    Some(fsops::gid(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                let (atime, mtime) = self.times(meta);
                fsops::set_times_at(parent_fd, name, atime, mtime)
                    .map_err(|e| dest_io(&dest_rel, e))?;
                self.stats.symlinks += 1;
            }
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice | FileKind::Socket => {
                let file_type = FileType::from_raw_mode(meta.mode);
                rustix::fs::mknodat(
                    parent_fd,
                    name,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    meta.rdev,
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                let fd = rustix::fs::openat(
                    parent_fd,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                let (uid, gid) = self.owner(meta);
                rustix::fs::chownat(
                    parent_fd,
                    name,
                    Some(fsops::uid(uid)),
                    Some(fsops::gid(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                rustix::fs::chmodat(
                    parent_fd,
                    name,
                    Mode::from_raw_mode(self.perms(meta)),
                    AtFlags::empty(),
                )
                .map_err(|e| errno_io(&dest_rel, e))?;
                drop(fd);
                let (atime, mtime) = self.times(meta);
                fsops::set_times_at(parent_fd, name, atime, mtime)
                    .map_err(|e| dest_io(&dest_rel, e))?;
            }
            // Directories are handled by copy_dir_root/copy_item and never get here.
            FileKind::Dir => {}
        }
        Ok(())
    }

    /// Records where a regular file comes from (when tracking) and decides whether it is
    /// linked from the previous result instead of copied: true means "leave it to
    /// [`link_previous`]".
    fn track_file(
        &mut self,
        parent: &str,
        name: &str,
        dest_rel: &str,
        src: &str,
        meta: &FileMeta,
    ) -> Result<bool, CopyError> {
        let owner = self.owner(meta);
        let perms = self.perms(meta);
        let (_, mtime) = self.times(meta);
        let Some(t) = self.tracking.as_mut() else {
            return Ok(false);
        };
        // A multiply-linked source keeps its links through the copier's inode map, and a
        // directory that was already there may hold something of the parent: copy those.
        if meta.nlink != 1 || !self.created.contains(parent) {
            return Ok(false);
        }
        let digest = match self.tree.content_digest(src) {
            Some(result) => result.map_err(|e| CopyError::SourceIo {
                path: format!("/{src}"),
                source: e,
            })?,
            None => return Ok(false),
        };
        let identity = SourceIdentity {
            dev: meta.dev,
            ino: meta.ino,
            ctime_ns: meta.ctime_ns,
            digest,
        };
        let reuse = match t.previous.as_mut() {
            Some((previous, dirs)) if previous.files.get(dest_rel) == Some(&identity) => match dirs
                .dir(parent)
            {
                Ok(Some(dir)) => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => {
                        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                            && st.st_size as u64 == meta.size
                            && st.st_mode & 0o7777 == perms
                            && (st.st_uid, st.st_gid) == owner
                            && st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64 == mtime
                    }
                    Err(_) => false,
                },
                _ => false,
            },
            _ => false,
        };
        t.files.push((dest_rel.to_string(), identity));
        if reuse {
            t.links.push(dest_rel.to_string());
        }
        Ok(reuse)
    }

    /// Owner, then mode (chown clears setuid bits, so the order matters), then xattrs.
    fn apply_metadata(
        &self,
        fd: &OwnedFd,
        dest_rel: &str,
        src: &str,
        meta: &FileMeta,
    ) -> Result<(), CopyError> {
        let (uid, gid) = self.owner(meta);
        rustix::fs::fchown(fd, Some(fsops::uid(uid)), Some(fsops::gid(gid)))
            .map_err(|e| errno_io(dest_rel, e))?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.perms(meta)))
            .map_err(|e| errno_io(dest_rel, e))?;
        copy_xattrs(&self.tree.host_path(src), fd);
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<(), CopyError> {
        for (rel, atime, mtime) in self.dir_times.iter().rev() {
            let fd = self
                .root
                .open_in_root(rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW)
                .map_err(|e| dest_io(rel, e))?;
            rustix::fs::futimens(&fd, &fsops::timestamps(*atime, *mtime))
                .map_err(|e| errno_io(rel, e))?;
        }
        Ok(())
    }
}

/// Copies extended attributes, best effort: only those [`source::is_layer_xattr`] keeps, and
/// a filesystem that refuses an attribute
/// (e.g. `security.selinux` without SELinux) does not fail the build.
fn copy_xattrs<Fd: AsFd>(src: &std::path::Path, dst: Fd) {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names[..]) else {
        return;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !source::is_layer_xattr(name) {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let mut value = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(src, name, &mut value[..]) {
            let _ =
                rustix::fs::fsetxattr(&dst, name, &value[..len], rustix::fs::XattrFlags::empty());
        }
    }
}
