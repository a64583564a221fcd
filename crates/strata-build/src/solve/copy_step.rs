//! COPY and ADD as build steps: sources split by kind (context or `--from`, URLs, heredocs),
//! the cache key from their content, and the copy into a writable view.

use super::cache::{self, KeyBuilder};
use super::history;
use super::layer::{Layer, ReadView};
use super::run::tempdir_in;
use super::stage::*;
use super::{BaseSource, BuildError, Shared};
use crate::copy::{self, CopySpec, SelectOptions};
use crate::source::{DirTree, SourceTree};
use std::sync::Arc;
use strata_dockerfile::{CopyCommand, CopySource, StageSource};
use strata_image::Digest;

pub(super) fn copy_step<'a>(
    shared: &'a Arc<Shared>,
    state: &'a mut StageState,
    _vertex: usize,
    copy: CopyCommand,
    is_add: bool,
    command_index: Option<usize>,
    stage_index: usize,
) -> StepFuture<'a> {
    Box::pin(async move {
        let instruction = if is_add { "ADD" } else { "COPY" };
        let mut paths = Vec::new();
        let mut urls = Vec::new();
        let mut heredocs = Vec::new();
        let mut written = Vec::new();
        for source in &copy.sources {
            match source {
                CopySource::Path(p) if is_add && copy::http::is_url(p) => {
                    urls.push(p.clone());
                    written.push(p.clone());
                }
                CopySource::Path(p) => {
                    paths.push(p.clone());
                    written.push(p.clone());
                }
                CopySource::Heredoc(doc) => {
                    heredocs.push((doc.name.clone(), doc.content()));
                    written.push(format!("<<{}", doc.name));
                }
            }
        }
        if copy.checksum.is_some() && (urls.len() != 1 || copy.sources.len() != 1) {
            let reason = if copy.sources.len() != 1 {
                "checksum can't be specified for multiple sources"
            } else {
                "checksum requires HTTP(S) or Git sources"
            };
            return Err(BuildError::Expand {
                rendered: reason.to_string(),
            });
        }
        let dest_abs = crate::paths::resolve_dest(&state.workdir(), &copy.dest);
        if copy.sources.len() > 1 && !dest_abs.ends_with('/') {
            return Err(copy::CopyError::MultipleSourcesNeedDirectory { instruction }.into());
        }
        let created_by = history::copy(
            instruction,
            copy.parents,
            copy.chown.as_deref(),
            copy.chmod.as_deref(),
            &written,
            &copy.dest,
        );
        let spec = |sources: Vec<String>| CopySpec {
            is_add,
            sources,
            dest: copy.dest.clone(),
            workdir: state.workdir(),
            select: SelectOptions {
                exclude: copy.exclude.clone(),
                parents: copy.parents,
            },
            chown: copy.chown.clone(),
            chmod: copy.chmod.clone(),
            unpack: copy.unpack,
        };

        // The trees the sources come from, prepared (resolved) now so the key covers them.
        let scratch = tempdir_in(&shared.store.root().join("tmp"))?;
        let mut key = KeyBuilder::new("copy", &state.key)
            .field("created_by", &created_by)
            .field("dest", &dest_abs)
            .list("exclude", &copy.exclude)
            .field("parents", &copy.parents.to_string())
            .field("unpack", &format!("{:?}", copy.unpack));
        let mut from_view: Option<ReadView> = None;
        let mut from_tree: Option<DirTree> = None;
        if !paths.is_empty() {
            if let Some(from) = &copy.from {
                let (source_key, layers) =
                    from_source(shared, from, command_index, stage_index, None).await?;
                key = key
                    .field("from", &source_key.to_string())
                    .list("sources", &paths);
                let store = shared.store.clone();
                let snapshotter = shared.snapshotter.clone();
                let view = tokio::task::spawn_blocking(move || {
                    ReadView::prepare(&store, snapshotter, &layers)
                })
                .await
                .map_err(join_error)??;
                from_tree = Some(DirTree::new(view.root()));
                from_view = Some(view);
            } else {
                let sum = copy::prepare_checksum(shared.context.as_ref(), &spec(paths.clone()))?;
                key = key.field("context", &sum.to_string());
            }
        }
        let mut downloads = Vec::new();
        for url in &urls {
            let checksum = match &copy.checksum {
                Some(c) => Some(c.parse::<Digest>().map_err(|_| BuildError::Expand {
                    rendered: format!("invalid checksum {c:?}: expected sha256:<64 hex digits>"),
                })?),
                None => None,
            };
            let dir = scratch.path().join(format!("url{}", downloads.len()));
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                path: dir.clone(),
                source,
            })?;
            let url_owned = url.clone();
            let dir_owned = dir.clone();
            let downloaded = tokio::task::spawn_blocking(move || {
                copy::http::download(&url_owned, &dir_owned, checksum.as_ref())
            })
            .await
            .map_err(join_error)?
            .map_err(copy::CopyError::from)?;
            key = key.field(
                "url",
                &format!(
                    "{url}\0{}\0{:?}",
                    downloaded.digest, downloaded.last_modified
                ),
            );
            downloads.push((dir, downloaded));
        }
        let heredoc_dir = scratch.path().join("heredocs");
        let heredoc = if heredocs.is_empty() {
            None
        } else {
            std::fs::create_dir_all(&heredoc_dir).map_err(|source| BuildError::Io {
                path: heredoc_dir.clone(),
                source,
            })?;
            let (tree, names) = copy::heredoc_tree(&heredoc_dir, &heredocs)?;
            let prepared = copy::prepare(&tree, &spec(names.clone()))?;
            key = key.field("heredocs", &copy::checksum(&tree, &prepared)?.to_string());
            Some((tree, names))
        };
        let key = key.finish();
        if let Some((result, time)) = lookup(shared, &key) {
            state.time = time;
            apply_result(shared, state, key, &result, created_by);
            return Ok(true);
        }

        let context = shared.context.clone();
        let mut jobs: Vec<(Box<dyn SourceTree + Send>, CopySpec)> = Vec::new();
        if !paths.is_empty() {
            match from_tree.take() {
                Some(tree) => jobs.push((Box::new(tree), spec(paths.clone()))),
                None => jobs.push((Box::new(ContextRef(context)), spec(paths.clone()))),
            }
        }
        for (dir, downloaded) in &downloads {
            let mut s = spec(vec![downloaded.file_name.clone()]);
            s.unpack = Some(false);
            s.select = SelectOptions::default();
            jobs.push((Box::new(DirTree::with_owner(dir, (0, 0))), s));
        }
        if let Some((tree, names)) = heredoc {
            jobs.push((Box::new(tree), spec(names)));
        }
        let result = with_view(shared, state, move |root| async move {
            tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
                for (tree, spec) in &jobs {
                    let prepared = copy::prepare(tree.as_ref(), spec)?;
                    copy::execute(&root, tree.as_ref(), &prepared)?;
                }
                Ok(())
            })
            .await
            .map_err(join_error)?
        })
        .await?;
        drop(from_view);
        drop(scratch);
        let time = chrono::Utc::now();
        cache::record(&shared.store, &key, &result, time)?;
        state.time = time;
        apply_result(shared, state, key, &result, created_by);
        Ok(false)
    })
}

/// The build context as an owned, sendable source tree.
pub(super) struct ContextRef(Arc<crate::context::BuildContext>);

impl SourceTree for ContextRef {
    fn lstat(&self, rel: &str) -> std::io::Result<Option<crate::source::FileMeta>> {
        self.0.lstat(rel)
    }
    fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        self.0.list(rel)
    }
    fn open(&self, rel: &str) -> std::io::Result<std::fs::File> {
        self.0.open(rel)
    }
    fn host_path(&self, rel: &str) -> std::path::PathBuf {
        self.0.host_path(rel)
    }
    fn forced_owner(&self) -> Option<(u32, u32)> {
        self.0.forced_owner()
    }
    fn content_digest(&self, rel: &str) -> Option<std::io::Result<Digest>> {
        self.0.content_digest(rel)
    }
}

/// The key and layers a `--from` names: a stage of this build or an image.
pub(super) async fn from_source(
    shared: &Shared,
    from: &str,
    command_index: Option<usize>,
    stage_index: usize,
    mount: Option<usize>,
) -> Result<(Digest, Vec<Layer>), BuildError> {
    let planned = shared.plan.stage(stage_index);
    let resolved = command_index
        .and_then(|ci| {
            planned.and_then(|p| p.refs.iter().find(|r| r.command == ci && r.mount == mount))
        })
        .map(|r| r.source.clone());
    let source = match resolved {
        Some(s) => s,
        // ONBUILD triggers are not planned: a name of this Dockerfile's stages, else an image.
        None => match shared
            .dockerfile
            .stages
            .iter()
            .find(|s| s.name().is_some_and(|n| n.eq_ignore_ascii_case(from)))
        {
            Some(stage) => StageSource::Stage(stage.index),
            None => StageSource::Image(from.to_string()),
        },
    };
    if let StageSource::Image(name) = &source {
        super::ensure_image(shared, name).await?;
    }
    match super::resolve_source(shared, &source)? {
        BaseSource::Scratch => Ok((cache::base_key("scratch", ""), Vec::new())),
        BaseSource::Stage(i) => {
            let out = shared.output(i).ok_or_else(|| BuildError::StageNotBuilt {
                step: format!("COPY --from={from}"),
                name: from.to_string(),
            })?;
            Ok((out.key, out.layers.clone()))
        }
        BaseSource::Image {
            manifest_digest,
            layers,
            ..
        } => {
            super::layer::ensure_snapshots(&shared.store, &layers)?;
            Ok((
                cache::base_key("image", &manifest_digest.to_string()),
                layers,
            ))
        }
    }
}
