//! Paths inside a root filesystem, resolved as if it were `/`.
//!
//! A symlink in an image (`/etc/passwd -> /host/etc/passwd`, `../../..`) must never reach the
//! host: reads go through `openat2(RESOLVE_IN_ROOT)`, and the executor's mount-point bookkeeping
//! resolves destinations component by component the same way runc does (securejoin), so the
//! path it records is the path runc creates.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::fsutil::{IoContext, PathError, lstat};

/// The most symlinks followed in one resolution (the kernel's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Read the file at `path` inside `rootfs`, symlinks resolved in-root; `None` when it does not
/// exist.
pub(crate) fn read_in_root(rootfs: &Path, path: &Path) -> Result<Option<Vec<u8>>, PathError> {
    let root: OwnedFd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .at("open rootfs", rootfs)?;
    let shown = rootfs.join(path.strip_prefix("/").unwrap_or(path));
    let fd = match rustix::fs::openat2(
        &root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(errno) => return Err(errno).at("open", &shown),
    };
    let mut contents = Vec::new();
    File::from(fd)
        .read_to_end(&mut contents)
        .at("read", &shown)?;
    Ok(Some(contents))
}

/// A path inside a rootfs with its symlinks resolved in-root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Absolute, inside the rootfs, free of symlinks and `..` in its existing part.
    pub path: PathBuf,
    /// The first component (as an absolute in-root path) that does not exist, if any.
    pub first_missing: Option<PathBuf>,
}

/// Resolve `path` inside `rootfs`: `..` stops at the root, absolute symlink targets restart at
/// the root, and the walk stops following once a component is missing (the rest is taken
/// lexically, as runc's securejoin does).
pub(crate) fn resolve_in_root(rootfs: &Path, path: &Path) -> Result<Resolved, PathError> {
    let mut pending: Vec<PathBuf> = Vec::new();
    push_components(&mut pending, path);
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut first_missing: Option<usize> = None;
    let mut links = 0usize;
    while let Some(component) = pending.pop() {
        if component.as_os_str() == ".." {
            resolved.pop();
            if first_missing.is_some_and(|index| index >= resolved.len()) {
                first_missing = None;
            }
            continue;
        }
        resolved.push(component.into_os_string());
        if first_missing.is_some() {
            continue;
        }
        let host: PathBuf = std::iter::once(rootfs.as_os_str())
            .chain(resolved.iter().map(|c| c.as_os_str()))
            .collect();
        match lstat(&host)? {
            None => first_missing = Some(resolved.len() - 1),
            Some(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(PathError {
                        action: "resolve",
                        path: host,
                        source: std::io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                let target = std::fs::read_link(&host).at("read link", &host)?;
                resolved.pop();
                if target.is_absolute() {
                    resolved.clear();
                }
                push_components(&mut pending, &target);
            }
            Some(_) => {}
        }
    }
    let to_path = |parts: &[std::ffi::OsString]| -> PathBuf {
        std::iter::once(std::ffi::OsStr::new("/"))
            .chain(parts.iter().map(|c| c.as_os_str()))
            .collect()
    };
    Ok(Resolved {
        path: to_path(&resolved),
        first_missing: first_missing.map(|index| to_path(&resolved[..=index])),
    })
}

/// Push the components of `path` onto a stack so they pop in order.
fn push_components(stack: &mut Vec<PathBuf>, path: &Path) {
    let parts: Vec<PathBuf> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(PathBuf::from(name)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("run/systemd")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("etcabs")).unwrap();
        std::os::unix::fs::symlink("../../../../run/systemd/stub", r.join("etc/resolv.conf"))
            .unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();

        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/etc/hosts", "/etc/hosts", Some("/etc/hosts")),
            ("/etcabs/passwd", "/etc/passwd", None),
            (
                "/etc/resolv.conf",
                "/run/systemd/stub",
                Some("/run/systemd/stub"),
            ),
            ("/../../proc", "/proc", Some("/proc")),
            ("/new/dir/file", "/new/dir/file", Some("/new")),
            ("/new/../etc", "/etc", None),
        ];
        for (input, path, missing) in cases {
            let got = resolve_in_root(r, Path::new(input)).unwrap();
            assert_eq!(got.path, PathBuf::from(path), "{input}");
            assert_eq!(got.first_missing, missing.map(PathBuf::from), "{input}");
        }
    }

    #[test]
    fn reads_do_not_escape_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("passwd"),
            root.path().join("etc/passwd"),
        )
        .unwrap();
        assert_eq!(
            read_in_root(root.path(), Path::new("/etc/passwd")).unwrap(),
            None
        );
    }
}
