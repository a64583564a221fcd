//! The errors of layer application and creation; every variant names the entry or path involved.

use std::io;
use std::path::PathBuf;

/// Why a layer could not be applied or unpacked.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    #[error("layer entry {}: path escapes the target directory", entry.display())]
    Escapes { entry: PathBuf },
    #[error(
        "layer entry {}: parent directory resolves through a symlink that leaves the target directory",
        entry.display()
    )]
    SymlinkEscapes { entry: PathBuf },
    #[error("layer entry {}: hardlink target {} escapes the target directory", entry.display(), target.display())]
    LinkEscapes { entry: PathBuf, target: PathBuf },
    #[error("layer entry {}: hardlink target {} does not exist", entry.display(), target.display())]
    LinkTargetMissing { entry: PathBuf, target: PathBuf },
    #[error("layer entry {}: hardlink target {} is a directory", entry.display(), target.display())]
    LinkToDirectory { entry: PathBuf, target: PathBuf },
    #[error("layer entry {}: invalid whiteout name", entry.display())]
    InvalidWhiteout { entry: PathBuf },
    #[error("layer entry {}: unsupported tar entry type {kind:?}", entry.display())]
    UnsupportedEntryType { entry: PathBuf, kind: char },
    #[error("layer entry {}: the root of the layer must be a directory", entry.display())]
    RootNotDirectory { entry: PathBuf },
    #[error("layer entry {}: {operation} {}: {source}", entry.display(), path.display())]
    Fs {
        entry: PathBuf,
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("opening target directory {}: {source}", path.display())]
    Target {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Why a layer could not be written from a directory.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{operation} {}: {source}", path.display())]
    Fs {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: file changed while being archived: expected {expected} bytes, read {found}", path.display())]
    FileChanged {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error(
        "{}: overlay xattr {xattr} is set, so the upperdir is not a plain diff\nhint: mount overlays with redirect_dir=off and metacopy=off",
        path.display()
    )]
    OverlayFeature { path: PathBuf, xattr: String },
    #[error("{}: unsupported file type", path.display())]
    UnsupportedFileType { path: PathBuf },
    #[error("writing layer: {0}")]
    Write(#[source] io::Error),
}
