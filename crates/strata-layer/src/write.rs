//! Writing layers: a whole directory tree ([`write_layer`]) or an overlayfs upperdir as a diff
//! ([`write_overlay_diff`]), as deterministic tars.
//!
//! Determinism: entries are walked depth first with each directory's names in byte order, so parents
//! come before children; in a diff, a directory's whiteouts come before its other children and its opaque
//! marker right after the directory itself. Headers are filled by hand ([`crate::tarfmt`]): numeric
//! uid/gid with empty names, permission bits with suid/sgid/sticky, whole-second mtimes (clamped to
//! `source_date_epoch` when set), no atime/ctime, xattrs sorted by name. The second and later names of a
//! hardlinked file (same device and inode within the tree) become link entries to the first. Sockets are
//! skipped, as docker does.
//!
//! xattrs kept: `user.*`, `security.capability`, `trusted.*` and the POSIX ACLs; overlayfs's own
//! (`trusted.overlay.*`, `user.overlay.*`) never reach a layer, nor do host labels (`security.selinux`,
//! `security.ima`, ...). In a diff, `trusted.overlay.redirect` and `trusted.overlay.metacopy` make the
//! call fail: with those features the upperdir is not a self-contained diff.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use strata_image::{Digest, Sha256Writer};

use crate::error::WriteError;
use crate::name::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::root::{list_dir, open_child_dir, proc_path};
use crate::tarfmt::{self, EntryHeader, Kind};

/// The identity of a written layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
}

/// Options for [`write_layer`] and [`write_overlay_diff`].
#[derive(Default, Clone, Copy)]
pub struct WriteOptions<'a> {
    /// Clamp every mtime to at most this many seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
    /// Paths (relative to the tree, no leading `/`) to leave out, with everything below them; e.g. the
    /// mount points a runtime created in an upperdir.
    pub exclude: Option<&'a (dyn Fn(&Path) -> bool + Sync)>,
}

impl fmt::Debug for WriteOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteOptions")
            .field("source_date_epoch", &self.source_date_epoch)
            .field("exclude", &self.exclude.map(|_| "<fn>"))
            .finish()
    }
}

/// Writes the tree at `dir` (not including `dir` itself) as a layer tar to `out`.
pub fn write_layer<W: Write>(
    dir: &Path,
    out: W,
    opts: &WriteOptions<'_>,
) -> Result<LayerInfo, WriteError> {
    write_tree(dir, out, opts, false)
}

/// Writes the overlayfs upperdir `upperdir` as an OCI layer: 0/0 character devices become `.wh.<name>`,
/// directories with `trusted.overlay.opaque=y` get a `.wh..wh..opq` marker.
pub fn write_overlay_diff<W: Write>(
    upperdir: &Path,
    out: W,
    opts: &WriteOptions<'_>,
) -> Result<LayerInfo, WriteError> {
    write_tree(upperdir, out, opts, true)
}

/// [`write_overlay_diff`] without digesting: for a destination that digests what it is given
/// anyway (a content store's ingest, whose digest of an uncompressed layer is its diff_id), so
/// the stream is hashed once rather than twice. Returns the size of the tar in bytes.
pub fn write_overlay_diff_unhashed<W: Write>(
    upperdir: &Path,
    out: W,
    opts: &WriteOptions<'_>,
) -> Result<u64, WriteError> {
    let mut counted = write_entries(upperdir, Counting { inner: out, n: 0 }, opts, true)?;
    counted.inner.flush().map_err(WriteError::Write)?;
    Ok(counted.n)
}

fn write_tree<W: Write>(
    dir: &Path,
    out: W,
    opts: &WriteOptions<'_>,
    overlay: bool,
) -> Result<LayerInfo, WriteError> {
    let hashed = write_entries(dir, Sha256Writer::new(out), opts, overlay)?;
    let (diff_id, size, mut inner) = hashed.finish();
    inner.flush().map_err(WriteError::Write)?;
    Ok(LayerInfo { diff_id, size })
}

/// Counts the bytes written through it.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole archive (entries and the end-of-archive blocks) to `out` and returns it.
fn write_entries<W: Write>(
    dir: &Path,
    out: W,
    opts: &WriteOptions<'_>,
    overlay: bool,
) -> Result<W, WriteError> {
    let root = rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_error("opening directory", dir.to_path_buf())(e.into()))?;
    let mut writer = TreeWriter {
        root_path: dir,
        out: BufWriter::with_capacity(256 * 1024, out),
        opts,
        overlay,
        links: HashMap::new(),
        buf: vec![0u8; 256 * 1024],
    };
    if overlay {
        let root_xattrs = writer.xattrs(XattrsOf::Fd(root.as_fd()), Path::new(""))?;
        if root_xattrs.opaque {
            writer.marker(WHITEOUT_OPAQUE.as_bytes())?;
        }
    }
    writer.walk(root)?;
    writer
        .out
        .write_all(&[0u8; 2 * tarfmt::BLOCK])
        .map_err(WriteError::Write)?;
    writer
        .out
        .into_inner()
        .map_err(|e| WriteError::Write(e.into_error()))
}

struct TreeWriter<'a, W: Write> {
    root_path: &'a Path,
    out: BufWriter<W>,
    opts: &'a WriteOptions<'a>,
    overlay: bool,
    /// (dev, ino) of multiply-linked files already written → their tar name.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

struct Xattrs {
    kept: Vec<(Vec<u8>, Vec<u8>)>,
    opaque: bool,
}

/// Where to read an entry's xattrs from.
enum XattrsOf<'a> {
    /// The entry's own open fd.
    Fd(BorrowedFd<'a>),
    /// An entry that cannot be opened (a symlink, a device): `/proc/self/fd/<dir>/<name>`.
    Path(PathBuf),
}

impl XattrsOf<'_> {
    fn at(dir: BorrowedFd<'_>, name: &OsStr) -> Self {
        XattrsOf::Path(proc_path(dir, name))
    }

    fn list(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XattrsOf::Path(p) => rustix::fs::llistxattr(p, buf),
        }
    }

    fn list_query(&self) -> rustix::io::Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::flistxattr_query(fd),
            XattrsOf::Path(p) => rustix::fs::llistxattr_query(p),
        }
    }

    fn get(&self, name: &OsStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            XattrsOf::Path(p) => rustix::fs::lgetxattr(p, name, buf),
        }
    }

    fn get_query(&self, name: &OsStr) -> rustix::io::Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
            XattrsOf::Path(p) => rustix::fs::lgetxattr_query(p, name),
        }
    }
}

fn fs_error(operation: &'static str, path: PathBuf) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError::Fs {
        operation,
        path,
        source,
    }
}

fn keep_xattr(name: &[u8]) -> bool {
    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
        return false;
    }
    name.starts_with(b"user.")
        || name.starts_with(b"trusted.")
        || name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

impl<W: Write> TreeWriter<'_, W> {
    fn host_path(&self, rel: &Path) -> PathBuf {
        self.root_path.join(rel)
    }

    fn clamp(&self, mtime: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }

    /// A whiteout or opaque marker: an empty regular file with fixed metadata, so markers never carry
    /// the accidental owner or time of the device the kernel made.
    fn marker(&mut self, name: &[u8]) -> Result<(), WriteError> {
        let header = EntryHeader {
            name: name.to_vec(),
            kind: Kind::Regular,
            mode: 0o600,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: self.clamp(0),
            link_name: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        };
        tarfmt::write_header(&mut self.out, &header).map_err(WriteError::Write)
    }

    /// The xattrs of an entry: read through its own fd when the entry is open (a regular file
    /// or a directory: no path lookup), else through its parent's fd and its name.
    fn xattrs(&self, at: XattrsOf<'_>, rel: &Path) -> Result<Xattrs, WriteError> {
        let err = |op| fs_error(op, self.host_path(rel));
        let mut list = vec![0u8; 1024];
        let len = loop {
            match at.list(&mut list[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => {
                    let needed = at
                        .list_query()
                        .map_err(|e| err("listing xattrs of")(e.into()))?;
                    list.resize(needed.max(list.len() * 2), 0);
                }
                Err(rustix::io::Errno::NOTSUP) => break 0,
                Err(e) => return Err(err("listing xattrs of")(e.into())),
            }
        };
        let mut names: Vec<&[u8]> = list[..len]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        let mut out = Xattrs {
            kept: Vec::new(),
            opaque: false,
        };
        for key in names {
            let want_value = keep_xattr(key) || (self.overlay && key == b"trusted.overlay.opaque");
            if self.overlay
                && (key == b"trusted.overlay.redirect" || key == b"trusted.overlay.metacopy")
            {
                return Err(WriteError::OverlayFeature {
                    path: self.host_path(rel),
                    xattr: String::from_utf8_lossy(key).into_owned(),
                });
            }
            if !want_value {
                continue;
            }
            let key_os = OsStr::from_bytes(key);
            let mut value = vec![0u8; 256];
            let n = loop {
                match at.get(key_os, &mut value[..]) {
                    Ok(n) => break n,
                    Err(rustix::io::Errno::RANGE) => {
                        let needed = at
                            .get_query(key_os)
                            .map_err(|e| err("reading xattr of")(e.into()))?;
                        value.resize(needed.max(value.len() * 2), 0);
                    }
                    Err(e) => return Err(err("reading xattr of")(e.into())),
                }
            };
            value.truncate(n);
            if key == b"trusted.overlay.opaque" {
                out.opaque = value == b"y";
            } else {
                out.kept.push((key.to_vec(), value));
            }
        }
        Ok(out)
    }

    /// Lists `dir` (the directory at `prefix`, which ends in `/` unless it is the root) sorted by
    /// name, without excluded entries; in a diff, writes its whiteouts first and leaves them out.
    fn children(
        &mut self,
        dir: BorrowedFd<'_>,
        prefix: &[u8],
    ) -> Result<Vec<(OsString, Stat)>, WriteError> {
        let rel_dir = PathBuf::from(OsStr::from_bytes(prefix));
        let mut names =
            list_dir(dir).map_err(|e| fs_error("listing", self.host_path(&rel_dir))(e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            let rel = rel_dir.join(&name);
            if let Some(exclude) = self.opts.exclude
                && exclude(&rel)
            {
                continue;
            }
            let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fs_error("inspecting", self.host_path(&rel))(e.into()))?;
            if self.overlay && is_whiteout(&st) {
                let mut marker = prefix.to_vec();
                marker.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
                marker.extend_from_slice(name.as_bytes());
                self.marker(&marker)?;
                continue;
            }
            children.push((name, st));
        }
        Ok(children)
    }

    /// Writes the tree below `root`, depth first, iteratively: a tree a container made can be deeper
    /// than any stack. One fd stays open per level of the current path.
    fn walk(&mut self, root: OwnedFd) -> Result<(), WriteError> {
        struct Frame {
            fd: OwnedFd,
            /// Length of the path prefix (with its trailing `/`) of this directory's children.
            prefix_len: usize,
            children: std::vec::IntoIter<(OsString, Stat)>,
        }
        let mut path: Vec<u8> = Vec::new();
        let children = self.children(root.as_fd(), &path)?;
        let mut stack = vec![Frame {
            fd: root,
            prefix_len: 0,
            children: children.into_iter(),
        }];
        while let Some(frame) = stack.last_mut() {
            let Some((name, st)) = frame.children.next() else {
                stack.pop();
                continue;
            };
            path.truncate(frame.prefix_len);
            path.extend_from_slice(name.as_bytes());
            let dir = frame.fd.as_fd();
            if let Some(child_fd) = self.entry(dir, &name, &st, &path)? {
                path.push(b'/');
                let children = self.children(child_fd.as_fd(), &path)?;
                stack.push(Frame {
                    fd: child_fd,
                    prefix_len: path.len(),
                    children: children.into_iter(),
                });
            }
        }
        Ok(())
    }

    /// Writes one entry; for a directory, returns it opened so the caller descends into it.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &Stat,
        path: &[u8],
    ) -> Result<Option<OwnedFd>, WriteError> {
        let rel = PathBuf::from(OsStr::from_bytes(path));
        let file_type = FileType::from_raw_mode(st.st_mode);
        if file_type == FileType::Socket {
            return Ok(None);
        }
        // Directories and regular files are opened first so their xattrs are read through
        // the fd, without another path lookup.
        let opened = match file_type {
            FileType::Directory => Some(
                open_child_dir(dir, name)
                    .map_err(|e| fs_error("opening directory", self.host_path(&rel))(e))?,
            ),
            FileType::RegularFile => Some(
                rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fs_error("opening", self.host_path(&rel))(e.into()))?,
            ),
            _ => None,
        };
        let xattrs = match &opened {
            Some(fd) => self.xattrs(XattrsOf::Fd(fd.as_fd()), &rel)?,
            None => self.xattrs(XattrsOf::at(dir, name), &rel)?,
        };
        let mut header = EntryHeader {
            name: path.to_vec(),
            kind: Kind::Regular,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            size: 0,
            mtime: self.clamp(st.st_mtime),
            link_name: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: xattrs.kept,
        };
        match (file_type, opened) {
            (FileType::Directory, Some(child)) => {
                header.kind = Kind::Directory;
                header.name.push(b'/');
                tarfmt::write_header(&mut self.out, &header).map_err(WriteError::Write)?;
                if xattrs.opaque {
                    let mut marker = header.name.clone();
                    marker.extend_from_slice(WHITEOUT_OPAQUE.as_bytes());
                    self.marker(&marker)?;
                }
                return Ok(Some(child));
            }
            (FileType::RegularFile, Some(fd)) => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        header.kind = Kind::Hardlink;
                        header.link_name = first.clone();
                        tarfmt::write_header(&mut self.out, &header).map_err(WriteError::Write)?;
                        return Ok(None);
                    }
                    self.links.insert(key, path.to_vec());
                }
                header.size = st.st_size as u64;
                tarfmt::write_header(&mut self.out, &header).map_err(WriteError::Write)?;
                self.copy_data(fd, header.size, &rel)?;
                return Ok(None);
            }
            _ => {}
        }
        match file_type {
            FileType::Symlink => {
                header.kind = Kind::Symlink;
                header.link_name = rustix::fs::readlinkat(dir, name, Vec::new())
                    .map_err(|e| fs_error("reading symlink", self.host_path(&rel))(e.into()))?
                    .into_bytes();
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                header.kind = if file_type == FileType::CharacterDevice {
                    Kind::Char
                } else {
                    Kind::Block
                };
                header.dev_major = rustix::fs::major(st.st_rdev);
                header.dev_minor = rustix::fs::minor(st.st_rdev);
            }
            FileType::Fifo => header.kind = Kind::Fifo,
            _ => {
                return Err(WriteError::UnsupportedFileType {
                    path: self.host_path(&rel),
                });
            }
        }
        if st.st_nlink > 1 {
            // Devices, fifos and symlinks can be hardlinked too (overlayfs shares whiteout inodes).
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                header.kind = Kind::Hardlink;
                header.link_name = first.clone();
                header.dev_major = 0;
                header.dev_minor = 0;
            } else {
                self.links.insert(key, path.to_vec());
            }
        }
        tarfmt::write_header(&mut self.out, &header).map_err(WriteError::Write)?;
        Ok(None)
    }

    fn copy_data(&mut self, fd: OwnedFd, size: u64, rel: &Path) -> Result<(), WriteError> {
        let mut file = std::fs::File::from(fd);
        let mut copied = 0u64;
        while copied < size {
            let want = (size - copied).min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fs_error("reading", self.host_path(rel))(e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(WriteError::Write)?;
            copied += n as u64;
        }
        if copied != size {
            return Err(WriteError::FileChanged {
                path: self.host_path(rel),
                expected: size,
                found: copied,
            });
        }
        let pad = tarfmt::padding(size);
        self.out
            .write_all(&[0u8; tarfmt::BLOCK][..pad])
            .map_err(WriteError::Write)
    }
}
