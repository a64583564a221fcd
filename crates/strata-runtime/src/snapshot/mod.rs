//! Snapshotters: a root filesystem view over a stack of layer directories, and the diff it leaves.
//!
//! Layer directories are in the **overlay-diff format** the store unpacks layers into: a deleted
//! path is a whiteout (a 0/0 character device), a replaced directory carries
//! `trusted.overlay.opaque=y`. Lowers are always given **top-first** (the most recent layer
//! first), the order of overlayfs's `lowerdir`.
//!
//! The lifecycle of a view is prepare → use → commit | remove:
//!
//! 1. [`Snapshotter::prepare`] makes `target` show the lowers; with an [`UpperDir`] the view is
//!    writable, without one it is meant to be read (a `COPY --from` or bind-mount source).
//! 2. The caller uses `target`: a RUN step executes in it, COPY writes into it.
//! 3. [`Snapshotter::commit`] ends the view and leaves in the upper directory exactly the changes
//!    made, in the overlay-diff format (the layer is then written from it);
//!    [`Snapshotter::remove`] ends the view and discards the changes.
//!
//! Either way `target` is left as an empty directory. An [`ActiveSnapshot`] dropped without
//! commit or remove is unmounted (lazily) so no mount outlives its owner; a dropped copy view
//! simply stays on disk (it holds no kernel resource).
//!
//! [`detect`] picks the overlay snapshotter when overlayfs works on the store's filesystem and
//! the copy snapshotter otherwise.

mod copy;
mod lowers;
mod overlay;

use std::path::{Path, PathBuf};

pub use copy::CopySnapshotter;
pub(crate) use lowers::MergedLowers;
pub use overlay::{MAX_LOWERS, MountApi, OverlaySnapshotter, overlay_supported};

use crate::fsutil::PathError;

/// The writable half of a view: the directory that receives the changes (overlayfs's
/// `upperdir`) and a scratch directory on the same filesystem (overlayfs's `workdir`).
/// Both must exist and be empty when the view is prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpperDir {
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl UpperDir {
    pub fn new(upper: impl Into<PathBuf>, work: impl Into<PathBuf>) -> Self {
        Self {
            upper: upper.into(),
            work: work.into(),
        }
    }
}

/// A prepared view, handed back to the snapshotter that made it to commit or remove it.
#[derive(Debug)]
pub struct ActiveSnapshot {
    target: PathBuf,
    lowers: Vec<PathBuf>,
    upper: Option<UpperDir>,
    /// `target` is a mount point this value must unmount.
    mounted: bool,
    /// The [`Snapshotter::name`] of the snapshotter that prepared the view.
    made_by: &'static str,
}

impl ActiveSnapshot {
    /// The root of the view.
    pub fn root(&self) -> &Path {
        &self.target
    }

    /// The lowers of the view, top-first.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// The writable half, when the view has one.
    pub fn upper(&self) -> Option<&UpperDir> {
        self.upper.as_ref()
    }

    fn disarm(&mut self) {
        self.mounted = false;
    }

    fn check_made_by(&self, name: &'static str) -> Result<(), SnapshotError> {
        if self.made_by == name {
            Ok(())
        } else {
            Err(SnapshotError::WrongSnapshotter {
                target: self.target.clone(),
                made_by: self.made_by,
            })
        }
    }
}

impl Drop for ActiveSnapshot {
    fn drop(&mut self) {
        if self.mounted {
            // Never leave a mount behind an early return or a panic: a lazy unmount cannot fail
            // on a busy mount, and there is nobody left to report an error to.
            let _ = rustix::mount::unmount(&self.target, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// What a snapshotter needs from a caller to prepare a view.
pub trait Snapshotter: Send + Sync + std::fmt::Debug {
    /// A short name for logs and `--help` (`overlay`, `copy`).
    fn name(&self) -> &'static str;

    /// Make `target` (an existing empty directory) show `lowers` (top-first; none is an empty
    /// root, as for `FROM scratch`), writable into `upper` when given.
    fn prepare(
        &self,
        lowers: &[&Path],
        upper: Option<&UpperDir>,
        target: &Path,
    ) -> Result<ActiveSnapshot, SnapshotError>;

    /// End the view and leave its changes in the upper directory, in the overlay-diff format.
    fn commit(&self, active: ActiveSnapshot) -> Result<(), SnapshotError>;

    /// End the view and discard its changes (the upper directory is emptied).
    fn remove(&self, active: ActiveSnapshot) -> Result<(), SnapshotError>;
}

/// Why a view could not be prepared, committed or removed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{count} lower layers exceed overlayfs's limit of {max}")]
    TooManyLowers { count: usize, max: usize },
    #[error("{role} directory {path} does not exist or is not a directory")]
    NotADirectory { role: &'static str, path: PathBuf },
    #[error("{role} directory {path} is not empty")]
    NotEmpty { role: &'static str, path: PathBuf },
    #[error("mount overlayfs on {target}: {step}: {source}{}", kernel_log(.kernel_messages))]
    Mount {
        target: PathBuf,
        step: &'static str,
        kernel_messages: Vec<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount {target}: {source}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the view at {target} has no upper directory to commit into")]
    ReadOnly { target: PathBuf },
    #[error("the view at {target} was prepared by the {made_by} snapshotter, not this one")]
    WrongSnapshotter {
        target: PathBuf,
        made_by: &'static str,
    },
    #[error(transparent)]
    Fs(#[from] PathError),
}

fn kernel_log(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", messages.join("; "))
    }
}

/// The best snapshotter for snapshots kept under `state_dir`: overlayfs when a probe mount
/// works there, copying otherwise.
pub fn detect(state_dir: &Path) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    if overlay_supported(state_dir) {
        Ok(Box::new(OverlaySnapshotter::new(state_dir)?))
    } else {
        Ok(Box::new(CopySnapshotter::new()))
    }
}

/// Check that `path` is an existing directory, empty when `empty` is asked for.
fn check_dir(role: &'static str, path: &Path, empty: bool) -> Result<(), SnapshotError> {
    if !path.is_dir() {
        return Err(SnapshotError::NotADirectory {
            role,
            path: path.to_path_buf(),
        });
    }
    if empty {
        use crate::fsutil::IoContext;
        let mut entries = std::fs::read_dir(path).at("read directory", path)?;
        if entries.next().is_some() {
            return Err(SnapshotError::NotEmpty {
                role,
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}
