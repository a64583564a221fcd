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

/// One entry below a copied directory, borrowed while the tree is walked (see
/// [`Roots::walk`]): the streaming form of [`Item`].
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    /// Path relative to the copy root.
    pub rel: &'a str,
    /// Path in the source tree.
    pub src: &'a str,
    /// Its metadata.
    pub meta: &'a FileMeta,
    /// See [`Item::implicit`].
    pub implicit: bool,
    /// What the tree knows of it without reading it (content digest, xattr sum).
    pub known: crate::source::Known,
}

/// The copy roots of a source list, resolved, with what selects the entries below them:
/// [`resolve_sources`] without the entries, which [`Roots::walk`] streams on demand.
#[derive(Debug)]
pub struct Roots {
    /// The resolved sources; their `items` are empty.
    pub sources: Vec<ResolvedSource>,
    /// `--parents` include matcher of each written source.
    includes: Vec<Option<PatternMatcher>>,
    /// For each resolved source, the index of its written source in `includes`.
    include_of: Vec<usize>,
    exclude: Option<PatternMatcher>,
}

/// Resolves every source of one COPY/ADD against `tree`, with the entries below each
/// directory root.
pub fn resolve_sources(
    tree: &dyn SourceTree,
    sources: &[String],
    opts: &SelectOptions,
) -> Result<Vec<ResolvedSource>, CopyError> {
    let mut roots = resolve_roots(tree, sources, opts)?;
    for i in 0..roots.sources.len() {
        let mut items = Vec::new();
        roots.walk(tree, i, &mut |item| {
            items.push(Item {
                rel: item.rel.to_string(),
                src: item.src.to_string(),
                meta: item.meta.clone(),
                implicit: item.implicit,
            });
            Ok(())
        })?;
        roots.sources[i].items = items;
    }
    Ok(roots.sources)
}

/// Resolves the roots of every source of one COPY/ADD against `tree` (wildcards expanded,
/// symlinks followed, literal sources checked), without walking below them.
pub fn resolve_roots(
    tree: &dyn SourceTree,
    sources: &[String],
    opts: &SelectOptions,
) -> Result<Roots, CopyError> {
    let exclude = if opts.exclude.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&opts.exclude)?)
    };
    let mut out = Vec::new();
    let mut includes = Vec::new();
    let mut include_of = Vec::new();
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
            let base_name = if m.is_empty() {
                "/".to_string()
            } else {
                paths::base(&m).to_string()
            };
            include_of.push(includes.len());
            out.push(ResolvedSource {
                written: written.clone(),
                base_name,
                root,
                root_meta,
                items: Vec::new(),
            });
        }
        includes.push(include);
    }
    Ok(Roots {
        sources: out,
        includes,
        include_of,
        exclude,
    })
}

impl Roots {
    /// Streams the entries below root `index` (nothing for a non-directory root) in pre-order,
    /// exactly the items [`resolve_sources`] collects.
    pub fn walk(
        &self,
        tree: &dyn SourceTree,
        index: usize,
        visit: &mut dyn FnMut(ItemRef<'_>) -> Result<(), CopyError>,
    ) -> Result<(), CopyError> {
        let Some(source) = self.sources.get(index) else {
            return Ok(());
        };
        if !source.root_meta.is_dir() {
            return Ok(());
        }
        let include = self
            .include_of
            .get(index)
            .and_then(|&i| self.includes.get(i))
            .and_then(Option::as_ref);
        let mut walk = Walk {
            tree,
            include,
            exclude: self.exclude.as_ref(),
            pending: Vec::new(),
            visit,
        };
        walk.dir(
            &source.root,
            "",
            &MatchInfo::default(),
            &MatchInfo::default(),
        )
    }
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

/// Directories that are not selected themselves (`--parents`) are held back until something
/// below them is selected, then reported (as implicit) before it.
struct Walk<'a, 'v> {
    tree: &'a dyn SourceTree,
    include: Option<&'a PatternMatcher>,
    exclude: Option<&'a PatternMatcher>,
    /// Unselected directories on the current path not reported yet: (rel, src, meta).
    pending: Vec<(String, String, FileMeta)>,
    visit: &'v mut dyn FnMut(ItemRef<'_>) -> Result<(), CopyError>,
}

impl Walk<'_, '_> {
    fn emit(&mut self, item: ItemRef<'_>) -> Result<(), CopyError> {
        for (rel, src, meta) in std::mem::take(&mut self.pending) {
            (self.visit)(ItemRef {
                rel: &rel,
                src: &src,
                meta: &meta,
                implicit: true,
                known: crate::source::Known::default(),
            })?;
        }
        (self.visit)(item)
    }

    /// Walks directory `src` (tree path) whose copy-relative path is `rel`.
    fn dir(
        &mut self,
        src: &str,
        rel: &str,
        include_info: &MatchInfo,
        exclude_info: &MatchInfo,
    ) -> Result<(), CopyError> {
        // One path buffer per directory level, reused for each child.
        let mut child_src = String::with_capacity(src.len() + 32);
        let mut child_rel = String::with_capacity(rel.len() + 32);
        let mut failed: Option<CopyError> = None;
        let tree = self.tree;
        let listed = tree.visit_dir(src, &mut |name, meta, known| {
            child_src.clear();
            if !src.is_empty() {
                child_src.push_str(src);
                child_src.push('/');
            }
            child_src.push_str(name);
            child_rel.clear();
            if !rel.is_empty() {
                child_rel.push_str(rel);
                child_rel.push('/');
            }
            child_rel.push_str(name);
            match self.child(
                &child_src,
                &child_rel,
                meta,
                known,
                include_info,
                exclude_info,
            ) {
                Ok(()) => std::ops::ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    std::ops::ControlFlow::Break(())
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        listed.map_err(|e| io_err(src, e))
    }

    fn child(
        &mut self,
        src: &str,
        rel: &str,
        meta: &FileMeta,
        known: crate::source::Known,
        include_info: &MatchInfo,
        exclude_info: &MatchInfo,
    ) -> Result<(), CopyError> {
        let (included, child_include) = match self.include {
            Some(m) => m.matches_using_parent_results(rel, include_info),
            None => (true, MatchInfo::default()),
        };
        let (excluded, child_exclude) = match self.exclude {
            Some(m) => m.matches_using_parent_results(rel, exclude_info),
            None => (false, MatchInfo::default()),
        };
        let selected = included && !excluded;
        let item = ItemRef {
            rel,
            src,
            meta,
            implicit: false,
            known,
        };
        if meta.kind == FileKind::Dir {
            if selected {
                self.emit(item)?;
            } else {
                self.pending
                    .push((rel.to_string(), src.to_string(), meta.clone()));
            }
            let depth = self.pending.len();
            self.dir(src, rel, &child_include, &child_exclude)?;
            if !selected && self.pending.len() == depth {
                // Nothing inside was selected: the directory is not created at all.
                self.pending.pop();
            }
        } else if selected {
            self.emit(item)?;
        }
        Ok(())
    }
}
