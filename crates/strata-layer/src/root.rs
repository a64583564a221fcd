//! A directory handle that resolves untrusted relative paths strictly beneath itself.
//!
//! Every lookup is one `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from the root fd, so `..`
//! components and symlinks (absolute, or relative ones that climb above the root) can never lead
//! outside: the kernel answers `EXDEV` and the caller refuses the entry. The final component is never
//! followed: callers open parents here and then act with `*at(parent_fd, name, AT_SYMLINK_NOFOLLOW)`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::name::CleanPath;

/// Why a path inside the root could not be opened.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// Resolution would leave the root (through `..` or a symlink).
    Escapes,
    /// Any other failure (`ENOENT`, `ENOTDIR`, ...), with the relative path tried.
    Io(PathBuf, io::Error),
}

#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path of `rel`, for error messages only (never used to access the file).
    pub(crate) fn display(&self, rel: &CleanPath) -> PathBuf {
        if rel.is_root() {
            self.path.clone()
        } else {
            self.path.join(rel.as_relative())
        }
    }

    /// The host path of a relative path, for error messages only.
    pub(crate) fn display_relative(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens the directory `rel` (readable, so it can be listed, chowned, chmodded and timed).
    pub(crate) fn open_dir(&self, rel: &CleanPath) -> Result<OwnedFd, ResolveError> {
        let relative = rel.as_relative();
        rustix::fs::openat2(
            self.fd.as_fd(),
            &relative,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|errno| match errno {
            Errno::XDEV => ResolveError::Escapes,
            other => ResolveError::Io(relative, other.into()),
        })
    }

    /// Opens the directory `rel`, creating missing components as root-owned 0755 directories, as
    /// docker does for parents a layer does not list.
    pub(crate) fn open_dir_create(&self, rel: &CleanPath) -> Result<OwnedFd, ResolveError> {
        match self.open_dir(rel) {
            Err(ResolveError::Io(_, e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        // Top-down, iteratively (depth is the tar's to choose), resolving each prefix from the root
        // again so that every component gets the same RESOLVE_BENEATH check.
        let mut prefix = CleanPath::root();
        let mut dir = self.open_dir(&prefix)?;
        for component in rel.components() {
            prefix.push(component.as_bytes());
            match self.open_dir(&prefix) {
                Ok(next) => {
                    dir = next;
                    continue;
                }
                Err(ResolveError::Io(_, e)) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            match rustix::fs::mkdirat(&dir, component, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(ResolveError::Io(prefix.as_relative(), e.into())),
            }
            dir = self.open_dir(&prefix)?;
        }
        Ok(dir)
    }
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Removes `name` in `dir` and, for a directory, everything below it, without following symlinks.
/// Iterative: a tree may be deeper than any stack.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if !is_dir(&st) {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(Into::into);
    }
    // Each frame: an open directory, the names still to remove in it, and its own name.
    let mut stack: Vec<(OwnedFd, Vec<OsString>, OsString)> = Vec::new();
    let top = open_child_dir(dir, name)?;
    let names = list_dir(top.as_fd())?;
    stack.push((top, names, name.to_os_string()));
    while let Some((fd, mut names, own_name)) = stack.pop() {
        let Some(child) = names.pop() else {
            // Empty now: remove it from its parent.
            let parent = stack.last().map_or(dir, |(fd, _, _)| fd.as_fd());
            rustix::fs::unlinkat(parent, &own_name, AtFlags::REMOVEDIR)?;
            continue;
        };
        let child_frame = match lstat_at(fd.as_fd(), &child)? {
            Some(st) if is_dir(&st) => {
                let child_fd = open_child_dir(fd.as_fd(), &child)?;
                let names = list_dir(child_fd.as_fd())?;
                Some((child_fd, names, child))
            }
            Some(_) => {
                rustix::fs::unlinkat(fd.as_fd(), &child, AtFlags::empty())?;
                None
            }
            None => None,
        };
        stack.push((fd, names, own_name));
        stack.extend(child_frame);
    }
    Ok(())
}

/// Opens the directory `name` in `dir`, refusing to follow a symlink.
pub(crate) fn open_child_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

/// The names in a directory (without `.` and `..`), unsorted.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    let mut reader = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = reader.read() {
        let entry = entry?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        names.push(OsStr::from_bytes(bytes).to_os_string());
    }
    Ok(names)
}

/// A path that reaches `name` inside the directory `dir` through procfs, for the few calls that have
/// no fd or `*at` form (`lsetxattr`/`llistxattr`/`lgetxattr` on symlinks and device nodes). The
/// directory part is our own fd, the final component is not followed by the `l*` calls.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    path.push(name);
    path
}
