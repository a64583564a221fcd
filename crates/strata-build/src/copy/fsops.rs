//! In-root filesystem operations on a destination rootfs.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against a directory fd of the rootfs,
//! so `..` and absolute symlinks are clamped at the rootfs: a symlink `etc -> /host/etc` planted
//! by an image resolves to `<rootfs>/host/etc`, never to the host's. Entries are then created
//! and changed with `*at` calls relative to their parent directory fd, without following a
//! final symlink.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A destination rootfs opened for in-root operations.
#[derive(Debug)]
pub struct DestRoot {
    fd: OwnedFd,
    path: PathBuf,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl DestRoot {
    /// Opens `path` (a directory: usually the merged overlay mount of the step).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The rootfs directory on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host path of `rel`, for messages only (never for access).
    pub fn display(&self, rel: &str) -> String {
        format!("/{rel}")
    }

    fn rel_or_dot(rel: &str) -> &str {
        if rel.is_empty() { "." } else { rel }
    }

    /// Opens `rel` in-root with `flags` (symlinks, including a final one unless
    /// `O_NOFOLLOW` is given, are resolved inside the root).
    pub fn open_in_root(&self, rel: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
        Ok(rustix::fs::openat2(
            &self.fd,
            Self::rel_or_dot(rel),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?)
    }

    /// Opens directory `rel` in-root for use as a dirfd.
    pub fn open_dir(&self, rel: &str) -> std::io::Result<OwnedFd> {
        self.open_in_root(rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// `lstat` of `rel` in-root (intermediate symlinks followed in-root, a final one not).
    pub fn lstat(&self, rel: &str) -> std::io::Result<Option<rustix::fs::Stat>> {
        match self.open_in_root(rel, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => Ok(Some(rustix::fs::fstat(&fd)?)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a small file (passwd, group) in-root.
    pub fn read_small_file(&self, rel: &str) -> std::io::Result<String> {
        let fd = self.open_in_root(rel, OFlags::RDONLY)?;
        let mut file = std::fs::File::from(fd);
        let mut out = String::new();
        file.by_ref().take(16 << 20).read_to_string(&mut out)?;
        Ok(out)
    }

    /// Creates `rel` and its missing parents as directories with mode 0755, owned by `owner`
    /// (BuildKit chowns created parents to the `--chown` user), like fsutil's `MkdirAll`.
    pub fn mkdir_all(&self, rel: &str, owner: (u32, u32)) -> Result<(), MkdirError> {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        for i in 0..parts.len() {
            let prefix = parts[..=i].join("/");
            match self.open_in_root(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(MkdirError::NotADirectory {
                        path: self.display(&prefix),
                    });
                }
                Err(e) if is_missing(&e) => {}
                Err(source) => {
                    return Err(MkdirError::Io {
                        path: self.display(&prefix),
                        source,
                    });
                }
            }
            let parent = parts[..i].join("/");
            let io = |source| MkdirError::Io {
                path: self.display(&prefix),
                source,
            };
            let parent_fd = self.open_dir(&parent).map_err(io)?;
            match rustix::fs::mkdirat(&parent_fd, parts[i], Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => {
                    // Lost a race, or a dangling symlink whose target is missing.
                    if self
                        .open_in_root(&prefix, OFlags::PATH | OFlags::DIRECTORY)
                        .is_ok()
                    {
                        continue;
                    }
                    return Err(MkdirError::NotADirectory {
                        path: self.display(&prefix),
                    });
                }
                Err(e) => return Err(io(e.into())),
            }
            let dir = rustix::fs::openat(
                &parent_fd,
                parts[i],
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io(e.into()))?;
            rustix::fs::fchown(&dir, Some(uid(owner.0)), Some(gid(owner.1)))
                .map_err(|e| io(e.into()))?;
            // mkdir is subject to the umask; the mode must be exactly 0755.
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o755)).map_err(|e| io(e.into()))?;
        }
        Ok(())
    }
}

/// Failure creating destination directories.
#[derive(Debug, thiserror::Error)]
pub enum MkdirError {
    /// A path component exists and is not a directory.
    #[error("mkdir {path}: not a directory")]
    NotADirectory {
        /// The component (rootfs-absolute).
        path: String,
    },
    /// Another failure.
    #[error("mkdir {path}: {source}")]
    Io {
        /// The component (rootfs-absolute).
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

pub(crate) fn is_missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

pub(crate) fn uid(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

pub(crate) fn gid(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

pub(crate) fn timestamps(atime_ns: i64, mtime_ns: i64) -> Timestamps {
    let ts = |ns: i64| Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    Timestamps {
        last_access: ts(atime_ns),
        last_modification: ts(mtime_ns),
    }
}

/// Sets times on an entry without following a final symlink.
pub(crate) fn set_times_at<Fd: AsFd>(
    dir: Fd,
    name: &str,
    atime_ns: i64,
    mtime_ns: i64,
) -> std::io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &timestamps(atime_ns, mtime_ns),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_all_stays_in_root_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("/inner", dir.path().join("abs")).unwrap();
        std::fs::create_dir(dir.path().join("inner")).unwrap();
        let root = DestRoot::open(dir.path()).unwrap();

        root.mkdir_all("abs/x/y", (0, 0)).unwrap();
        assert!(dir.path().join("inner/x/y").is_dir());

        // The absolute host path in the link is re-rooted: <root>/<outside path> does not exist,
        // and the dangling link is refused instead of followed to the host.
        assert!(root.mkdir_all("escape/evil", (0, 0)).is_err());
        assert!(!outside.path().join("evil").exists());
    }

    #[test]
    fn mkdir_all_sets_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let root = DestRoot::open(dir.path()).unwrap();
        root.mkdir_all("a/b", (123, 456)).unwrap();
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(dir.path().join("a/b")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o755);
        assert_eq!((md.uid(), md.gid()), (123, 456));
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert!(matches!(
            root.mkdir_all("file/x", (0, 0)),
            Err(MkdirError::NotADirectory { .. })
        ));
    }
}
