//! flock-based locks on files in the store root.
//!
//! flock locks belong to the open file description, so they are released when the process
//! dies: a crash can never leave the store locked.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{IoContext, Result};

/// An exclusive lock, released on drop.
#[derive(Debug)]
pub(crate) struct Guard {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .ctx("open lock file", path)
}

/// Creates the lock file if missing.
pub(crate) fn touch(path: &Path) -> Result<()> {
    open(path).map(drop)
}

/// Blocks until the exclusive lock on `path` is held.
pub(crate) fn exclusive(path: &Path) -> Result<Guard> {
    let file = open(path)?;
    file.lock().ctx("lock", path)?;
    Ok(Guard { _file: file })
}

/// Takes the exclusive lock on `path` if nobody holds it.
pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Guard>> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Guard { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).ctx("lock", path),
    }
}

/// Blocks until a shared lock on `path` is held; the lock lives as long as the returned file.
pub(crate) fn shared(path: &Path) -> Result<File> {
    let file = open(path)?;
    file.lock_shared().ctx("lock (shared)", path)?;
    Ok(file)
}
