//! Filesystem helpers shared by the snapshotters and the executor: the overlay-diff format
//! (whiteouts, opaque directories), metadata-preserving copies and comparisons.
//!
//! Every failure names the path it happened on ([`PathError`]).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};

/// The xattr overlayfs marks an opaque directory with (an upper or lower directory that hides
/// everything below it in lower layers).
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Prefix of the xattrs overlayfs keeps for itself; they never leave a snapshot.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// An I/O error together with what was being done and to which path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct PathError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, PathError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, PathError> {
        self.map_err(|source| PathError {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, PathError> {
        self.map_err(|errno| PathError {
            action,
            path: path.to_path_buf(),
            source: errno.into(),
        })
    }
}

/// `lstat`, with "not found" as `None`.
pub(crate) fn lstat(path: &Path) -> Result<Option<Metadata>, PathError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).at("stat", path),
    }
}

/// An overlay whiteout: a character device with device number 0/0.
pub(crate) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether a directory carries `trusted.overlay.opaque=y`.
pub(crate) fn is_opaque(path: &Path) -> Result<bool, PathError> {
    let mut buf = [0u8; 8];
    match rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf[..]) {
        Ok(len) => Ok(&buf[..len] == b"y"),
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::RANGE) => Ok(false),
        Err(rustix::io::Errno::OPNOTSUPP) => Ok(false),
        Err(errno) => Err(errno).at("read opaque xattr of", path),
    }
}

/// Mark a directory opaque.
pub(crate) fn set_opaque(path: &Path) -> Result<(), PathError> {
    rustix::fs::lsetxattr(path, OPAQUE_XATTR, b"y", rustix::fs::XattrFlags::empty())
        .at("set opaque xattr on", path)
}

/// Create a whiteout (a 0/0 character device) at `path`.
pub(crate) fn make_whiteout(path: &Path) -> Result<(), PathError> {
    rustix::fs::mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), 0)
        .at("create whiteout", path)
}

/// One extended attribute: name and value.
pub(crate) type Xattr = (Vec<u8>, Vec<u8>);

/// The extended attributes of `path` (not following a final symlink), sorted by name, without
/// overlayfs's own `trusted.overlay.*`.
pub(crate) fn xattrs(path: &Path) -> Result<Vec<Xattr>, PathError> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(len) => break len,
            Err(rustix::io::Errno::RANGE) => {
                let needed = rustix::fs::llistxattr_query(path).at("list xattrs of", path)?;
                names.resize(needed.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(errno) => return Err(errno).at("list xattrs of", path),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let name_os = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let value_len = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(len) => break Some(len),
                Err(rustix::io::Errno::RANGE) => {
                    let needed =
                        rustix::fs::lgetxattr_query(path, name_os).at("read xattr of", path)?;
                    value.resize(needed.max(value.len() * 2), 0);
                }
                // Removed between list and get.
                Err(rustix::io::Errno::NODATA) => break None,
                Err(errno) => return Err(errno).at("read xattr of", path),
            }
        };
        if let Some(value_len) = value_len {
            value.truncate(value_len);
            out.push((name.to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn timespec(secs: i64, nanos: i64) -> Timespec {
    Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    }
}

/// Set access and modification times of `path` (not following a final symlink) from `meta`.
pub(crate) fn set_times(path: &Path, meta: &Metadata) -> Result<(), PathError> {
    let times = Timestamps {
        last_access: timespec(meta.atime(), meta.atime_nsec()),
        last_modification: timespec(meta.mtime(), meta.mtime_nsec()),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).at("set times of", path)
}

/// Copy ownership, mode, xattrs (minus overlay's own) and times from `src` to `dst`.
///
/// Ownership goes first: `chown` clears set-id bits, which the `chmod` after it restores.
pub(crate) fn copy_metadata(src: &Path, meta: &Metadata, dst: &Path) -> Result<(), PathError> {
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).at("chown", dst)?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .at("chmod", dst)?;
    }
    for (name, value) in xattrs(src)? {
        match rustix::fs::lsetxattr(
            dst,
            OsStr::from_bytes(&name),
            &value,
            rustix::fs::XattrFlags::empty(),
        ) {
            Ok(()) => {}
            // A filesystem without user xattrs on symlinks, say: keep what can be kept.
            Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::PERM)
                if meta.file_type().is_symlink() => {}
            Err(errno) => return Err(errno).at("set xattr on", dst),
        }
    }
    set_times(dst, meta)
}

/// Hard links seen during one copy: (device, inode) of the source → the first copy made.
pub(crate) type LinkMap = HashMap<(u64, u64), PathBuf>;

/// Copy one non-directory node (file, symlink, fifo, device, socket) with its metadata.
/// A source inode already copied (per `links`) becomes a hard link to that copy.
pub(crate) fn copy_node(
    src: &Path,
    meta: &Metadata,
    dst: &Path,
    links: &mut LinkMap,
) -> Result<(), PathError> {
    if meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = links.get(&key) {
            return fs::hard_link(first, dst).at("hard link", dst);
        }
        links.insert(key, dst.to_path_buf());
    }
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(src).at("read link", src)?;
        std::os::unix::fs::symlink(&target, dst).at("create symlink", dst)?;
    } else if kind.is_file() {
        fs::copy(src, dst).at("copy file to", dst)?;
    } else {
        let file_type = if kind.is_fifo() {
            FileType::Fifo
        } else if kind.is_char_device() {
            FileType::CharacterDevice
        } else if kind.is_block_device() {
            FileType::BlockDevice
        } else {
            FileType::Socket
        };
        rustix::fs::mknodat(
            CWD,
            dst,
            file_type,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .at("create node", dst)?;
    }
    copy_metadata(src, meta, dst)
}

/// Create directory `dst` with the metadata of `src` (times are set by the caller once the
/// directory's children are in place, since adding them changes its mtime).
pub(crate) fn create_dir_like(src: &Path, meta: &Metadata, dst: &Path) -> Result<(), PathError> {
    fs::create_dir(dst).at("create directory", dst)?;
    copy_metadata(src, meta, dst)
}

/// Copy a directory tree, hard links within it kept.
pub(crate) fn copy_tree(src: &Path, dst: &Path, links: &mut LinkMap) -> Result<(), PathError> {
    let meta = fs::symlink_metadata(src).at("stat", src)?;
    if !meta.is_dir() {
        return copy_node(src, &meta, dst, links);
    }
    create_dir_like(src, &meta, dst)?;
    for name in sorted_entries(src)? {
        copy_tree(&src.join(&name), &dst.join(&name), links)?;
    }
    set_times(dst, &meta)
}

/// Names in a directory, sorted, so every walk is deterministic.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<std::ffi::OsString>, PathError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).at("read directory", dir)? {
        names.push(entry.at("read directory", dir)?.file_name());
    }
    names.sort();
    Ok(names)
}

/// Remove whatever is at `path` (a whole tree for a directory); nothing there is fine.
pub(crate) fn remove_all(path: &Path) -> Result<(), PathError> {
    match lstat(path)? {
        None => Ok(()),
        Some(meta) if meta.is_dir() => fs::remove_dir_all(path).at("remove", path),
        Some(_) => fs::remove_file(path).at("remove", path),
    }
}

/// Remove everything inside directory `dir`, keeping `dir` itself.
pub(crate) fn clear_dir(dir: &Path) -> Result<(), PathError> {
    for name in sorted_entries(dir)? {
        remove_all(&dir.join(name))?;
    }
    Ok(())
}

/// Whether two nodes look identical: type, permissions, owner, device number, size, mtime,
/// symlink target and xattrs (overlay's own excluded). File contents are not read: like
/// docker's naive differ, a same-size rewrite within the same mtime nanosecond goes unseen.
pub(crate) fn same_node(
    a: &Path,
    a_meta: &Metadata,
    b: &Path,
    b_meta: &Metadata,
) -> Result<bool, PathError> {
    let same_stat = a_meta.mode() == b_meta.mode()
        && a_meta.uid() == b_meta.uid()
        && a_meta.gid() == b_meta.gid()
        && a_meta.mtime() == b_meta.mtime()
        && a_meta.mtime_nsec() == b_meta.mtime_nsec()
        && (a_meta.is_dir() || a_meta.size() == b_meta.size())
        && a_meta.rdev() == b_meta.rdev();
    if !same_stat {
        return Ok(false);
    }
    if a_meta.file_type().is_symlink()
        && fs::read_link(a).at("read link", a)? != fs::read_link(b).at("read link", b)?
    {
        return Ok(false);
    }
    Ok(xattrs(a)? == xattrs(b)?)
}
