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
//!   source (or a fixed time); xattrs are copied except the kernel's `trusted.overlay.*`.
//! - Hard links between copied files are recreated as hard links.
//! - An existing destination directory that is the copy root keeps its metadata (only its
//!   times are set from the source), as BuildKit's `overwriteTargetMetadata=false`.

use crate::copy::CopyError;
use crate::copy::fsops::{self, DestRoot};
use crate::copy::mode::Chmod;
use crate::copy::resolve::{Item, ResolvedSource};
use crate::paths;
use crate::source::{self, DirTree, FileKind, FileMeta, SourceTree};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::collections::HashMap;

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
}

/// Copies `source` into `root` at `dest` (rootfs-absolute; a trailing `/` marks a directory).
pub fn copy_source(
    root: &DestRoot,
    tree: &dyn SourceTree,
    source: &ResolvedSource,
    dest: &str,
    attrs: &Attributes,
) -> Result<CopyStats, CopyError> {
    let parent_owner = attrs.chown.unwrap_or((0, 0));
    let dest_tree = DirTree::new(root.path());
    // fsutil: ensure the destination (a trailing slash) or its parent exists.
    let ensure = if dest.ends_with('/') {
        dest.to_string()
    } else {
        paths::dir(dest)
    };
    let ensure_rel = source::resolve_for_create(&dest_tree, &ensure)?;
    root.mkdir_all(&ensure_rel, parent_owner)?;

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

    let mut copier = Copier {
        root,
        tree,
        attrs,
        inodes: HashMap::new(),
        dir_times: Vec::new(),
        stats: CopyStats::default(),
    };
    if src_is_dir {
        copier.copy_dir_root(source, &target)?;
    } else {
        let (parent, name) = split(&target);
        let parent_fd = root.open_dir(parent).map_err(|e| dest_io(parent, e))?;
        copier.copy_entry(&parent_fd, parent, name, &source.root, &source.root_meta)?;
    }
    copier.finish_dirs()?;
    Ok(copier.stats)
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
        // opening it without following symlinks keeps every write inside the root.
        let parent_fd = self
            .root
            .open_in_root(
                parent,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            )
            .map_err(|e| dest_io(parent, e))?;
        if item.meta.is_dir() {
            let created = self.ensure_dir(&parent_fd, &dest_rel, name)?;
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
        // fsutil's ensureEmptyFileTarget: a directory is never replaced by a file.
        match rustix::fs::statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
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

/// Copies extended attributes, best effort: the kernel's overlay bookkeeping
/// (`trusted.overlay.*`) must never be copied, and a filesystem that refuses an attribute
/// (e.g. `security.selinux` without SELinux) does not fail the build.
fn copy_xattrs<Fd: AsFd>(src: &std::path::Path, dst: Fd) {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(src, &mut names[..]) else {
        return;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
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
