//! Applying a layer tar onto a directory: as a merged rootfs ([`apply_layer`]) or as an overlayfs lower
//! directory ([`unpack_overlay_diff`]).
//!
//! Safety model: names are cleaned lexically (`..` above the root is refused, absolute names are
//! relative to the root, see [`crate::name`]); parents are opened with `RESOLVE_BENEATH`, so a symlinked
//! parent that points outside (`link -> /`, `link -> ../../..`) makes the entry fail with
//! [`ApplyError::SymlinkEscapes`] instead of being followed; the entry itself is created with `*at` calls
//! relative to its parent fd that never follow a final symlink. Docker extracts in a chroot and so follows
//! such symlinks inside the rootfs; strata refuses them, which differs only for hand-made tars that write
//! through an absolute symlink (layers produced by a diff never do). Symlink *targets* are stored as
//! given: they are resolved in-root later, by whoever reads the rootfs.
//!
//! Metadata follows docker: ownership from the numeric uid/gid (PAX `uid`/`gid` when present; the names
//! are ignored), applied first because `chown` clears suid bits and `security.capability`; then the mode
//! (with suid/sgid/sticky), the PAX `SCHILY.xattr.*` xattrs, and the mtime. Directory mtimes are set after
//! the whole layer, because creating their children changes them. `trusted.overlay.*` xattrs in a layer
//! are dropped: they would change the meaning of the directory when it becomes an overlay lower.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::Timespec;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use sha2::{Digest as _, Sha256};
use strata_image::Digest;

use crate::compression::decompressed;
use crate::error::ApplyError;
use crate::name::{self, CleanPath, EntryKind, NameError, display_name};
use crate::root::{ResolveError, Root, is_dir, list_dir, lstat_at, proc_path, remove_all_at};

/// What applying a layer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyStats {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
    /// Filesystem entries created or updated (not counting whiteouts).
    pub entries: u64,
    /// Whiteout and opaque markers processed.
    pub whiteouts: u64,
}

/// Applies a layer (plain, gzip or zstd; detected from its bytes) onto the rootfs at `target`.
///
/// Whiteouts delete from `target`, opaque markers empty their directory of everything this layer did not
/// create, and every other entry replaces what is there (a directory over a directory only replaces its
/// attributes). An entry that would escape `target` fails the whole call with an error naming it; entries
/// before it have been applied, nothing outside `target` has been touched.
pub fn apply_layer<R: Read>(reader: R, target: &Path) -> Result<ApplyStats, ApplyError> {
    extract(reader, target, Form::Merged)
}

/// Unpacks a layer into `dir` as an overlayfs lower (or upper) directory: `.wh.<name>` becomes a 0/0
/// character device `<name>`, `<dir>/.wh..wh..opq` becomes the xattr `trusted.overlay.opaque=y` on
/// `<dir>`. `dir` is expected to be empty. Same safety rules as [`apply_layer`].
pub fn unpack_overlay_diff<R: Read>(reader: R, dir: &Path) -> Result<ApplyStats, ApplyError> {
    extract(reader, dir, Form::OverlayDiff)
}

/// What the target directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A rootfs: whiteouts delete, opaque markers empty directories.
    Merged,
    /// An overlayfs layer directory: whiteouts and opaque markers are recorded the kernel's way.
    OverlayDiff,
}

const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

fn extract<R: Read>(reader: R, target: &Path, form: Form) -> Result<ApplyStats, ApplyError> {
    let root = Root::open(target).map_err(|source| ApplyError::Target {
        path: target.to_path_buf(),
        source,
    })?;
    let uncompressed = decompressed(reader).map_err(ApplyError::Read)?;
    let mut hashing = HashingReader {
        inner: uncompressed,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut state = Extractor {
        root: &root,
        form,
        same_owner: rustix::process::geteuid().is_root(),
        unpacked: HashSet::new(),
        unpacked_ancestors: HashSet::new(),
        dir_times: Vec::new(),
        entries: 0,
        whiteouts: 0,
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries().map_err(ApplyError::Read)? {
            let entry = entry.map_err(ApplyError::Read)?;
            state.entry(entry)?;
        }
    }
    // The diff_id covers the whole stream, including the end-of-archive blocks and any padding after
    // them, so drain what the tar reader left.
    io::copy(&mut hashing, &mut io::sink()).map_err(ApplyError::Read)?;
    state.finish_dir_times()?;
    Ok(ApplyStats {
        diff_id: Digest::from_bytes(hashing.hasher.finalize().into()),
        size: hashing.count,
        entries: state.entries,
        whiteouts: state.whiteouts,
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Metadata of one entry, from its header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    atime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Extractor<'a> {
    root: &'a Root,
    form: Form,
    same_owner: bool,
    /// Paths this layer created, which an opaque marker must keep.
    unpacked: HashSet<CleanPath>,
    /// Ancestors of those paths, which an opaque marker must keep (but empty of lower content).
    unpacked_ancestors: HashSet<CleanPath>,
    /// Directory mtimes, set once the whole layer is applied.
    dir_times: Vec<(CleanPath, Timespec, Timespec)>,
    entries: u64,
    whiteouts: u64,
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let raw_name = entry.path_bytes().into_owned();
        let entry_name = display_name(&raw_name);
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            // Global PAX records (e.g. git archive's comment) carry nothing a layer applies.
            return Ok(());
        }
        let classified = name::classify(&raw_name).map_err(|e| match e {
            NameError::Escapes => ApplyError::Escapes {
                entry: entry_name.clone(),
            },
            NameError::InvalidWhiteout => ApplyError::InvalidWhiteout {
                entry: entry_name.clone(),
            },
        })?;
        match classified {
            EntryKind::Whiteout(path) => {
                self.whiteouts += 1;
                self.whiteout(&entry_name, &path)
            }
            EntryKind::Opaque(dir) => {
                self.whiteouts += 1;
                self.opaque(&entry_name, &dir)
            }
            EntryKind::Plain(path) => {
                let meta = read_meta(&mut entry).map_err(ApplyError::Read)?;
                self.entries += 1;
                self.plain(&entry_name, &path, &mut entry, meta)
            }
        }
    }

    fn resolve_error(&self, entry: &Path, err: ResolveError) -> ApplyError {
        match err {
            ResolveError::Escapes => ApplyError::SymlinkEscapes {
                entry: entry.to_path_buf(),
            },
            ResolveError::Io(path, source) => ApplyError::Fs {
                entry: entry.to_path_buf(),
                operation: "opening directory",
                path: self.root.display_relative(&path),
                source,
            },
        }
    }

    fn fs_error(
        &self,
        entry: &Path,
        operation: &'static str,
        path: &CleanPath,
    ) -> impl FnOnce(io::Error) -> ApplyError {
        let entry = entry.to_path_buf();
        let path = self.root.display(path);
        move |source| ApplyError::Fs {
            entry,
            operation,
            path,
            source,
        }
    }

    fn mark_unpacked(&mut self, path: &CleanPath) {
        let mut ancestor = path.parent();
        while !ancestor.is_root() && self.unpacked_ancestors.insert(ancestor.clone()) {
            ancestor = ancestor.parent();
        }
        self.unpacked.insert(path.clone());
    }

    fn whiteout(&mut self, entry: &Path, path: &CleanPath) -> Result<(), ApplyError> {
        let name = path.file_name().unwrap_or_default();
        match self.form {
            Form::Merged => {
                // A whiteout only hides lower layers: what this layer created stays.
                if self.unpacked.contains(path) {
                    return Ok(());
                }
                let parent = match self.root.open_dir(&path.parent()) {
                    Ok(fd) => fd,
                    // Nothing to delete below a missing parent.
                    Err(ResolveError::Io(_, e))
                        if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) =>
                    {
                        return Ok(());
                    }
                    Err(e) => return Err(self.resolve_error(entry, e)),
                };
                remove_all_at(parent.as_fd(), name).map_err(self.fs_error(entry, "removing", path))
            }
            Form::OverlayDiff => {
                let parent = self
                    .root
                    .open_dir_create(&path.parent())
                    .map_err(|e| self.resolve_error(entry, e))?;
                let existing = lstat_at(parent.as_fd(), name).map_err(self.fs_error(
                    entry,
                    "inspecting",
                    path,
                ))?;
                if existing.is_some() {
                    // This layer already has something here, which hides the lower layers by itself.
                    return Ok(());
                }
                rustix::fs::mknodat(&parent, name, FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(|e| self.fs_error(entry, "creating whiteout", path)(e.into()))
            }
        }
    }

    fn opaque(&mut self, entry: &Path, dir: &CleanPath) -> Result<(), ApplyError> {
        match self.form {
            Form::Merged => {
                let fd = match self.root.open_dir(dir) {
                    Ok(fd) => fd,
                    Err(ResolveError::Io(_, e)) if e.raw_os_error() == Some(libc::ENOENT) => {
                        return Ok(());
                    }
                    Err(e) => return Err(self.resolve_error(entry, e)),
                };
                self.clear_lower(entry, fd, dir)
            }
            Form::OverlayDiff => {
                let fd = self
                    .root
                    .open_dir_create(dir)
                    .map_err(|e| self.resolve_error(entry, e))?;
                rustix::fs::fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| self.fs_error(entry, "marking opaque", dir)(e.into()))
            }
        }
    }

    /// Removes everything below `dir` that this layer did not create (the effect of an opaque marker,
    /// whatever its position in the tar). Iterative; kept directories are reopened from the root, which
    /// is safe because their names came from this tar and were resolved beneath the root already.
    fn clear_lower(&self, entry: &Path, fd: OwnedFd, dir: &CleanPath) -> Result<(), ApplyError> {
        let mut pending = vec![(fd, dir.clone())];
        while let Some((fd, dir)) = pending.pop() {
            let names = list_dir(fd.as_fd()).map_err(self.fs_error(entry, "listing", &dir))?;
            for child_name in names {
                let child = dir.join(child_name.as_bytes());
                if !self.unpacked.contains(&child) && !self.unpacked_ancestors.contains(&child) {
                    remove_all_at(fd.as_fd(), &child_name)
                        .map_err(self.fs_error(entry, "removing", &child))?;
                    continue;
                }
                let st = lstat_at(fd.as_fd(), &child_name).map_err(self.fs_error(
                    entry,
                    "inspecting",
                    &child,
                ))?;
                if st.as_ref().is_some_and(is_dir) {
                    let child_fd = self
                        .root
                        .open_dir(&child)
                        .map_err(|e| self.resolve_error(entry, e))?;
                    pending.push((child_fd, child));
                }
            }
        }
        Ok(())
    }

    fn plain<R: Read>(
        &mut self,
        entry_name: &Path,
        path: &CleanPath,
        data: &mut tar::Entry<'_, R>,
        meta: Meta,
    ) -> Result<(), ApplyError> {
        let mut kind = data.header().entry_type();
        if matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
            && data.path_bytes().ends_with(b"/")
        {
            // Pre-POSIX tars mark directories only with a trailing slash; Go's reader does the same.
            kind = tar::EntryType::Directory;
        }
        let Some(name) = path.file_name() else {
            // `./`: the root's own attributes.
            if !kind.is_dir() {
                return Err(ApplyError::RootNotDirectory {
                    entry: entry_name.to_path_buf(),
                });
            }
            let fd = self
                .root
                .open_dir(path)
                .map_err(|e| self.resolve_error(entry_name, e))?;
            self.set_fd_meta(entry_name, path, fd.as_fd(), &meta)?;
            self.dir_times.push((path.clone(), meta.atime, meta.mtime));
            return Ok(());
        };
        let parent = self
            .root
            .open_dir_create(&path.parent())
            .map_err(|e| self.resolve_error(entry_name, e))?;
        let parent = parent.as_fd();

        // Hardlink targets are checked before anything at `path` is removed.
        let link_target = if kind.is_hard_link() {
            let raw = data
                .link_name_bytes()
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let target = CleanPath::parse(&raw).map_err(|_| ApplyError::LinkEscapes {
                entry: entry_name.to_path_buf(),
                target: display_name(&raw),
            })?;
            if &target == path {
                // A link to itself: nothing to do (and removing first would delete the file).
                return Ok(());
            }
            let Some(target_name) = target.file_name().map(OsStr::to_os_string) else {
                return Err(ApplyError::LinkToDirectory {
                    entry: entry_name.to_path_buf(),
                    target: display_name(&raw),
                });
            };
            let target_parent = match self.root.open_dir(&target.parent()) {
                Ok(fd) => fd,
                Err(ResolveError::Escapes) => {
                    return Err(ApplyError::LinkEscapes {
                        entry: entry_name.to_path_buf(),
                        target: display_name(&raw),
                    });
                }
                Err(ResolveError::Io(..)) => {
                    return Err(ApplyError::LinkTargetMissing {
                        entry: entry_name.to_path_buf(),
                        target: display_name(&raw),
                    });
                }
            };
            match lstat_at(target_parent.as_fd(), &target_name).map_err(self.fs_error(
                entry_name,
                "inspecting",
                &target,
            ))? {
                None => {
                    return Err(ApplyError::LinkTargetMissing {
                        entry: entry_name.to_path_buf(),
                        target: display_name(&raw),
                    });
                }
                Some(st) if is_dir(&st) => {
                    return Err(ApplyError::LinkToDirectory {
                        entry: entry_name.to_path_buf(),
                        target: display_name(&raw),
                    });
                }
                Some(_) => {}
            }
            Some((target_parent, target_name))
        } else {
            None
        };

        let existing =
            lstat_at(parent, name).map_err(self.fs_error(entry_name, "inspecting", path))?;
        let mut replaced_whiteout = false;
        if let Some(st) = &existing {
            let dir_over_dir = kind.is_dir() && is_dir(st);
            if !dir_over_dir {
                replaced_whiteout = self.form == Form::OverlayDiff && is_whiteout(st);
                remove_all_at(parent, name).map_err(self.fs_error(entry_name, "removing", path))?;
            }
        }
        self.mark_unpacked(path);
        let err = |op| self.fs_error(entry_name, op, path);

        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| err("creating file")(e.into()))?;
                let mut file = std::fs::File::from(fd);
                io::copy(data, &mut file).map_err(|e| {
                    // A short read is the archive's fault, a failed write the filesystem's.
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        ApplyError::Read(e)
                    } else {
                        err("writing file")(e)
                    }
                })?;
                let fd = OwnedFd::from(file);
                self.set_fd_meta(entry_name, path, fd.as_fd(), &meta)?;
                rustix::fs::futimens(&fd, &times(&meta))
                    .map_err(|e| err("setting times of")(e.into()))?;
            }
            tar::EntryType::Directory => {
                if existing.as_ref().is_none_or(|st| !is_dir(st)) {
                    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| err("creating directory")(e.into()))?;
                }
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err("opening directory")(e.into()))?;
                self.set_fd_meta(entry_name, path, fd.as_fd(), &meta)?;
                if replaced_whiteout {
                    // A directory that replaces a deleted lower path must not show the lower's children.
                    rustix::fs::fsetxattr(&fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(|e| err("marking opaque")(e.into()))?;
                }
                self.dir_times.push((path.clone(), meta.atime, meta.mtime));
            }
            tar::EntryType::Symlink => {
                let target = data
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), parent, name)
                    .map_err(|e| err("creating symlink")(e.into()))?;
                self.set_at_meta(entry_name, path, parent, name, &meta, false)?;
            }
            tar::EntryType::Link => {
                if let Some((target_parent, target_name)) = link_target {
                    rustix::fs::linkat(
                        &target_parent,
                        &target_name,
                        parent,
                        name,
                        AtFlags::empty(),
                    )
                    .map_err(|e| err("creating hardlink")(e.into()))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let header = data.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    parent,
                    name,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| err("creating device node")(e.into()))?;
                self.set_at_meta(entry_name, path, parent, name, &meta, true)?;
            }
            other => {
                return Err(ApplyError::UnsupportedEntryType {
                    entry: entry_name.to_path_buf(),
                    kind: char::from(other.as_byte()),
                });
            }
        }
        Ok(())
    }

    /// Ownership, mode and xattrs through an open fd (regular files, directories).
    fn set_fd_meta(
        &self,
        entry: &Path,
        path: &CleanPath,
        fd: BorrowedFd<'_>,
        meta: &Meta,
    ) -> Result<(), ApplyError> {
        let err = |op| self.fs_error(entry, op, path);
        if self.same_owner {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
            )
            .map_err(|e| err("changing owner of")(e.into()))?;
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| err("changing mode of")(e.into()))?;
        for (key, value) in &meta.xattrs {
            rustix::fs::fsetxattr(fd, OsStr::from_bytes(key), value, XattrFlags::empty())
                .map_err(|e| err("setting xattr on")(e.into()))?;
        }
        Ok(())
    }

    /// Ownership, mode (unless a symlink), xattrs and times of `name` in `parent`, never following it.
    fn set_at_meta(
        &self,
        entry: &Path,
        path: &CleanPath,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        chmod: bool,
    ) -> Result<(), ApplyError> {
        let err = |op| self.fs_error(entry, op, path);
        if self.same_owner {
            rustix::fs::chownat(
                parent,
                name,
                Some(rustix::fs::Uid::from_raw(meta.uid)),
                Some(rustix::fs::Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| err("changing owner of")(e.into()))?;
        }
        if chmod {
            // fchmodat cannot refuse to follow a symlink, but `name` was just created by us as a node.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| err("changing mode of")(e.into()))?;
        }
        if !meta.xattrs.is_empty() {
            let proc = proc_path(parent, name);
            for (key, value) in &meta.xattrs {
                rustix::fs::lsetxattr(&proc, OsStr::from_bytes(key), value, XattrFlags::empty())
                    .map_err(|e| err("setting xattr on")(e.into()))?;
            }
        }
        rustix::fs::utimensat(parent, name, &times(meta), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err("setting times of")(e.into()))
    }

    fn finish_dir_times(&self) -> Result<(), ApplyError> {
        for (path, atime, mtime) in self.dir_times.iter().rev() {
            let entry = path.as_relative();
            let fd = match self.root.open_dir(path) {
                Ok(fd) => fd,
                // Replaced or whited out later in the same layer.
                Err(ResolveError::Io(..)) => continue,
                Err(e) => return Err(self.resolve_error(&entry, e)),
            };
            let ts = Timestamps {
                last_access: *atime,
                last_modification: *mtime,
            };
            rustix::fs::futimens(&fd, &ts)
                .map_err(|e| self.fs_error(&entry, "setting times of", path)(e.into()))?;
        }
        Ok(())
    }
}

fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn times(meta: &Meta) -> Timestamps {
    Timestamps {
        last_access: meta.atime,
        last_modification: meta.mtime,
    }
}

/// Header fields, overridden by PAX records where present.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let invalid = |what: &str, e: io::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let mode = header.mode().map_err(|e| invalid("mode", e))? & 0o7777;
    let mut uid = header.uid().map_err(|e| invalid("uid", e))?;
    let mut gid = header.gid().map_err(|e| invalid("gid", e))?;
    let mtime_secs = header.mtime().map_err(|e| invalid("mtime", e))?;
    let mut mtime = Timespec {
        tv_sec: i64::try_from(mtime_secs).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let mut atime = None;
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions()? {
        for record in pax {
            let record = record?;
            let key = record.key_bytes();
            let value = record.value_bytes();
            match key {
                b"uid" => uid = parse_decimal(value).ok_or_else(|| bad_pax("uid", value))?,
                b"gid" => gid = parse_decimal(value).ok_or_else(|| bad_pax("gid", value))?,
                b"mtime" => mtime = parse_pax_time(value).ok_or_else(|| bad_pax("mtime", value))?,
                b"atime" => {
                    atime = Some(parse_pax_time(value).ok_or_else(|| bad_pax("atime", value))?)
                }
                _ => {
                    if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX)
                        && !name.starts_with(OVERLAY_XATTR_PREFIX)
                    {
                        xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| bad_pax("uid", uid.to_string().as_bytes()))?;
    let gid = u32::try_from(gid).map_err(|_| bad_pax("gid", gid.to_string().as_bytes()))?;
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        atime: atime.unwrap_or(mtime),
        xattrs,
    })
}

fn bad_pax(key: &str, value: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "invalid PAX {key} value {:?}",
            String::from_utf8_lossy(value)
        ),
    )
}

fn parse_decimal(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A PAX time: decimal seconds with an optional fraction, possibly negative (`-1.5`).
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    Some(if negative && nanos > 0 {
        Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nanos,
        }
    } else if negative {
        Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        }
    } else {
        Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1.000000001"), Some((1, 1)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }
}
