//! Where COPY/ADD read from: the filtered build context or another rootfs (a stage, an image).
//!
//! [`SourceTree`] is the narrow read interface both provide. Its primitives take paths that
//! contain no symlinks; [`resolve`] turns a Dockerfile path into such a path by following
//! symlinks *inside* the tree, so `link -> /etc/passwd` in a context names the context's own
//! `etc/passwd` (as BuildKit's `fs.RootPath` does) and nothing outside can ever be read.

use crate::paths;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use strata_image::Digest;

/// The type of a filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link and its target as stored.
    Symlink(String),
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A unix socket.
    Socket,
}

/// The `lstat` of an entry, in the units the engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The type.
    pub kind: FileKind,
    /// `st_mode` (type bits and permission bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of a regular file, 0 otherwise.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Access time in nanoseconds since the epoch.
    pub atime_ns: i64,
    /// Status change time in nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device of the inode.
    pub dev: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Device number for device nodes.
    pub rdev: u64,
}

impl FileMeta {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// The permission bits including setuid/setgid/sticky.
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// Whether COPY/ADD carries the extended attribute `name` into a layer (and so into its
/// checksum): every attribute but the kernel's overlay bookkeeping (`trusted.overlay.*`, which
/// would change how the layer's snapshot is read) and, as BuildKit's file sync, macOS
/// metadata (`com.apple.*`).
pub fn is_layer_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") && !name.starts_with(b"com.apple.")
}

/// The extended attributes of an entry that reach a layer, summed: the digest of their
/// canonical encoding ([`xattr_sum`]), or `None` when the entry has none (so an entry without
/// xattrs adds nothing to a COPY checksum and keys computed before xattrs were summed still
/// hold).
pub type XattrSum = Option<Digest>;

/// What a tree knows about an entry without reading it (the build context's stat cache).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Known {
    /// The content digest of a regular file.
    pub content: Option<Digest>,
    /// The extended attributes of a regular file or directory; `None` when unknown.
    pub xattrs: Option<XattrSum>,
}

/// Sums extended attributes `(name, value)`: those [`is_layer_xattr`] keeps, sorted by name,
/// each written as `name NUL len NUL value` into one SHA-256. `None` when none is kept.
pub fn xattr_sum(attrs: &mut [(Vec<u8>, Vec<u8>)]) -> XattrSum {
    attrs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut hasher: Option<Sha256> = None;
    for (name, value) in attrs.iter().filter(|(n, _)| is_layer_xattr(n)) {
        let h = hasher.get_or_insert_with(Sha256::new);
        h.update(name);
        h.update([0]);
        h.update(value.len().to_string());
        h.update([0]);
        h.update(value);
    }
    hasher.map(|h| Digest::from_bytes(h.finalize().into()))
}

/// Reads the extended attributes of `path` (not following a final symlink) that reach a
/// layer and sums them. A filesystem without xattr support has none; an attribute removed
/// between listing and reading is skipped (its removal moved the ctime, so the caller's stat
/// check sees the change).
pub fn read_xattr_sum(path: &Path) -> std::io::Result<XattrSum> {
    read_xattrs_with(
        |names| rustix::fs::llistxattr(path, names),
        |name, value| rustix::fs::lgetxattr(path, name, value),
    )
}

/// [`read_xattr_sum`] through an open descriptor.
pub fn read_xattr_sum_fd(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<XattrSum> {
    read_xattrs_with(
        |names| rustix::fs::flistxattr(fd, names),
        |name, value| rustix::fs::fgetxattr(fd, name, value),
    )
}

fn read_xattrs_with(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&std::ffi::CStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> std::io::Result<XattrSum> {
    use rustix::io::Errno;
    // Most files have no xattrs: one call with a small buffer answers.
    let mut names = vec![0u8; 1024];
    let len = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let needed = list(&mut [])?;
                names.resize(needed.max(names.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    let mut attrs = Vec::new();
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !is_layer_xattr(name) {
            continue;
        }
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 256];
        let got = loop {
            match get(&cname, &mut value) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => {
                    let needed = get(&cname, &mut [])?;
                    value.resize(needed.max(value.len() * 2), 0);
                }
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(n) = got {
            value.truncate(n);
            attrs.push((name.to_vec(), value));
        }
    }
    Ok(xattr_sum(&mut attrs))
}

/// What [`SourceTree::visit_dir`] calls for each entry: its name, its metadata and what the
/// tree knows of it without reading it.
pub type Visit<'a> = dyn FnMut(&str, &FileMeta, Known) -> ControlFlow<()> + 'a;

/// Read access to a tree that COPY/ADD copies from. Paths are relative, `/`-separated,
/// cleaned, with `""` for the root, and contain no symlink components (see [`resolve`]).
pub trait SourceTree: Sync {
    /// The entry at `rel` without following a final symlink; `None` if absent (or filtered).
    fn lstat(&self, rel: &str) -> std::io::Result<Option<FileMeta>>;
    /// The names in directory `rel`, sorted.
    fn list(&self, rel: &str) -> std::io::Result<Vec<String>>;
    /// Calls `visit` with the name and metadata of each entry of directory `rel`, in name
    /// order, and what the tree knows of it without reading it (content digest, xattrs: the
    /// build context's stat cache). Stops when `visit` breaks. The
    /// default lists and stats; trees that hold their entries in memory visit them in place.
    fn visit_dir(&self, rel: &str, visit: &mut Visit<'_>) -> std::io::Result<()> {
        let mut child = String::new();
        for name in self.list(rel)? {
            child.clear();
            if !rel.is_empty() {
                child.push_str(rel);
                child.push('/');
            }
            child.push_str(&name);
            if let Some(meta) = self.lstat(&child)?
                && visit(&name, &meta, Known::default()).is_break()
            {
                break;
            }
        }
        Ok(())
    }
    /// Opens the regular file at `rel` for reading.
    fn open(&self, rel: &str) -> std::io::Result<File>;
    /// The host path of `rel` (used to read extended attributes and in error messages).
    fn host_path(&self, rel: &str) -> PathBuf;
    /// Ownership every entry is given regardless of what the host says (`Some((0, 0))` for the
    /// build context, as BuildKit's file sync resets it), or `None` to keep the source's.
    fn forced_owner(&self) -> Option<(u32, u32)>;
    /// The content digest of the regular file at `rel` if the tree can give it cheaply
    /// (the build context's stat cache); `None` means "read the file".
    fn content_digest(&self, rel: &str) -> Option<std::io::Result<Digest>> {
        let _ = rel;
        None
    }
    /// The extended attributes of the entry at `rel` that reach a layer, summed. The default
    /// reads them; the build context answers from its stat cache when the entry's stat is
    /// unchanged.
    fn xattr_sum(&self, rel: &str) -> std::io::Result<XattrSum> {
        read_xattr_sum(&self.host_path(rel))
    }
}

/// A directory on the host used as a source tree as is: another stage's rootfs or an image's
/// unpacked filesystem. Ownership is kept.
#[derive(Debug, Clone)]
pub struct DirTree {
    root: PathBuf,
    owner: Option<(u32, u32)>,
}

impl DirTree {
    /// A tree rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            owner: None,
        }
    }

    /// A tree whose entries are all given `owner` (e.g. files the engine wrote itself:
    /// heredoc sources and downloads, which BuildKit creates as root).
    pub fn with_owner(root: impl Into<PathBuf>, owner: (u32, u32)) -> Self {
        Self {
            root: root.into(),
            owner: Some(owner),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl SourceTree for DirTree {
    fn lstat(&self, rel: &str) -> std::io::Result<Option<FileMeta>> {
        let host = self.root.join(rel);
        match std::fs::symlink_metadata(&host) {
            Ok(md) => {
                let link = if md.file_type().is_symlink() {
                    Some(std::fs::read_link(&host)?.to_string_lossy().into_owned())
                } else {
                    None
                };
                Ok(Some(crate::context::meta_from_std(&md, link)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.root.join(rel))? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, rel: &str) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.root.join(rel))
    }

    fn host_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn forced_owner(&self) -> Option<(u32, u32)> {
        self.owner
    }
}

/// Why a path could not be resolved inside a tree.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Too many symlinks (a loop).
    #[error("{path:?}: too many levels of symbolic links")]
    Loop {
        /// The path being resolved.
        path: String,
    },
    /// A non-final component is missing or not a directory.
    #[error("{path:?}: not found")]
    NotFound {
        /// The path being resolved.
        path: String,
    },
    /// The tree failed to answer.
    #[error("{path:?}: {source}")]
    Io {
        /// The path being resolved.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

const MAX_LINKS: usize = 40;

/// Resolves `path` (any form; it is confined to the tree first) to a symlink-free relative
/// path, following symlinks inside the tree: an absolute target restarts at the tree's root,
/// a relative one at the link's directory, and `..` never climbs above the root. A final
/// symlink is followed only when `follow_final`. The final component may be missing (the
/// result then names where it would be).
pub fn resolve(
    tree: &dyn SourceTree,
    path: &str,
    follow_final: bool,
) -> Result<String, ResolveError> {
    resolve_impl(tree, path, follow_final, false)
}

/// Like [`resolve`], for a destination that may not exist yet: once a component is missing,
/// the rest of the path is appended lexically (BuildKit's `fs.RootPath` does the same), so the
/// result names where the path will be created. A final symlink is followed.
pub fn resolve_for_create(tree: &dyn SourceTree, path: &str) -> Result<String, ResolveError> {
    resolve_impl(tree, path, true, true)
}

fn resolve_impl(
    tree: &dyn SourceTree,
    path: &str,
    follow_final: bool,
    missing_ok: bool,
) -> Result<String, ResolveError> {
    let mut pending: Vec<String> = paths::confine(path)
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    pending.reverse();
    let mut resolved = String::new();
    let mut links = 0;
    while let Some(component) = pending.pop() {
        if component == "." {
            continue;
        }
        if component == ".." {
            resolved = match resolved.rfind('/') {
                Some(i) => resolved[..i].to_string(),
                None => String::new(),
            };
            continue;
        }
        let candidate = if resolved.is_empty() {
            component.clone()
        } else {
            format!("{resolved}/{component}")
        };
        let is_final = pending.is_empty();
        let meta = tree.lstat(&candidate).map_err(|source| ResolveError::Io {
            path: path.to_string(),
            source,
        })?;
        match meta {
            Some(FileMeta {
                kind: FileKind::Symlink(target),
                ..
            }) if !is_final || follow_final => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ResolveError::Loop {
                        path: path.to_string(),
                    });
                }
                if target.starts_with('/') {
                    resolved.clear();
                }
                for part in target.split('/').rev().filter(|s| !s.is_empty()) {
                    pending.push(part.to_string());
                }
            }
            None if !is_final && missing_ok => {
                let mut rest = vec![candidate];
                rest.extend(pending.drain(..).rev());
                return Ok(paths::confine(&rest.join("/")));
            }
            Some(meta) if !is_final && !meta.is_dir() => {
                return Err(ResolveError::NotFound {
                    path: path.to_string(),
                });
            }
            None if !is_final => {
                return Err(ResolveError::NotFound {
                    path: path.to_string(),
                });
            }
            _ => resolved = candidate,
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn attrs(pairs: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    /// The xattr sum covers exactly what the copier writes: `com.apple.*` (BuildKit's file
    /// sync drops them) and `trusted.overlay.*` are left out, order does not matter, names
    /// and values (with their lengths) do.
    #[test]
    fn xattr_sums_cover_the_layer_xattrs() {
        let sum = |pairs: &[(&str, &[u8])]| xattr_sum(&mut attrs(pairs));
        assert_eq!(sum(&[]), None);
        assert_eq!(
            sum(&[
                ("com.apple.quarantine", b"q"),
                ("trusted.overlay.opaque", b"y")
            ]),
            None
        );
        let base = sum(&[("user.a", b"1"), ("security.capability", b"\x01\x00")]);
        assert!(base.is_some());
        type Pairs<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(Pairs, bool); 6] = [
            (
                &[("security.capability", b"\x01\x00"), ("user.a", b"1")],
                true,
            ),
            (
                &[
                    ("user.a", b"1"),
                    ("com.apple.FinderInfo", b"f"),
                    ("security.capability", b"\x01\x00"),
                ],
                true,
            ),
            (
                &[("user.a", b"2"), ("security.capability", b"\x01\x00")],
                false,
            ),
            (
                &[("user.b", b"1"), ("security.capability", b"\x01\x00")],
                false,
            ),
            (&[("user.a", b"1")], false),
            // One byte moved from one value to the other.
            (
                &[("user.a", b""), ("security.capability", b"\x01\x001")],
                false,
            ),
        ];
        for (pairs, same) in cases {
            assert_eq!(sum(pairs) == base, same, "{pairs:?}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inner").unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../etc/passwd", root.join("a/b/rel")).unwrap();
        symlink("../../../../../../etc/passwd", root.join("a/escape")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        let tree = DirTree::new(root);

        assert_eq!(resolve(&tree, "abs/passwd", true).unwrap(), "etc/passwd");
        assert_eq!(resolve(&tree, "/a/b/rel", true).unwrap(), "etc/passwd");
        assert_eq!(resolve(&tree, "a/b/rel", false).unwrap(), "a/b/rel");
        assert_eq!(resolve(&tree, "a/escape", true).unwrap(), "etc/passwd");
        assert_eq!(
            resolve(&tree, "../../etc/passwd", true).unwrap(),
            "etc/passwd"
        );
        assert_eq!(resolve(&tree, "a/missing", true).unwrap(), "a/missing");
        assert!(matches!(
            resolve(&tree, "missing/x", true),
            Err(ResolveError::NotFound { .. })
        ));
        assert!(matches!(
            resolve(&tree, "etc/passwd/x", true),
            Err(ResolveError::NotFound { .. })
        ));
        assert!(matches!(
            resolve(&tree, "loop1", true),
            Err(ResolveError::Loop { .. })
        ));
    }
}
