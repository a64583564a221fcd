//! The copying snapshotter, for hosts where overlayfs cannot be mounted (a nested container
//! without the privilege, a filesystem overlayfs refuses as upper).
//!
//! `prepare` materializes the merged view by copying the lowers, bottom-first, into the target:
//! a whiteout deletes what is below it, an opaque directory replaces the directory below it.
//! `commit` computes the diff back by comparing the target with the merged lowers (read in
//! place, see [`MergedLowers`]) and writes it into the upper directory in the overlay-diff
//! format, as overlayfs would have left it: new and changed entries copied whole, deletions as
//! whiteouts, a directory whose lower children are all gone as an opaque directory.
//!
//! This is slow by design: prepare copies every byte of every layer, commit walks the whole
//! tree (comparing metadata only: type, permissions, owner, size, mtime, symlink target, xattrs,
//! like docker's naive differ). Use it only when overlayfs is unavailable.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::Path;

use super::{ActiveSnapshot, MergedLowers, SnapshotError, Snapshotter, UpperDir, check_dir};
use crate::fsutil::{
    IoContext, LinkMap, PathError, clear_dir, copy_metadata, copy_node, copy_tree, create_dir_like,
    is_opaque, is_whiteout, lstat, make_whiteout, remove_all, same_node, set_opaque, set_times,
    sorted_entries,
};

/// Materializes views by copying. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct CopySnapshotter;

impl CopySnapshotter {
    pub fn new() -> Self {
        Self
    }
}

impl Snapshotter for CopySnapshotter {
    fn name(&self) -> &'static str {
        "copy"
    }

    /// A view without an upper directory is a plain copy: nothing stops writes to it, so
    /// read-only users (bind-mount sources) must mount it read-only themselves.
    fn prepare(
        &self,
        lowers: &[&Path],
        upper: Option<&UpperDir>,
        target: &Path,
    ) -> Result<ActiveSnapshot, SnapshotError> {
        for lower in lowers {
            check_dir("lower", lower, false)?;
        }
        check_dir("target", target, true)?;
        if let Some(upper) = upper {
            check_dir("upper", &upper.upper, true)?;
        }
        let active = ActiveSnapshot {
            target: target.to_path_buf(),
            lowers: lowers.iter().map(|p| p.to_path_buf()).collect(),
            upper: upper.cloned(),
            mounted: false,
            made_by: self.name(),
        };
        for lower in lowers.iter().rev() {
            if let Err(err) = apply_lower(lower, target) {
                let _ = clear_dir(target);
                return Err(err.into());
            }
        }
        Ok(active)
    }

    fn commit(&self, active: ActiveSnapshot) -> Result<(), SnapshotError> {
        active.check_made_by(self.name())?;
        let Some(upper) = &active.upper else {
            clear_dir(&active.target)?;
            return Err(SnapshotError::ReadOnly {
                target: active.target.clone(),
            });
        };
        let lowers = MergedLowers::new(active.lowers.clone());
        let mut differ = Differ {
            target: &active.target,
            upper: &upper.upper,
            lowers: &lowers,
            links: LinkMap::new(),
        };
        differ.diff_dir(Path::new(""))?;
        clear_dir(&active.target)?;
        Ok(())
    }

    fn remove(&self, active: ActiveSnapshot) -> Result<(), SnapshotError> {
        active.check_made_by(self.name())?;
        clear_dir(&active.target)?;
        if let Some(upper) = &active.upper {
            clear_dir(&upper.upper)?;
        }
        Ok(())
    }
}

/// Apply one overlay-diff directory onto the materialized tree `dst`.
fn apply_lower(src: &Path, dst: &Path) -> Result<(), PathError> {
    let mut links = LinkMap::new();
    apply_dir(src, dst, &mut links)
}

fn apply_dir(src: &Path, dst: &Path, links: &mut LinkMap) -> Result<(), PathError> {
    for name in sorted_entries(src)? {
        let from = src.join(&name);
        let to = dst.join(&name);
        let Some(meta) = lstat(&from)? else { continue };
        if is_whiteout(&meta) {
            remove_all(&to)?;
            continue;
        }
        if meta.is_dir() {
            let existing = lstat(&to)?;
            match existing {
                Some(existing) if existing.is_dir() => {
                    if is_opaque(&from)? {
                        clear_dir(&to)?;
                    }
                    copy_metadata(&from, &meta, &to)?;
                }
                Some(_) => {
                    remove_all(&to)?;
                    create_dir_like(&from, &meta, &to)?;
                }
                None => create_dir_like(&from, &meta, &to)?,
            }
            apply_dir(&from, &to, links)?;
            set_times(&to, &meta)?;
        } else {
            remove_all(&to)?;
            copy_node(&from, &meta, &to, links)?;
        }
    }
    Ok(())
}

/// Computes the overlay-style diff of the materialized tree against the lowers.
struct Differ<'a> {
    target: &'a Path,
    upper: &'a Path,
    lowers: &'a MergedLowers,
    /// Hard links among the new and changed files of the diff.
    links: LinkMap,
}

impl Differ<'_> {
    /// Create `upper/rel` and its missing ancestors as copies of the target's directories, the
    /// way overlayfs copies up the parents of a changed entry.
    fn ensure_upper_dir(&self, rel: &Path) -> Result<(), PathError> {
        let path = self.upper.join(rel);
        if lstat(&path)?.is_some() {
            return Ok(());
        }
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.ensure_upper_dir(parent)?;
        }
        let source = self.target.join(rel);
        let meta = fs::symlink_metadata(&source).at("stat", &source)?;
        create_dir_like(&source, &meta, &path)
    }

    fn diff_dir(&mut self, rel: &Path) -> Result<(), PathError> {
        let lower_children = self.lowers.children(rel)?;
        let target_dir = self.target.join(rel);
        let names: BTreeSet<OsString> = sorted_entries(&target_dir)?.into_iter().collect();

        // Every lower child gone: one opaque directory says it, instead of a whiteout each.
        let opaque =
            !lower_children.is_empty() && lower_children.keys().all(|name| !names.contains(name));
        if opaque {
            self.ensure_upper_dir(rel)?;
            set_opaque(&self.upper.join(rel))?;
        }

        for name in &names {
            let child_rel = rel.join(name);
            let source = self.target.join(&child_rel);
            let Some(meta) = lstat(&source)? else {
                continue;
            };
            let lower = if opaque {
                None
            } else {
                lower_children.get(name)
            };
            match lower {
                None => {
                    self.ensure_upper_dir(rel)?;
                    copy_tree(&source, &self.upper.join(&child_rel), &mut self.links)?;
                }
                Some(lower) if meta.is_dir() && lower.meta.is_dir() => {
                    if !same_node(&source, &meta, &lower.path, &lower.meta)? {
                        self.ensure_upper_dir(&child_rel)?;
                    }
                    self.diff_dir(&child_rel)?;
                }
                Some(lower) => {
                    if same_node(&source, &meta, &lower.path, &lower.meta)? {
                        continue;
                    }
                    self.ensure_upper_dir(rel)?;
                    copy_tree(&source, &self.upper.join(&child_rel), &mut self.links)?;
                }
            }
        }

        if !opaque {
            for name in lower_children.keys().filter(|name| !names.contains(*name)) {
                self.ensure_upper_dir(rel)?;
                make_whiteout(&self.upper.join(rel).join(name))?;
            }
        }

        // Adding children changed the upper directory's mtime: put the target's back.
        let upper_dir = self.upper.join(rel);
        if !rel.as_os_str().is_empty() && lstat(&upper_dir)?.is_some() {
            let meta = fs::symlink_metadata(&target_dir).at("stat", &target_dir)?;
            set_times(&upper_dir, &meta)?;
        }
        Ok(())
    }
}
