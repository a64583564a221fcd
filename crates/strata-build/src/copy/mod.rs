//! COPY and ADD with BuildKit's semantics.
//!
//! A copy happens in three steps so the cache key is computed from exactly what is copied:
//! 1. [`prepare`] (pure over a [`SourceTree`]): sources resolved ([`resolve`]), the
//!    destination made absolute against WORKDIR, flags validated;
//! 2. [`checksum`]: a digest of what will reach the layer: for every entry a tarsum-like
//!    header (name, type, permission bits after `--chmod`, owner the entry will get, size,
//!    link target, device number), the content digest and the extended attributes of files
//!    and directories, never mtimes; unchanged context entries are answered by the stat cache;
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
pub use resolve::{Item, ItemRef, ResolvedSource, Roots, SelectOptions};

use crate::ignore::IgnoreError;
use crate::paths;
use crate::source::{FileKind, FileMeta, ResolveError, SourceTree, XattrSum};
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
    let mut copy = prepare_header(spec)?;
    copy.sources = resolve::resolve_sources(tree, &spec.sources, &spec.select)?;
    Ok(copy)
}

/// Everything of [`prepare`] but the sources.
fn prepare_header(spec: &CopySpec) -> Result<PreparedCopy, CopyError> {
    let instruction = if spec.is_add { "ADD" } else { "COPY" };
    let dest = paths::resolve_dest(&spec.workdir, &spec.dest);
    if spec.sources.len() > 1 && !dest.ends_with('/') {
        return Err(CopyError::MultipleSourcesNeedDirectory { instruction });
    }
    let chmod = spec.chmod.as_deref().map(Chmod::parse).transpose()?;
    let unpack = spec.is_add && spec.unpack.unwrap_or(true);
    Ok(PreparedCopy {
        instruction,
        dest,
        sources: Vec::new(),
        chmod,
        chown: spec.chown.clone(),
        unpack,
    })
}

/// The content checksum of a prepared copy: changes exactly when what reaches the layer
/// changes (names, types, modes after `--chmod`, ownership, sizes, link targets, contents,
/// xattrs of files and directories), and never because of a timestamp. `--chown` is included as written: the ids it resolves
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
    let mut digests = content_digests(tree, &files)?.into_iter();
    let mut sum = Checksum::new(tree, copy);
    for source in &copy.sources {
        sum.source(source);
        let digest = next_if_file(&source.root_meta, &mut digests);
        let xattrs = layer_xattrs(tree, &source.root, &source.root_meta)?;
        sum.entry("", &source.root_meta, false, digest.as_ref(), xattrs);
        for item in &source.items {
            let digest = next_if_file(&item.meta, &mut digests);
            let xattrs = layer_xattrs(tree, &item.src, &item.meta)?;
            sum.entry(
                &item.rel,
                &item.meta,
                item.implicit,
                digest.as_ref(),
                xattrs,
            );
        }
    }
    Ok(sum.finish())
}

/// The xattr sum of a source entry whose xattrs reach the layer (regular files and
/// directories; the copier gives links and devices none).
fn layer_xattrs(tree: &dyn SourceTree, src: &str, meta: &FileMeta) -> Result<XattrSum, CopyError> {
    match meta.kind {
        FileKind::File | FileKind::Dir => tree.xattr_sum(src).map_err(|e| io_error(src, e)),
        _ => Ok(None),
    }
}

fn next_if_file(meta: &FileMeta, digests: &mut impl Iterator<Item = Digest>) -> Option<Digest> {
    (meta.kind == FileKind::File)
        .then(|| digests.next())
        .flatten()
}

/// [`prepare`] then [`checksum`] without holding the entries in memory: the sources are
/// resolved, then the trees below them streamed into the checksum, with the digests the tree
/// already knows (the build context's stat cache: content digests and xattr sums). Files it
/// does not know are hashed in parallel between a first pass that finds them and a second
/// that sums; once a file is missing, the first pass reads no xattrs (its sum is discarded).
/// Gives exactly [`checksum`]'s digest.
pub fn prepare_checksum(tree: &dyn SourceTree, spec: &CopySpec) -> Result<Digest, CopyError> {
    let mut copy = prepare_header(spec)?;
    let roots = resolve::resolve_roots(tree, &spec.sources, &spec.select)?;
    copy.sources = roots.sources.clone();
    let mut known: std::collections::HashMap<String, Digest> = std::collections::HashMap::new();
    for pass in 0..2 {
        let mut missing: Vec<String> = Vec::new();
        // Whether this pass's sum will be discarded (a file is missing on the first pass).
        let discarded = std::cell::Cell::new(false);
        let mut sum = Checksum::new(tree, &copy);
        let mut lookup = |src: &str, digest: Option<Digest>| -> Result<Option<Digest>, CopyError> {
            if let Some(d) = digest.or_else(|| known.get(src).copied()) {
                return Ok(Some(d));
            }
            if pass == 0 {
                discarded.set(true);
                missing.push(src.to_string());
                return Ok(None);
            }
            // Unknown on the second pass (the tree changed its mind): hash it here.
            Ok(content_digests(tree, &[src])?.pop())
        };
        for (i, source) in roots.sources.iter().enumerate() {
            sum.source(source);
            let digest = if source.root_meta.kind == FileKind::File {
                match tree.content_digest(&source.root) {
                    Some(result) => Some(result.map_err(|e| io_error(&source.root, e))?),
                    None => lookup(&source.root, None)?,
                }
            } else {
                None
            };
            let xattrs = if discarded.get() {
                None
            } else {
                layer_xattrs(tree, &source.root, &source.root_meta)?
            };
            sum.entry("", &source.root_meta, false, digest.as_ref(), xattrs);
            roots.walk(tree, i, &mut |item| {
                let digest = if item.meta.kind == FileKind::File {
                    lookup(item.src, item.known.content)?
                } else {
                    None
                };
                let xattrs = match item.known.xattrs {
                    Some(known) => known,
                    None if discarded.get() => None,
                    None => layer_xattrs(tree, item.src, item.meta)?,
                };
                sum.entry(item.rel, item.meta, item.implicit, digest.as_ref(), xattrs);
                Ok(())
            })?;
        }
        if missing.is_empty() {
            return Ok(sum.finish());
        }
        let refs: Vec<&str> = missing.iter().map(String::as_str).collect();
        let digests = content_digests(tree, &refs)?;
        known.extend(missing.into_iter().zip(digests));
    }
    Err(CopyError::SourceIo {
        path: "/".to_string(),
        source: std::io::Error::other("content digests changed while checksumming"),
    })
}

fn io_error(rel: &str, source: std::io::Error) -> CopyError {
    CopyError::SourceIo {
        path: format!("/{rel}"),
        source,
    }
}

/// The checksum's byte stream: a tarsum-like header per entry, then the content digest of a
/// regular file, then, only for an entry with layer xattrs, `NUL "xattrs" NUL` and their sum.
/// An entry without xattrs adds exactly what it added before xattrs were summed, so existing
/// cache keys hold; the suffix cannot be mistaken for the next entry, which starts with a
/// non-empty name or `source`, never with NUL. Numbers are written by hand (decimal,
/// permission bits in octal) because a no-op rebuild sums 20,000 of these headers.
struct Checksum<'a> {
    hasher: Sha256,
    forced_owner: Option<(u32, u32)>,
    chmod: Option<&'a Chmod>,
    buf: Vec<u8>,
}

impl<'a> Checksum<'a> {
    fn new(tree: &dyn SourceTree, copy: &'a PreparedCopy) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "{}\0{}\0{}\0",
            copy.instruction, copy.dest, copy.unpack
        ));
        hasher.update(format!("chown\0{}\0", copy.chown.as_deref().unwrap_or("")));
        Self {
            hasher,
            forced_owner: tree.forced_owner(),
            chmod: copy.chmod.as_ref(),
            buf: Vec::with_capacity(256),
        }
    }

    fn source(&mut self, source: &ResolvedSource) {
        self.hasher.update(format!(
            "source\0{}\0{}\0",
            source.written, source.base_name
        ));
    }

    fn entry(
        &mut self,
        name: &str,
        meta: &FileMeta,
        implicit: bool,
        digest: Option<&Digest>,
        xattrs: XattrSum,
    ) {
        let (uid, gid) = self.forced_owner.unwrap_or((meta.uid, meta.gid));
        let perms = match self.chmod {
            Some(chmod) => chmod.apply(meta.permissions(), meta.is_dir()),
            None => meta.permissions(),
        };
        let (kind, link) = match &meta.kind {
            FileKind::File => (b'0', ""),
            FileKind::Dir => (b'5', ""),
            FileKind::Symlink(target) => (b'2', target.as_str()),
            FileKind::CharDevice => (b'3', ""),
            FileKind::BlockDevice => (b'4', ""),
            FileKind::Fifo => (b'6', ""),
            FileKind::Socket => (b's', ""),
        };
        let b = &mut self.buf;
        b.clear();
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.push(kind);
        b.push(0);
        push_radix(b, u64::from(perms), 8);
        b.push(0);
        push_radix(b, u64::from(uid), 10);
        b.push(0);
        push_radix(b, u64::from(gid), 10);
        b.push(0);
        push_radix(b, meta.size, 10);
        b.push(0);
        b.extend_from_slice(link.as_bytes());
        b.push(0);
        push_radix(b, meta.rdev, 10);
        b.push(0);
        b.push(if implicit { b'1' } else { b'0' });
        b.push(0);
        if meta.kind == FileKind::File
            && let Some(d) = digest
        {
            b.extend_from_slice(d.as_bytes());
        }
        if let Some(x) = xattrs {
            b.extend_from_slice(b"\0xattrs\0");
            b.extend_from_slice(x.as_bytes());
        }
        self.hasher.update(&self.buf);
    }

    fn finish(self) -> Digest {
        Digest::from_bytes(self.hasher.finalize().into())
    }
}

fn push_radix(out: &mut Vec<u8>, mut v: u64, radix: u64) {
    let mut digits = [0u8; 22];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % radix) as u8;
        v /= radix;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
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

/// Opens the destination root `rootfs` of `copy` and the attributes its files get: the
/// `--chown` owner (names looked up in the destination's own passwd and group files) and the
/// `--chmod` mode.
fn open_destination(
    rootfs: &Path,
    copy: &PreparedCopy,
) -> Result<(DestRoot, Attributes), CopyError> {
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
    Ok((root, attrs))
}

/// Writes a prepared copy into `rootfs` (the step's mounted root).
pub fn execute(
    rootfs: &Path,
    tree: &dyn SourceTree,
    copy: &PreparedCopy,
) -> Result<CopyStats, CopyError> {
    let (root, attrs) = open_destination(rootfs, copy)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::BuildContext;
    use crate::ignore::PatternMatcher;
    use crate::source::DirTree;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// `prepare_checksum` streams what `prepare` + `checksum` collect: the digests must be
    /// the same for every kind of selection, on the context and on a plain directory.
    #[test]
    fn streamed_checksum_equals_the_collected_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "src/main.go", "package main");
        write(root, "src/lib/util.go", "package lib");
        write(root, "src/lib/README.md", "docs");
        write(root, "src/vendor/x/y.go", "package y");
        write(root, "docs/a.md", "a");
        write(root, "one.txt", "one");
        std::fs::create_dir_all(root.join("src/empty")).unwrap();
        std::os::unix::fs::symlink("lib/util.go", root.join("src/link")).unwrap();
        let spec =
            |sources: &[&str], exclude: &[&str], parents: bool, chmod: Option<&str>| CopySpec {
                sources: sources.iter().map(|s| s.to_string()).collect(),
                dest: "/app/".into(),
                workdir: "/".into(),
                select: SelectOptions {
                    exclude: exclude.iter().map(|s| s.to_string()).collect(),
                    parents,
                },
                chmod: chmod.map(str::to_string),
                ..Default::default()
            };
        let specs = [
            spec(&["."], &[], false, None),
            spec(&["src/"], &[], false, None),
            spec(&["one.txt", "src"], &[], false, Some("0755")),
            spec(&["src"], &["**/*.md", "vendor"], false, None),
            spec(&["*.txt", "do*"], &[], false, None),
            spec(&["src/./lib"], &[], true, None),
            spec(&["**/*.go"], &[], true, None),
            spec(&["src/link"], &[], false, None),
        ];
        let context = BuildContext::scan(root, &PatternMatcher::default(), None).unwrap();
        let plain = DirTree::new(root);
        let trees: [&dyn SourceTree; 2] = [&context, &plain];
        let mut sums = Vec::new();
        for tree in trees {
            for spec in &specs {
                let collected = checksum(tree, &prepare(tree, spec).unwrap()).unwrap();
                let streamed = prepare_checksum(tree, spec).unwrap();
                assert_eq!(streamed, collected, "{:?}", spec.sources);
                sums.push(streamed);
            }
        }
        let distinct: std::collections::HashSet<_> = sums[..specs.len()].iter().collect();
        assert_eq!(
            distinct.len(),
            specs.len(),
            "every selection sums differently"
        );
    }

    #[test]
    fn streamed_checksum_reports_missing_sources() {
        let dir = tempfile::tempdir().unwrap();
        let context = BuildContext::scan(dir.path(), &PatternMatcher::default(), None).unwrap();
        let spec = CopySpec {
            sources: vec!["nope".into()],
            dest: "/x".into(),
            workdir: "/".into(),
            ..Default::default()
        };
        assert!(matches!(
            prepare_checksum(&context, &spec),
            Err(CopyError::SourceNotFound { path }) if path == "/nope"
        ));
    }

    #[test]
    fn numbers_are_written_like_format() {
        for v in [0u64, 7, 8, 10, 0o755, 4096, u64::MAX] {
            let mut dec = Vec::new();
            push_radix(&mut dec, v, 10);
            assert_eq!(String::from_utf8(dec).unwrap(), v.to_string());
            let mut oct = Vec::new();
            push_radix(&mut oct, v, 8);
            assert_eq!(String::from_utf8(oct).unwrap(), format!("{v:o}"));
        }
    }
}
