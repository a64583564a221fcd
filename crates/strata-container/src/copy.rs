//! `cp` between a container and the host, with docker's rules and without following a
//! container's symlinks out of its root, in either direction.
//!
//! Both directions are one tar stream between two walkers:
//!
//! - the **reader** opens the source's parent with `openat2(RESOLVE_IN_ROOT)` on the container's
//!   root (so `/escape -> /` or `/x -> /etc` resolve to the container's `/` and `/etc`, as they
//!   would inside it), never follows the final component (a symlink is copied as a symlink), and
//!   walks below it with `O_NOFOLLOW` `*at` calls only;
//! - the **writer** resolves every entry's parent with `openat2(RESOLVE_IN_ROOT)` on the
//!   destination root and creates the final component with `*at` calls that do not follow it.
//!   The host side of `cp CONTAINER:SRC DEST` is written the same way, confined to the
//!   destination directory, so a symlink the container put in the stream cannot redirect a
//!   later entry either.
//!
//! Which name the copy gets follows docker (`plan`): into an existing directory under the
//! source's name (or its contents, for `SRC/.`), over an existing file, or as a new path whose
//! parent exists. `-` is a tar stream on stdin (extracted into a directory) or stdout.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timestamps};
use rustix::io::Errno;

use crate::containers::{Container, Containers};
use crate::error::{ContainerError, CopyReason, IoContext, Result};

/// The host side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEndpoint {
    /// A host path (relative to the current directory, or absolute).
    Path(PathBuf),
    /// `-`: a tar stream on stdin or stdout.
    Stream,
}

impl CopyEndpoint {
    pub fn parse(arg: &str) -> Self {
        if arg == "-" {
            Self::Stream
        } else {
            Self::Path(PathBuf::from(arg))
        }
    }
}

/// What exists at a copy's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DestState {
    Missing,
    Dir,
    NonDir,
}

/// Where the copy lands: in the destination itself (an existing directory) or in its parent,
/// and under which name (`None`: the source directory's children go straight in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub into_parent: bool,
    pub top: Option<OsString>,
}

/// docker's `cp` rules for a source (a directory or not; `SRC/.` copies contents) onto a
/// destination (`dest_slash`: it was written with a trailing `/`).
pub(crate) fn plan(
    src_is_dir: bool,
    contents_only: bool,
    src_name: &OsStr,
    dest: DestState,
    dest_slash: bool,
    dest_name: &OsStr,
) -> std::result::Result<Plan, CopyReason> {
    match dest {
        DestState::Dir if contents_only => Ok(Plan {
            into_parent: false,
            top: None,
        }),
        DestState::Dir => Ok(Plan {
            into_parent: false,
            top: Some(src_name.to_owned()),
        }),
        DestState::NonDir if src_is_dir => Err(CopyReason::DirectoryOntoFile),
        DestState::NonDir if dest_slash => Err(CopyReason::NotADirectory),
        DestState::Missing if dest_slash && !src_is_dir => Err(CopyReason::MissingDirectory),
        DestState::NonDir | DestState::Missing => Ok(Plan {
            into_parent: true,
            top: Some(dest_name.to_owned()),
        }),
    }
}

/// A path as written by the user: cleaned lexically (`..` clamped at the root, as inside the
/// container), with its docker-relevant suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserPath {
    /// Relative components, clean.
    pub components: Vec<OsString>,
    /// Written with a trailing `/.`.
    pub contents_only: bool,
    /// Written with a trailing `/` (or `/.`).
    pub trailing_slash: bool,
}

impl UserPath {
    pub(crate) fn parse(raw: &str) -> Self {
        let contents_only = raw == "." || raw.ends_with("/.");
        let trailing_slash = contents_only || raw.ends_with('/');
        let mut components: Vec<OsString> = Vec::new();
        for c in Path::new(raw).components() {
            match c {
                Component::Normal(name) => components.push(name.to_owned()),
                Component::ParentDir => {
                    components.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Self {
            components,
            contents_only,
            trailing_slash,
        }
    }

    /// The relative path (`.` for the root).
    fn relative(&self) -> PathBuf {
        if self.components.is_empty() {
            PathBuf::from(".")
        } else {
            self.components.iter().collect()
        }
    }

    fn parent(&self) -> PathBuf {
        match self.components.split_last() {
            Some((_, rest)) if !rest.is_empty() => rest.iter().collect(),
            _ => PathBuf::from("."),
        }
    }

    fn name(&self) -> Option<&OsStr> {
        self.components.last().map(OsString::as_os_str)
    }
}

/// A root directory every path is resolved inside of.
struct Root {
    fd: OwnedFd,
    /// For messages: the container id, or the host directory.
    label: Label,
}

#[derive(Clone)]
enum Label {
    Container(String),
    Host(PathBuf),
}

impl Root {
    fn open(dir: &Path, label: Label) -> Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .at("open", dir)?;
        Ok(Root { fd, label })
    }

    fn error(&self, path: &Path, reason: CopyReason) -> ContainerError {
        match &self.label {
            Label::Container(id) => ContainerError::CopyPath {
                id: id.clone(),
                path: format!("/{}", path.display()).replace("/./", "/"),
                reason,
            },
            Label::Host(dir) => ContainerError::HostPath {
                path: dir.join(path),
                reason,
            },
        }
    }

    fn io_error(&self, action: &'static str, path: &Path, errno: Errno) -> ContainerError {
        match errno {
            Errno::NOENT => self.error(path, CopyReason::NotFound),
            Errno::NOTDIR => self.error(path, CopyReason::NotADirectory),
            Errno::XDEV => self.error(path, CopyReason::Escapes),
            errno => ContainerError::Io {
                action,
                path: match &self.label {
                    Label::Container(_) => path.to_owned(),
                    Label::Host(dir) => dir.join(path),
                },
                source: errno.into(),
            },
        }
    }

    /// Opens `rel` inside the root, following symlinks as the root's own `/` would.
    fn open_in(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd> {
        rustix::fs::openat2(
            &self.fd,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| self.io_error("open", rel, e))
    }

    fn open_dir(&self, rel: &Path) -> Result<OwnedFd> {
        self.open_in(rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// What is at `rel` (following symlinks in-root), `Missing` when nothing is.
    fn state(&self, rel: &Path) -> Result<DestState> {
        match rustix::fs::openat2(
            &self.fd,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => {
                let stat = rustix::fs::fstat(&fd).map_err(|e| self.io_error("stat", rel, e))?;
                Ok(
                    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
                        DestState::Dir
                    } else {
                        DestState::NonDir
                    },
                )
            }
            Err(Errno::NOENT) => Ok(DestState::Missing),
            Err(e) => Err(self.io_error("stat", rel, e)),
        }
    }
}

/// The source of a copy, opened.
enum Source {
    /// A directory whose children are copied (`SRC/.`), or which is copied under a new name.
    Dir(OwnedFd),
    /// An entry (not followed) in an opened parent directory.
    Entry { parent: OwnedFd, name: OsString },
}

impl Source {
    fn open(root: &Root, path: &UserPath) -> Result<(Source, bool, OsString)> {
        let name = path
            .name()
            .map_or_else(|| OsString::from("."), OsStr::to_owned);
        if path.trailing_slash || path.components.is_empty() {
            let fd = root.open_dir(&path.relative())?;
            return Ok((Source::Dir(fd), true, name));
        }
        // Name the path asked for, not the parent that failed to resolve.
        let parent = root.open_dir(&path.parent()).map_err(|e| match e {
            ContainerError::CopyPath { id, reason, .. } => ContainerError::CopyPath {
                id,
                path: format!("/{}", path.relative().display()),
                reason,
            },
            ContainerError::HostPath { reason, .. } => ContainerError::HostPath {
                path: Path::new("/").join(path.relative()),
                reason,
            },
            other => other,
        })?;
        let last = path.name().unwrap_or(OsStr::new("."));
        let stat = rustix::fs::statat(&parent, last, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| root.io_error("stat", &path.relative(), e))?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        Ok((
            Source::Entry {
                parent,
                name: last.to_owned(),
            },
            is_dir,
            name,
        ))
    }

    /// Writes the source as a tar stream: under `top` (the entry itself, renamed), or its
    /// children at the top level (`None`).
    fn write_tar<W: Write>(&self, out: W, top: Option<&OsStr>) -> io::Result<W> {
        let mut builder = tar::Builder::new(out);
        match (self, top) {
            (Source::Dir(fd), Some(top)) => {
                let stat = rustix::fs::fstat(fd)?;
                append_header(&mut builder, &stat, top.as_bytes(), None)?;
                write_children(&mut builder, fd.as_fd(), top.as_bytes())?;
            }
            (Source::Dir(fd), None) => write_children(&mut builder, fd.as_fd(), b"")?,
            (Source::Entry { parent, name }, top) => {
                let archive_name = top.unwrap_or(name);
                write_entry(&mut builder, parent.as_fd(), name, archive_name.as_bytes())?;
            }
        }
        builder.into_inner()
    }
}

fn join_name(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        let mut out = prefix.to_vec();
        out.push(b'/');
        out.extend_from_slice(name);
        out
    }
}

/// The header fields of `stat`, for `archive_name`; `link` for symlinks.
fn append_header<W: Write>(
    builder: &mut tar::Builder<W>,
    stat: &Stat,
    archive_name: &[u8],
    link: Option<&[u8]>,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    let kind = FileType::from_raw_mode(stat.st_mode);
    header.set_entry_type(match kind {
        FileType::Directory => tar::EntryType::Directory,
        FileType::Symlink => tar::EntryType::Symlink,
        FileType::Fifo => tar::EntryType::Fifo,
        FileType::CharacterDevice => tar::EntryType::Char,
        FileType::BlockDevice => tar::EntryType::Block,
        _ => tar::EntryType::Regular,
    });
    header.set_mode(stat.st_mode & 0o7777);
    header.set_uid(u64::from(stat.st_uid));
    header.set_gid(u64::from(stat.st_gid));
    header.set_mtime(u64::try_from(stat.st_mtime).unwrap_or(0));
    header.set_size(0);
    if matches!(kind, FileType::CharacterDevice | FileType::BlockDevice) {
        header.set_device_major(rustix::fs::major(stat.st_rdev))?;
        header.set_device_minor(rustix::fs::minor(stat.st_rdev))?;
    }
    let mut name = archive_name.to_vec();
    if kind == FileType::Directory {
        name.push(b'/');
    }
    let path = Path::new(OsStr::from_bytes(&name));
    match link {
        Some(target) => builder.append_link(&mut header, path, OsStr::from_bytes(target)),
        None => builder.append_data(&mut header, path, io::empty()),
    }
}

/// Writes `name` in `dir` (never following it) and, for a directory, everything below.
fn write_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    archive_name: &[u8],
) -> io::Result<()> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            append_header(builder, &stat, archive_name, None)?;
            write_children(builder, fd.as_fd(), archive_name)
        }
        FileType::RegularFile => {
            let fd = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let file = File::from(fd);
            let stat = rustix::fs::fstat(&file)?;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(stat.st_mode & 0o7777);
            header.set_uid(u64::from(stat.st_uid));
            header.set_gid(u64::from(stat.st_gid));
            header.set_mtime(u64::try_from(stat.st_mtime).unwrap_or(0));
            header.set_size(u64::try_from(stat.st_size).unwrap_or(0));
            // A file that changes while copied must not desynchronize the stream.
            let reader = file.take(header.size()?);
            builder.append_data(
                &mut header,
                Path::new(OsStr::from_bytes(archive_name)),
                reader,
            )
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            append_header(builder, &stat, archive_name, Some(target.as_bytes()))
        }
        FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
            append_header(builder, &stat, archive_name, None)
        }
        // Sockets and unknown types have no tar form.
        _ => Ok(()),
    }
}

fn write_children<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    prefix: &[u8],
) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    for name in names {
        write_entry(
            builder,
            dir,
            OsStr::from_bytes(&name),
            &join_name(prefix, &name),
        )?;
    }
    Ok(())
}

/// Extracts a tar stream into directory `dest` inside `root`, every path resolved in-root.
/// `owner`: force this uid/gid (a copy into a container is owned by its root, as docker does).
fn extract<R: Read>(root: &Root, dest: &Path, reader: R, owner: Option<(u32, u32)>) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().at("read the tar stream of", dest)?;
    for entry in entries {
        let mut entry = entry.at("read the tar stream of", dest)?;
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = clean_entry_name(&raw) else {
            return Err(root.error(Path::new(OsStr::from_bytes(&raw)), CopyReason::Escapes));
        };
        if rel.as_os_str().is_empty() {
            continue; // `./`: the destination itself
        }
        let full = dest.join(&rel);
        let parent_rel = full
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let parent_rel = if parent_rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent_rel
        };
        let name = full.file_name().unwrap_or(OsStr::new(".")).to_owned();
        let parent = root.open_dir(&parent_rel)?;
        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let (uid, gid) = owner.unwrap_or((
            header
                .uid()
                .ok()
                .and_then(|u| u32::try_from(u).ok())
                .unwrap_or(0),
            header
                .gid()
                .ok()
                .and_then(|g| u32::try_from(g).ok())
                .unwrap_or(0),
        ));
        let mtime = header.mtime().unwrap_or(0);
        let fail = |action: &'static str| {
            let full = full.clone();
            move |e: Errno| root.io_error(action, &full, e)
        };
        let existing = rustix::fs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir = existing
            .as_ref()
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        let kind = header.entry_type();
        if kind.is_dir() {
            if !existing_dir {
                if existing.is_some() {
                    rustix::fs::unlinkat(&parent, &name, AtFlags::empty())
                        .map_err(fail("replace"))?;
                }
                rustix::fs::mkdirat(&parent, &name, mode).map_err(fail("create directory"))?;
            }
            let fd = rustix::fs::openat(
                &parent,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(fail("open"))?;
            rustix::fs::fchmod(&fd, mode).map_err(fail("chmod"))?;
            set_owner(&parent, &name, uid, gid).map_err(fail("chown"))?;
            continue;
        }
        if existing_dir {
            return Err(root.error(&full, CopyReason::DirectoryOntoFile));
        }
        if existing.is_some() {
            rustix::fs::unlinkat(&parent, &name, AtFlags::empty()).map_err(fail("replace"))?;
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &parent,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(fail("create"))?;
                let mut file = File::from(fd);
                io::copy(&mut entry, &mut file).at("write", &full)?;
                rustix::fs::fchmod(&file, mode).map_err(fail("chmod"))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent, &name)
                    .map_err(fail("create symlink"))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let Some(target_rel) = clean_entry_name(&target) else {
                    return Err(root.error(&full, CopyReason::Escapes));
                };
                let target_full = dest.join(target_rel);
                let target_parent =
                    root.open_dir(target_full.parent().unwrap_or(Path::new(".")))?;
                let target_name = target_full.file_name().unwrap_or(OsStr::new("."));
                rustix::fs::linkat(
                    &target_parent,
                    target_name,
                    &parent,
                    &name,
                    AtFlags::empty(),
                )
                .map_err(fail("link"))?;
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                let file_type = match kind {
                    tar::EntryType::Fifo => FileType::Fifo,
                    tar::EntryType::Char => FileType::CharacterDevice,
                    _ => FileType::BlockDevice,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent, &name, file_type, mode, dev)
                    .map_err(fail("create node"))?;
            }
            // Extended headers are consumed by the tar reader; other types are skipped.
            _ => continue,
        }
        set_owner(&parent, &name, uid, gid).map_err(fail("chown"))?;
        let time = rustix::fs::Timespec {
            tv_sec: i64::try_from(mtime).unwrap_or(0),
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: time,
            last_modification: time,
        };
        rustix::fs::utimensat(&parent, &name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(fail("set times"))?;
    }
    Ok(())
}

fn set_owner(parent: &OwnedFd, name: &OsStr, uid: u32, gid: u32) -> rustix::io::Result<()> {
    let (uid, gid) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    rustix::fs::chownat(
        parent,
        name,
        Some(uid),
        Some(gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// A tar entry name as a clean relative path; `None` when it is absolute or climbs out.
fn clean_entry_name(raw: &[u8]) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Streams `source` as a tar into `consume` through a pipe (the reader runs in a thread).
fn pipe_tar(
    source: Source,
    top: Option<OsString>,
    consume: impl FnOnce(io::PipeReader) -> Result<()>,
) -> Result<()> {
    let (reader, writer) = io::pipe().at("create", "a pipe")?;
    let producer = std::thread::spawn(move || source.write_tar(writer, top.as_deref()).map(drop));
    let consumed = consume(reader);
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the tar writer panicked")));
    consumed?;
    produced.at("read the copy source", "")
}

/// `cp CONTAINER:SRC DEST` on a root filesystem directory `rootfs`; `stdout` receives the
/// stream when `dest` is [`CopyEndpoint::Stream`].
pub fn copy_out(
    rootfs: &Path,
    id: &str,
    src: &str,
    dest: &CopyEndpoint,
    stdout: &mut dyn Write,
) -> Result<()> {
    let root = Root::open(rootfs, Label::Container(id.to_owned()))?;
    let src_path = UserPath::parse(src);
    let (source, is_dir, src_name) = Source::open(&root, &src_path)?;
    let dest = match dest {
        CopyEndpoint::Stream => {
            let top = if src_path.contents_only {
                None
            } else {
                Some(src_name)
            };
            return pipe_tar(source, top, |mut reader| {
                io::copy(&mut reader, stdout).at("write", "stdout")?;
                Ok(())
            });
        }
        CopyEndpoint::Path(dest) => dest,
    };
    let raw = dest.as_os_str().as_bytes();
    let dest_slash = raw.ends_with(b"/") || raw.ends_with(b"/.");
    let absolute = std::path::absolute(dest).at("resolve", dest)?;
    let state = match std::fs::metadata(&absolute) {
        Ok(m) if m.is_dir() => DestState::Dir,
        Ok(_) => DestState::NonDir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => DestState::Missing,
        Err(e) => return Err(e).at("stat", absolute),
    };
    let dest_name = absolute.file_name().unwrap_or(OsStr::new(".")).to_owned();
    let plan = plan(
        is_dir,
        src_path.contents_only,
        &src_name,
        state,
        dest_slash,
        &dest_name,
    )
    .map_err(|reason| ContainerError::HostPath {
        path: dest.clone(),
        reason,
    })?;
    let target_dir = if plan.into_parent {
        absolute.parent().unwrap_or(Path::new("/")).to_path_buf()
    } else {
        absolute.clone()
    };
    if !target_dir.is_dir() {
        return Err(ContainerError::HostPath {
            path: target_dir,
            reason: CopyReason::MissingDirectory,
        });
    }
    let host = Root::open(&target_dir, Label::Host(target_dir.clone()))?;
    pipe_tar(source, plan.top, |reader| {
        extract(&host, Path::new("."), reader, None)
    })
}

/// `cp SRC CONTAINER:DEST` on a root filesystem directory `rootfs`; `stdin` is read when `src`
/// is [`CopyEndpoint::Stream`] (a tar extracted into the directory `dest`).
pub fn copy_in(
    rootfs: &Path,
    id: &str,
    src: &CopyEndpoint,
    dest: &str,
    stdin: &mut dyn Read,
) -> Result<()> {
    let root = Root::open(rootfs, Label::Container(id.to_owned()))?;
    let dest_path = UserPath::parse(dest);
    let state = root.state(&dest_path.relative())?;
    let src = match src {
        CopyEndpoint::Stream => {
            if state != DestState::Dir {
                return Err(root.error(&dest_path.relative(), CopyReason::NotADirectory));
            }
            return extract(&root, &dest_path.relative(), stdin, Some((0, 0)));
        }
        CopyEndpoint::Path(src) => src,
    };
    let raw = src.as_os_str().to_owned().into_vec();
    let raw = String::from_utf8_lossy(&raw);
    let absolute = std::path::absolute(src).at("resolve", src)?;
    let host_path = UserPath::parse(&absolute.to_string_lossy());
    let src_path = UserPath {
        contents_only: raw == "." || raw.ends_with("/."),
        trailing_slash: raw.ends_with('/') || raw.ends_with("/.") || raw == ".",
        ..host_path
    };
    let host_root = Root::open(Path::new("/"), Label::Host(PathBuf::from("/")))?;
    let (source, is_dir, src_name) = Source::open(&host_root, &src_path)?;
    let dest_name = dest_path.name().unwrap_or(OsStr::new(".")).to_owned();
    let plan = plan(
        is_dir,
        src_path.contents_only,
        &src_name,
        state,
        dest_path.trailing_slash,
        &dest_name,
    )
    .map_err(|reason| root.error(&dest_path.relative(), reason))?;
    let target = if plan.into_parent {
        dest_path.parent()
    } else {
        dest_path.relative()
    };
    if root.state(&target)? != DestState::Dir {
        return Err(root.error(&target, CopyReason::MissingDirectory));
    }
    pipe_tar(source, plan.top, |reader| {
        extract(&root, &target, reader, Some((0, 0)))
    })
}

/// [`copy_out`] on a container (its live rootfs, or a temporary mount when stopped).
pub fn copy_from_container(
    containers: &Containers<'_>,
    container: &Container,
    src: &str,
    dest: &CopyEndpoint,
    stdout: &mut dyn Write,
) -> Result<()> {
    containers.with_rootfs(container, |rootfs| {
        copy_out(rootfs, container.short_id(), src, dest, stdout)
    })
}

/// [`copy_in`] on a container (its live rootfs, or a temporary mount when stopped).
pub fn copy_into_container(
    containers: &Containers<'_>,
    container: &Container,
    src: &CopyEndpoint,
    dest: &str,
    stdin: &mut dyn Read,
) -> Result<()> {
    containers.with_rootfs(container, |rootfs| {
        copy_in(rootfs, container.short_id(), src, dest, stdin)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_cp_rules() {
        use DestState::*;
        let n = OsStr::new;
        // (src dir, contents, dest state, dest slash) -> (into parent, top)
        type Row = (
            bool,
            bool,
            DestState,
            bool,
            std::result::Result<(bool, Option<&'static str>), CopyReason>,
        );
        let table: &[Row] = &[
            // a file
            (false, false, Missing, false, Ok((true, Some("dst")))),
            (
                false,
                false,
                Missing,
                true,
                Err(CopyReason::MissingDirectory),
            ),
            (false, false, NonDir, false, Ok((true, Some("dst")))),
            (false, false, NonDir, true, Err(CopyReason::NotADirectory)),
            (false, false, Dir, false, Ok((false, Some("src")))),
            // a directory
            (true, false, Missing, false, Ok((true, Some("dst")))),
            (true, false, Missing, true, Ok((true, Some("dst")))),
            (
                true,
                false,
                NonDir,
                false,
                Err(CopyReason::DirectoryOntoFile),
            ),
            (true, false, Dir, false, Ok((false, Some("src")))),
            // a directory's contents (SRC/.)
            (true, true, Missing, false, Ok((true, Some("dst")))),
            (true, true, Dir, false, Ok((false, None))),
            (
                true,
                true,
                NonDir,
                false,
                Err(CopyReason::DirectoryOntoFile),
            ),
        ];
        for (i, (is_dir, contents, state, slash, want)) in table.iter().enumerate() {
            let got = plan(*is_dir, *contents, n("src"), *state, *slash, n("dst")).map(|p| {
                (
                    p.into_parent,
                    p.top.map(|t| t.to_string_lossy().into_owned()),
                )
            });
            let want = want.map(|(p, t)| (p, t.map(str::to_owned)));
            assert_eq!(got, want, "row {i}");
        }
    }

    #[test]
    fn user_paths_clamp_at_the_root() {
        let p = UserPath::parse("/../../etc/./passwd");
        assert_eq!(p.relative(), PathBuf::from("etc/passwd"));
        assert!(!p.trailing_slash);
        let p = UserPath::parse("/go/src/.");
        assert!(p.contents_only && p.trailing_slash);
        assert_eq!(p.relative(), PathBuf::from("go/src"));
        assert_eq!(UserPath::parse("/").relative(), PathBuf::from("."));
        assert!(UserPath::parse("/tmp/").trailing_slash);
    }

    #[test]
    fn tar_entry_names() {
        assert_eq!(clean_entry_name(b"./a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(clean_entry_name(b"../a"), None);
        assert_eq!(clean_entry_name(b"/etc/passwd"), None);
        assert_eq!(clean_entry_name(b"a/../../b"), None);
    }
}
