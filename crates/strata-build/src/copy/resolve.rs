//! The source side of COPY/ADD: which entries a source list names, in BuildKit's terms.
//!
//! - A source is confined to its tree (`../x` is `x`); symlinks along it are followed inside
//!   the tree, a final symlink too (BuildKit's `FollowSymlinks`), but symlinks *inside* a
//!   copied directory are copied as symlinks.
//! - Wildcards use Go's `filepath.Match` on the path below the last wildcard-free directory; a
//!   matching directory is not searched further. A wildcard matching nothing copies nothing
//!   (BuildKit's `AllowEmptyWildcard`); a literal path that does not exist is an error.
//! - A directory source copies its contents. `--exclude` patterns (patternmatcher syntax) are
//!   matched against paths relative to the copied directory, and also against each wildcard
//!   match relative to the wildcard's directory, so `COPY --exclude=*.md *.md.in ./` works as
//!   the reference describes.
//! - `--parents`: the source is split at an optional `/./` pivot; everything after it is kept
//!   below the destination, selected with patternmatcher include rules; directories that are
//!   not themselves included are created only when something inside them is.
//!
//! The result, [`ResolvedSource`], drives both the content checksum (the cache key) and the
//! copy itself, so the key describes exactly what is copied.

use crate::copy::CopyError;
use crate::glob::{self, GoGlob};
use crate::ignore::{MatchInfo, PatternMatcher};
use crate::paths;
use crate::source::{self, FileKind, FileMeta, SourceTree};

/// One entry below a copied directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Path relative to the copy root (the destination-relative name).
    pub rel: String,
    /// Path in the source tree.
    pub src: String,
    /// Its metadata.
    pub meta: FileMeta,
    /// A directory that is not itself selected but holds something that is (`--parents`):
    /// created if missing, metadata copied only then.
    pub implicit: bool,
}

/// One resolved source (a literal path or one wildcard match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    /// The source as written in the Dockerfile.
    pub written: String,
    /// The name used when copying into an existing directory (the match's base name, before
    /// following a final symlink).
    pub base_name: String,
    /// The symlink-free path of the copy root in the tree (`""` = the tree root).
    pub root: String,
    /// Metadata of the copy root.
    pub root_meta: FileMeta,
    /// Entries below a directory root, in pre-order.
    pub items: Vec<Item>,
}

/// Options that change which entries are selected.
#[derive(Debug, Default, Clone)]
pub struct SelectOptions {
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
}

/// Resolves every source of one COPY/ADD against `tree`.
pub fn resolve_sources(
    tree: &dyn SourceTree,
    sources: &[String],
    opts: &SelectOptions,
) -> Result<Vec<ResolvedSource>, CopyError> {
    let exclude = if opts.exclude.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&opts.exclude)?)
    };
    let mut out = Vec::new();
    for written in sources {
        let (src, include) = if opts.parents {
            let (parent, pattern) = match written.split_once("/./") {
                Some((parent, pattern)) => (parent.to_string(), pattern.to_string()),
                None => ("/".to_string(), written.clone()),
            };
            let pattern = paths::confine(&pattern);
            if !glob::contains_wildcards(&parent) && !glob::contains_wildcards(&pattern) {
                // BuildKit's RequiredPaths: a literal --parents source must exist.
                let full = paths::join(&paths::confine(&parent), &pattern);
                let resolved = source::resolve(tree, &glob::unescape(&full), true)?;
                if tree
                    .lstat(&resolved)
                    .map_err(|e| io_err(&resolved, e))?
                    .is_none()
                {
                    return Err(CopyError::SourceNotFound {
                        path: format!("/{full}"),
                    });
                }
            }
            (parent, Some(PatternMatcher::new(&[pattern])?))
        } else {
            (written.clone(), None)
        };
        let confined = paths::confine(&src);
        let matches = if glob::contains_wildcards(&confined) {
            resolve_wildcards(tree, &confined, exclude.as_ref())?
        } else {
            vec![glob::unescape(&confined)]
        };
        for m in matches {
            let root = match source::resolve(tree, &m, true) {
                Ok(root) => root,
                Err(source::ResolveError::NotFound { .. }) => {
                    return Err(CopyError::SourceNotFound {
                        path: format!("/{m}"),
                    });
                }
                Err(e) => return Err(e.into()),
            };
            let Some(root_meta) = tree.lstat(&root).map_err(|e| io_err(&root, e))? else {
                return Err(CopyError::SourceNotFound {
                    path: format!("/{m}"),
                });
            };
            let mut items = Vec::new();
            if root_meta.is_dir() {
                let mut walk = Walk {
                    tree,
                    include: include.as_ref(),
                    exclude: exclude.as_ref(),
                    items: &mut items,
                };
                walk.dir(&root, "", &MatchInfo::default(), &MatchInfo::default())?;
            }
            let base_name = if m.is_empty() {
                "/".to_string()
            } else {
                paths::base(&m).to_string()
            };
            out.push(ResolvedSource {
                written: written.clone(),
                base_name,
                root,
                root_meta,
                items,
            });
        }
    }
    Ok(out)
}

fn io_err(path: &str, source: std::io::Error) -> CopyError {
    CopyError::SourceIo {
        path: format!("/{path}"),
        source,
    }
}

/// BuildKit's `splitWildcards` + `resolveWildcards`: the wildcard-free leading directories are
/// resolved (following symlinks), then the tree below is searched for paths matching the rest.
fn resolve_wildcards(
    tree: &dyn SourceTree,
    pattern: &str,
    exclude: Option<&PatternMatcher>,
) -> Result<Vec<String>, CopyError> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let first_wild = parts
        .iter()
        .position(|p| glob::contains_wildcards(p))
        .unwrap_or(parts.len());
    let base = glob::unescape(&parts[..first_wild].join("/"));
    let rest = parts[first_wild..].join("/");
    let glob = GoGlob::new(&rest).map_err(|e| CopyError::BadPattern {
        pattern: pattern.to_string(),
        reason: e.reason,
    })?;
    let depth = parts.len() - first_wild;
    let base_resolved = match source::resolve(tree, &base, true) {
        Ok(b) => b,
        Err(source::ResolveError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), 0usize)];
    // Depth-first in name order, like filepath.Walk.
    while let Some((rel, level)) = stack.pop() {
        let dir = if rel.is_empty() {
            base_resolved.clone()
        } else {
            paths::join(&base_resolved, &rel)
        };
        match tree.lstat(&dir).map_err(|e| io_err(&dir, e))? {
            Some(meta) if meta.is_dir() => {}
            _ => continue,
        }
        let names = tree.list(&dir).map_err(|e| io_err(&dir, e))?;
        let mut children = Vec::new();
        for name in names {
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if glob.matches(&child_rel) {
                if exclude.is_some_and(|m| m.matches_or_parent_matches(&child_rel)) {
                    continue;
                }
                out.push(if base.is_empty() {
                    child_rel
                } else {
                    format!("{base}/{child_rel}")
                });
            } else if level + 1 < depth {
                children.push((child_rel, level + 1));
            }
        }
        children.reverse();
        stack.extend(children);
    }
    out.sort();
    Ok(out)
}

struct Walk<'a> {
    tree: &'a dyn SourceTree,
    include: Option<&'a PatternMatcher>,
    exclude: Option<&'a PatternMatcher>,
    items: &'a mut Vec<Item>,
}

impl Walk<'_> {
    /// Walks directory `src` (tree path) whose copy-relative path is `rel`.
    fn dir(
        &mut self,
        src: &str,
        rel: &str,
        include_info: &MatchInfo,
        exclude_info: &MatchInfo,
    ) -> Result<(), CopyError> {
        let names = self.tree.list(src).map_err(|e| io_err(src, e))?;
        for name in names {
            let child_src = if src.is_empty() {
                name.clone()
            } else {
                format!("{src}/{name}")
            };
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Some(meta) = self
                .tree
                .lstat(&child_src)
                .map_err(|e| io_err(&child_src, e))?
            else {
                continue;
            };
            let (included, child_include) = match self.include {
                Some(m) => m.matches_using_parent_results(&child_rel, include_info),
                None => (true, MatchInfo::default()),
            };
            let (excluded, child_exclude) = match self.exclude {
                Some(m) => m.matches_using_parent_results(&child_rel, exclude_info),
                None => (false, MatchInfo::default()),
            };
            let selected = included && !excluded;
            if meta.kind == FileKind::Dir {
                let mark = self.items.len();
                self.items.push(Item {
                    rel: child_rel.clone(),
                    src: child_src.clone(),
                    meta,
                    implicit: !selected,
                });
                self.dir(&child_src, &child_rel, &child_include, &child_exclude)?;
                if !selected && self.items.len() == mark + 1 {
                    // Nothing inside was selected: the directory is not created at all.
                    self.items.pop();
                }
            } else if selected {
                self.items.push(Item {
                    rel: child_rel,
                    src: child_src,
                    meta,
                    implicit: false,
                });
            }
        }
        Ok(())
    }
}
