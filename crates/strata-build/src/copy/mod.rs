//! COPY and ADD with BuildKit's semantics.
//!
//! A copy happens in three steps so the cache key is computed from exactly what is copied:
//! 1. [`prepare`] (pure over a [`SourceTree`]): sources resolved ([`resolve`]), the
//!    destination made absolute against WORKDIR, flags validated;
//! 2. [`checksum`]: a digest of what will reach the layer: for every entry a tarsum-like
//!    header (name, type, permission bits after `--chmod`, owner the entry will get, size,
//!    link target, device number) and the content digest, never mtimes; unchanged context
//!    files are answered by the stat cache;
//! 3. [`execute`]: the writes into the step's rootfs ([`apply`]), all resolved in-root.

pub mod apply;
pub mod archive;
pub mod fsops;
pub mod http;
pub mod mode;
pub mod owner;
pub mod resolve;

pub use apply::{Attributes, CopyStats};
pub use mode::{Chmod, ChmodError};
pub use resolve::{Item, ResolvedSource, SelectOptions};

use crate::ignore::IgnoreError;
use crate::paths;
use crate::source::{FileKind, FileMeta, ResolveError, SourceTree};
use fsops::{DestRoot, MkdirError};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::path::Path;
use strata_image::Digest;
use thiserror::Error;

/// Errors of COPY/ADD.
#[derive(Debug, Error)]
pub enum CopyError {
    /// A literal source that does not exist (BuildKit's wording).
    #[error("{path:?}: not found")]
    SourceNotFound {
        /// The source, rooted at its tree (`/x`).
        path: String,
    },
    /// Several sources with a destination that is not a directory.
    #[error(
        "when using {instruction} with more than one source file, the destination must be a directory and end with a /"
    )]
    MultipleSourcesNeedDirectory {
        /// `COPY` or `ADD`.
        instruction: &'static str,
    },
    /// A directory would be merged into a non-directory.
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory {
        /// The destination path in the rootfs.
        path: String,
    },
    /// A file would replace a directory.
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirectoryWithFile {
        /// The destination path in the rootfs.
        path: String,
    },
    /// A source pattern with bad syntax.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A bad `--exclude` pattern.
    #[error("invalid exclude pattern: {0}")]
    Exclude(#[from] IgnoreError),
    /// A bad `--chmod`.
    #[error(transparent)]
    Chmod(#[from] ChmodError),
    /// `--chown` names a user the destination rootfs does not know.
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser {
        /// The user name.
        name: String,
    },
    /// `--chown` names a group the destination rootfs does not know.
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup {
        /// The group name.
        name: String,
    },
    /// A path could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// Creating destination directories failed.
    #[error(transparent)]
    Mkdir(#[from] MkdirError),
    /// Reading a source failed.
    #[error("read {path}: {source}")]
    SourceIo {
        /// The source path in its tree.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Writing the destination failed.
    #[error("write {path}: {source}")]
    DestIo {
        /// The destination path in the rootfs.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// An ADD archive could not be extracted.
    #[error("extract {path}: {source}")]
    Extract {
        /// The archive (source path).
        path: String,
        /// The failure.
        source: strata_layer::ApplyError,
    },
    /// An ADD URL could not be downloaded.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The destination rootfs could not be opened.
    #[error("open rootfs {path}: {source}")]
    Root {
        /// The rootfs directory.
        path: std::path::PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// A COPY/ADD instruction after word expansion.
#[derive(Debug, Clone, Default)]
pub struct CopySpec {
    /// `true` for ADD.
    pub is_add: bool,
    /// The sources as written (after expansion), in order.
    pub sources: Vec<String>,
    /// The destination as written.
    pub dest: String,
    /// The stage's WORKDIR at this point.
    pub workdir: String,
    /// `--exclude` and `--parents`.
    pub select: SelectOptions,
    /// `--chown` as written (resolved against the destination rootfs at execution).
    pub chown: Option<String>,
    /// `--chmod` as written.
    pub chmod: Option<String>,
    /// ADD `--unpack`: `None` means the default (extract local archives for ADD, never for
    /// COPY).
    pub unpack: Option<bool>,
}

/// A COPY/ADD ready to be checksummed and executed.
#[derive(Debug, Clone)]
pub struct PreparedCopy {
    /// `COPY` or `ADD`.
    pub instruction: &'static str,
    /// The destination, rootfs-absolute (a trailing `/` marks a directory).
    pub dest: String,
    /// What the sources name.
    pub sources: Vec<ResolvedSource>,
    /// Parsed `--chmod`.
    pub chmod: Option<Chmod>,
    /// `--chown` as written.
    pub chown: Option<String>,
    /// Extract sources that are archives (ADD).
    pub unpack: bool,
}

/// Resolves and validates a COPY/ADD against its source tree.
pub fn prepare(tree: &dyn SourceTree, spec: &CopySpec) -> Result<PreparedCopy, CopyError> {
    let instruction = if spec.is_add { "ADD" } else { "COPY" };
    let dest = paths::resolve_dest(&spec.workdir, &spec.dest);
    if spec.sources.len() > 1 && !dest.ends_with('/') {
        return Err(CopyError::MultipleSourcesNeedDirectory { instruction });
    }
    let chmod = spec.chmod.as_deref().map(Chmod::parse).transpose()?;
    let sources = resolve::resolve_sources(tree, &spec.sources, &spec.select)?;
    let unpack = spec.is_add && spec.unpack.unwrap_or(true);
    Ok(PreparedCopy {
        instruction,
        dest,
        sources,
        chmod,
        chown: spec.chown.clone(),
        unpack,
    })
}

/// The content checksum of a prepared copy: changes exactly when what reaches the layer
/// changes (names, types, modes after `--chmod`, ownership, sizes, link targets, contents),
/// and never because of a timestamp. `--chown` is included as written: the ids it resolves
/// to depend only on the parent layer, which the step's cache key already covers.
pub fn checksum(tree: &dyn SourceTree, copy: &PreparedCopy) -> Result<Digest, CopyError> {
    // Collect the regular files first so their digests can be computed in parallel.
    let mut files: Vec<&str> = Vec::new();
    for source in &copy.sources {
        if source.root_meta.kind == FileKind::File {
            files.push(&source.root);
        }
        for item in &source.items {
            if item.meta.kind == FileKind::File {
                files.push(&item.src);
            }
        }
    }
    let digests = content_digests(tree, &files)?;
    let mut digests = digests.into_iter();

    let mut hasher = Sha256::new();
    hasher.update(format!(
        "{}\0{}\0{}\0",
        copy.instruction, copy.dest, copy.unpack
    ));
    hasher.update(format!("chown\0{}\0", copy.chown.as_deref().unwrap_or("")));
    let owner = |meta: &FileMeta| tree.forced_owner().unwrap_or((meta.uid, meta.gid));
    let perms = |meta: &FileMeta| match &copy.chmod {
        Some(chmod) => chmod.apply(meta.permissions(), meta.is_dir()),
        None => meta.permissions(),
    };
    let mut header = |hasher: &mut Sha256, name: &str, meta: &FileMeta, implicit: bool| {
        let (uid, gid) = owner(meta);
        let (kind, link) = match &meta.kind {
            FileKind::File => ('0', ""),
            FileKind::Dir => ('5', ""),
            FileKind::Symlink(target) => ('2', target.as_str()),
            FileKind::CharDevice => ('3', ""),
            FileKind::BlockDevice => ('4', ""),
            FileKind::Fifo => ('6', ""),
            FileKind::Socket => ('s', ""),
        };
        hasher.update(format!(
            "{name}\0{kind}\0{:o}\0{uid}\0{gid}\0{}\0{link}\0{}\0{}\0",
            perms(meta),
            meta.size,
            meta.rdev,
            u8::from(implicit)
        ));
        if meta.kind == FileKind::File
            && let Some(d) = digests.next()
        {
            hasher.update(d.as_bytes());
        }
    };
    for source in &copy.sources {
        hasher.update(format!(
            "source\0{}\0{}\0",
            source.written, source.base_name
        ));
        header(&mut hasher, "", &source.root_meta, false);
        for item in &source.items {
            header(&mut hasher, &item.rel, &item.meta, item.implicit);
        }
    }
    Ok(Digest::from_bytes(hasher.finalize().into()))
}

fn content_digests(tree: &dyn SourceTree, files: &[&str]) -> Result<Vec<Digest>, CopyError> {
    let one = |rel: &str| -> Result<Digest, CopyError> {
        let io = |source| CopyError::SourceIo {
            path: format!("/{rel}"),
            source,
        };
        if let Some(result) = tree.content_digest(rel) {
            return result.map_err(io);
        }
        let mut file = tree.open(rel).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Digest::from_bytes(hasher.finalize().into()))
    };
    if files.len() < 8 {
        return files.iter().map(|f| one(f)).collect();
    }
    // Two hashing threads: the machine this targets has two cores.
    let (a, b) = files.split_at(files.len() / 2);
    let (ra, rb) = std::thread::scope(|s| {
        let handle = s.spawn(|| a.iter().map(|f| one(f)).collect::<Result<Vec<_>, _>>());
        let rb = b.iter().map(|f| one(f)).collect::<Result<Vec<_>, _>>();
        (handle.join(), rb)
    });
    let mut out = match ra {
        Ok(r) => r?,
        Err(_) => a.iter().map(|f| one(f)).collect::<Result<Vec<_>, _>>()?,
    };
    out.extend(rb?);
    Ok(out)
}

/// Materialises heredoc sources (`COPY <<EOF /dest`) as files in `dir`, the way BuildKit
/// does (`Mkfile` with mode 0644, owned by root), and returns the tree to copy them from and
/// their names (the heredoc names, used as the source paths).
pub fn heredoc_tree(
    dir: &Path,
    docs: &[(String, String)],
) -> Result<(crate::source::DirTree, Vec<String>), CopyError> {
    use std::os::unix::fs::PermissionsExt;
    let mut names = Vec::new();
    for (name, content) in docs {
        let rel = paths::confine(name);
        let path = dir.join(&rel);
        let io = |source| CopyError::DestIo {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, content).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
        names.push(rel);
    }
    Ok((crate::source::DirTree::with_owner(dir, (0, 0)), names))
}

/// Writes a prepared copy into `rootfs` (the step's mounted root).
pub fn execute(
    rootfs: &Path,
    tree: &dyn SourceTree,
    copy: &PreparedCopy,
) -> Result<CopyStats, CopyError> {
    let root = DestRoot::open(rootfs).map_err(|source| CopyError::Root {
        path: rootfs.to_path_buf(),
        source,
    })?;
    let chown = copy
        .chown
        .as_deref()
        .map(|spec| owner::resolve_chown(&root, spec))
        .transpose()?;
    let attrs = Attributes {
        chown,
        chmod: copy.chmod.clone(),
        mtime_ns: None,
    };
    let mut total = CopyStats::default();
    for source in &copy.sources {
        if copy.unpack && source.root_meta.kind == FileKind::File {
            let archive_path = tree.host_path(&source.root);
            if archive::is_archive(&archive_path) {
                // BuildKit: the destination is a directory (created, in-root) the archive is
                // extracted into, keeping the ownership recorded in the archive.
                let dest_tree = crate::source::DirTree::new(rootfs);
                let rel =
                    crate::source::resolve_for_create(&dest_tree, copy.dest.trim_end_matches('/'))?;
                root.mkdir_all(&rel, attrs.chown.unwrap_or((0, 0)))?;
                archive::extract(&archive_path, &rootfs.join(&rel)).map_err(|source_err| {
                    CopyError::Extract {
                        path: format!("/{}", source.root),
                        source: source_err,
                    }
                })?;
                total.files += 1;
                continue;
            }
        }
        let stats = apply::copy_source(&root, tree, source, &copy.dest, &attrs)?;
        total.files += stats.files;
        total.bytes += stats.bytes;
        total.dirs += stats.dirs;
        total.symlinks += stats.symlinks;
        total.hardlinks += stats.hardlinks;
    }
    Ok(total)
}
