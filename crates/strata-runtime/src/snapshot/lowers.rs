//! Reading the merged view of a stack of overlay-diff directories without mounting it.
//!
//! This is overlayfs's lookup done in user space, used to compute a diff against the lowers
//! (the copy snapshotter) and to recognize copied-up directories that carry no change (the
//! overlay snapshotter's commit).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

use crate::fsutil::{PathError, is_opaque, is_whiteout, lstat, sorted_entries};

/// A stack of lower directories, top-first.
#[derive(Debug, Clone)]
pub(crate) struct MergedLowers {
    lowers: Vec<PathBuf>,
}

/// One visible entry of the merged lowers: where it really lives.
#[derive(Debug)]
pub(crate) struct LowerEntry {
    pub path: PathBuf,
    pub meta: Metadata,
}

/// What one layer says about a path.
enum LayerVerdict {
    /// The path exists in this layer (and is not a whiteout).
    Found(LowerEntry),
    /// The path is deleted here, or an ancestor is a whiteout or not a directory: nothing below
    /// shows through.
    Hidden,
    /// Not in this layer, and an ancestor (or the path itself) is opaque here: nothing below
    /// shows through.
    OpaqueStop,
    /// Not in this layer; look further down.
    Absent,
}

impl MergedLowers {
    pub(crate) fn new(lowers: Vec<PathBuf>) -> Self {
        Self { lowers }
    }

    fn verdict(layer: &Path, rel: &Path) -> Result<LayerVerdict, PathError> {
        let mut current = layer.to_path_buf();
        let mut opaque_above = false;
        let components: Vec<_> = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        for (index, component) in components.iter().enumerate() {
            current.push(component);
            let last = index + 1 == components.len();
            match lstat(&current)? {
                None => {
                    return Ok(if opaque_above {
                        LayerVerdict::OpaqueStop
                    } else {
                        LayerVerdict::Absent
                    });
                }
                Some(meta) if is_whiteout(&meta) => return Ok(LayerVerdict::Hidden),
                Some(meta) if last => {
                    return Ok(LayerVerdict::Found(LowerEntry {
                        path: current,
                        meta,
                    }));
                }
                Some(meta) if !meta.is_dir() => return Ok(LayerVerdict::Hidden),
                Some(_) => {
                    if is_opaque(&current)? {
                        opaque_above = true;
                    }
                }
            }
        }
        // `rel` is the root: every layer has one.
        let meta = lstat(layer)?.ok_or_else(|| PathError {
            action: "stat lower",
            path: layer.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        Ok(LayerVerdict::Found(LowerEntry {
            path: layer.to_path_buf(),
            meta,
        }))
    }

    /// The entry the merged view shows at `rel` (relative to the root), if any.
    pub(crate) fn lookup(&self, rel: &Path) -> Result<Option<LowerEntry>, PathError> {
        for layer in &self.lowers {
            match Self::verdict(layer, rel)? {
                LayerVerdict::Found(entry) => return Ok(Some(entry)),
                LayerVerdict::Hidden | LayerVerdict::OpaqueStop => return Ok(None),
                LayerVerdict::Absent => {}
            }
        }
        Ok(None)
    }

    /// The children the merged view shows in directory `rel`, by name (empty when `rel` is not
    /// a directory of the view).
    pub(crate) fn children(&self, rel: &Path) -> Result<BTreeMap<OsString, LowerEntry>, PathError> {
        let mut seen: BTreeMap<OsString, Option<LowerEntry>> = BTreeMap::new();
        for layer in &self.lowers {
            let dir = match Self::verdict(layer, rel)? {
                LayerVerdict::Found(entry) if entry.meta.is_dir() => entry.path,
                LayerVerdict::Found(_) | LayerVerdict::Hidden | LayerVerdict::OpaqueStop => break,
                LayerVerdict::Absent => continue,
            };
            for name in sorted_entries(&dir)? {
                if seen.contains_key(&name) {
                    continue;
                }
                let path = dir.join(&name);
                let Some(meta) = lstat(&path)? else { continue };
                let entry = (!is_whiteout(&meta)).then_some(LowerEntry { path, meta });
                seen.insert(name, entry);
            }
            if is_opaque(&dir)? {
                break;
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|(name, entry)| entry.map(|e| (name, e)))
            .collect())
    }
}
