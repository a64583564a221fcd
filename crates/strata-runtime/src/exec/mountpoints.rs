//! Mount points a run needs that the rootfs lacks, and their removal afterwards.
//!
//! An OCI runtime creates every missing mount destination in the rootfs before mounting on it
//! (a directory, or an empty file for a file bind-mount), with its missing parents. In an
//! overlay view those land in the upper directory and would end up in the layer: an image
//! built `FROM scratch` would grow `/proc`, `/dev`, `/sys` and `/etc/hosts`. So before the run
//! every destination is resolved in-root, exactly as the runtime will resolve it (and the
//! spec's destination is rewritten to that resolved path, so the runtime cannot pick another),
//! the components that do not exist yet are recorded, and after the run they are removed
//! again, deepest first, when they are still what the runtime made: an empty directory or an
//! empty file. Creating them changed their existing parent directory's times, which are put
//! back when its entries are the same as before, so overlayfs's copy-up of that parent carries
//! no change either (the overlay snapshotter drops such directories from the upper directory
//! on commit).
//!
//! Runs sharing one rootfs at the same time (in one executor) share the bookkeeping: each run's
//! record is kept until the last of them ends, which then cleans up for all (see
//! `SharedRootfs`), so one run never removes a mount point another is still using.
//!
//! Destinations inside another mount (`/dev/pts` in the `/dev` tmpfs, a bind mount inside a
//! bind mount) are not in the rootfs at all and are skipped.

use std::collections::BTreeSet;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::fsutil::{IoContext, PathError, lstat, set_times};
use crate::inroot::resolve_in_root;

/// The mount points one run created, to remove afterwards.
#[derive(Debug, Default)]
pub(crate) struct MountPoints {
    rootfs: PathBuf,
    /// In-root absolute paths that did not exist before the run, parents before children.
    created: Vec<PathBuf>,
    /// Existing directories that got a new entry: their metadata and entry count before.
    parents: Vec<(PathBuf, Metadata, usize)>,
}

fn host_path(rootfs: &Path, in_root: &Path) -> PathBuf {
    rootfs.join(in_root.strip_prefix("/").unwrap_or(in_root))
}

fn entry_count(dir: &Path) -> Result<usize, PathError> {
    Ok(fs::read_dir(dir).at("read directory", dir)?.count())
}

/// Resolve the spec's mount destinations inside `rootfs` (rewriting them to the resolved
/// paths) and record which of their components are missing.
pub(crate) fn prepare(rootfs: &Path, spec: &mut Spec) -> Result<MountPoints, PathError> {
    let mut points = MountPoints {
        rootfs: rootfs.to_path_buf(),
        ..MountPoints::default()
    };
    let mut seen_created: BTreeSet<PathBuf> = BTreeSet::new();
    let mut seen_parents: BTreeSet<PathBuf> = BTreeSet::new();
    let mut earlier: Vec<PathBuf> = Vec::new();
    let Some(mounts) = spec.mounts_mut().as_mut() else {
        return Ok(points);
    };
    for mount in mounts.iter_mut() {
        let destination = mount.destination().clone();
        let nested = earlier
            .iter()
            .any(|outer| destination != *outer && destination.starts_with(outer));
        if nested {
            earlier.push(destination);
            continue;
        }
        let resolved = resolve_in_root(rootfs, &destination)?;
        if resolved.path != destination {
            mount.set_destination(resolved.path.clone());
        }
        earlier.push(resolved.path.clone());
        let Some(first_missing) = resolved.first_missing else {
            continue;
        };
        if let Some(parent) = first_missing.parent() {
            let host = host_path(rootfs, parent);
            if seen_parents.insert(parent.to_path_buf())
                && let Some(meta) = lstat(&host)?
                && meta.is_dir()
            {
                let count = entry_count(&host)?;
                points.parents.push((host, meta, count));
            }
        }
        let mut path = first_missing.clone();
        let rest = resolved
            .path
            .strip_prefix(&first_missing)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut components = rest.components();
        loop {
            if seen_created.insert(path.clone()) {
                points.created.push(path.clone());
            }
            match components.next() {
                Some(next) => path.push(next),
                None => break,
            }
        }
    }
    Ok(points)
}

/// The runs in progress on each rootfs, and the records of those that ended before the last.
#[derive(Debug, Default)]
pub(crate) struct ActiveRootfs {
    runs: std::collections::HashMap<PathBuf, SharedRootfs>,
}

#[derive(Debug, Default)]
struct SharedRootfs {
    running: usize,
    /// Records of runs that ended while others were still running, oldest first.
    ended: Vec<MountPoints>,
}

impl ActiveRootfs {
    /// A run on `rootfs` begins.
    pub(crate) fn enter(&mut self, rootfs: &Path) {
        self.runs.entry(rootfs.to_path_buf()).or_default().running += 1;
    }

    /// A run on `rootfs` ended with `points`: the records to clean up now (all of them when it
    /// was the last run, none otherwise), newest first.
    pub(crate) fn leave(&mut self, rootfs: &Path, points: MountPoints) -> Vec<MountPoints> {
        let Some(shared) = self.runs.get_mut(rootfs) else {
            return vec![points];
        };
        shared.running = shared.running.saturating_sub(1);
        shared.ended.push(points);
        if shared.running > 0 {
            return Vec::new();
        }
        let mut all = self
            .runs
            .remove(rootfs)
            .map(|shared| shared.ended)
            .unwrap_or_default();
        all.reverse();
        all
    }
}

impl MountPoints {
    /// The in-root paths recorded as missing before the run.
    #[cfg(test)]
    pub(crate) fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// Remove what the runtime created; returns the paths left in place because the process
    /// put something in them.
    pub(crate) fn cleanup(&mut self) -> Result<Vec<PathBuf>, PathError> {
        let mut kept = Vec::new();
        for in_root in self.created.drain(..).rev() {
            let host = host_path(&self.rootfs, &in_root);
            let Some(meta) = lstat(&host)? else { continue };
            let removed = if meta.is_dir() {
                match fs::remove_dir(&host) {
                    Ok(()) => true,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
                    Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) => false,
                    Err(err) => return Err(err).at("remove mount point", &host),
                }
            } else if meta.is_file() && meta.size() == 0 {
                match fs::remove_file(&host) {
                    Ok(()) => true,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
                    Err(err) => return Err(err).at("remove mount point", &host),
                }
            } else {
                false
            };
            if !removed {
                kept.push(in_root);
            }
        }
        for (dir, meta, count) in self.parents.drain(..).rev() {
            if lstat(&dir)?.is_some_and(|m| m.is_dir()) && entry_count(&dir)? == count {
                set_times(&dir, &meta)?;
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EtcFiles, Mount, MountKind, ProcessSpec, runtime_spec};

    #[test]
    fn missing_destinations_are_recorded_and_removed_after() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("proc")).unwrap();
        fs::write(r.join("etc/hostname"), "old\n").unwrap();
        let mut process = ProcessSpec::new(vec!["true".into()]);
        process.mounts.push(Mount {
            kind: MountKind::Tmpfs { size: None },
            destination: PathBuf::from("/cache/go"),
        });
        let mut spec = runtime_spec(&process, r, &EtcFiles::in_dir(Path::new("/b"))).unwrap();
        let mut points = prepare(r, &mut spec).unwrap();
        let created: Vec<&str> = points
            .created()
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect();
        assert_eq!(
            created,
            [
                "/dev",
                "/sys",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/cache",
                "/cache/go"
            ]
        );

        // What a runtime would do, plus the process writing into one of them.
        let etc_before = fs::symlink_metadata(r.join("etc")).unwrap();
        for dir in ["dev", "sys", "cache/go"] {
            fs::create_dir_all(r.join(dir)).unwrap();
        }
        fs::write(r.join("etc/hosts"), "").unwrap();
        fs::write(r.join("etc/resolv.conf"), "").unwrap();
        fs::write(r.join("cache/kept"), "written by the process").unwrap();

        let kept = points.cleanup().unwrap();
        assert_eq!(kept, [PathBuf::from("/cache")]);
        for gone in ["dev", "sys", "etc/hosts", "etc/resolv.conf", "cache/go"] {
            assert!(!r.join(gone).exists(), "{gone}");
        }
        assert!(r.join("etc/hostname").exists());
        let etc_after = fs::symlink_metadata(r.join("etc")).unwrap();
        assert_eq!(etc_before.mtime(), etc_after.mtime());
        assert_eq!(etc_before.mtime_nsec(), etc_after.mtime_nsec());
    }

    #[test]
    fn destinations_behind_symlinks_are_rewritten_to_the_in_root_target() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("run")).unwrap();
        std::os::unix::fs::symlink("/run/resolve/stub.conf", r.join("etc/resolv.conf")).unwrap();
        let process = ProcessSpec::new(vec!["true".into()]);
        let mut spec = runtime_spec(&process, r, &EtcFiles::in_dir(Path::new("/b"))).unwrap();
        let points = prepare(r, &mut spec).unwrap();
        let destinations: Vec<PathBuf> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().clone())
            .collect();
        assert!(destinations.contains(&PathBuf::from("/run/resolve/stub.conf")));
        assert!(!destinations.contains(&PathBuf::from("/etc/resolv.conf")));
        assert!(points.created().contains(&PathBuf::from("/run/resolve")));
        assert!(
            points
                .created()
                .contains(&PathBuf::from("/run/resolve/stub.conf"))
        );
    }
}
