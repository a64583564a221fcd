//! COPY and ADD as build steps: sources split by kind (context or `--from`, URLs, heredocs),
//! the cache key from their content, and the copy into a writable view.
//!
//! A COPY from the build context also leaves a second, "previous result" record keyed like its
//! cache key but without the content checksum (parent key, instruction, destination, flags):
//! the layer it produced and where each of its regular files came from (a blob of
//! [`SourceIdentity`] entries). When the exact key misses because some sources changed, the
//! copy links every unchanged file from that result's committed snapshot instead of copying
//! its bytes (see [`crate::copy::apply`]); the layer is the same as a full copy's.
//!
//! `COPY --link` (without `--chmod`, as BuildKit) copies into an empty view, so its layer does
//! not depend on the parent: its key is the COPY recipe on the empty base (kind `copy-link`),
//! a changed base image or earlier step finds it cached, and the same diff is rebased onto the
//! stage's chain (a snapshot under the new chain id sharing the diff's files). The steps after
//! it are keyed on the parent's key combined with the `--link` key.

use super::cache::StepResult;
use super::cache::{self, KeyBuilder};
use super::history;
use super::layer::{Layer, ReadView, WritableView};
use super::run::tempdir_in;
use super::stage::*;
use super::{BaseSource, BuildError, Shared};
use crate::copy::apply::{self, CopyOutcome, PreviousCopy, SourceIdentity};
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
        // `--link` (BuildKit: when `--chmod` is not given) copies onto an empty base: the layer
        // does not depend on the parent, so ids in `--chown` cannot come from its passwd file.
        let link = copy.link && copy.chmod.is_none();
        let chown = match (&copy.chown, link) {
            (Some(spec), true) => Some(link_chown(spec)?),
            (spec, _) => spec.clone(),
        };
        let spec = |sources: Vec<String>| CopySpec {
            is_add,
            sources,
            dest: copy.dest.clone(),
            workdir: state.workdir(),
            select: SelectOptions {
                exclude: copy.exclude.clone(),
                parents: copy.parents,
            },
            chown: chown.clone(),
            chmod: copy.chmod.clone(),
            unpack: copy.unpack,
        };

        // The trees the sources come from, prepared (resolved) now so the key covers them.
        // Only URLs and heredocs need a scratch directory before the lookup: a cached COPY of
        // context or stage paths creates nothing.
        let scratch = if urls.is_empty() && heredocs.is_empty() {
            None
        } else {
            Some(tempdir_in(&shared.store.root().join("tmp"))?)
        };
        let scratch_path = scratch
            .as_ref()
            .map(|s| s.path().to_path_buf())
            .unwrap_or_default();
        // A `--link` layer is keyed on the empty base, not on the parent: a changed base image
        // or earlier step reuses it.
        let base_key = if link {
            cache::base_key("scratch", "")
        } else {
            state.key
        };
        let mut key = KeyBuilder::new(if link { "copy-link" } else { "copy" }, &base_key)
            .field("created_by", &created_by)
            .field("dest", &dest_abs)
            .list("exclude", &copy.exclude)
            .field("parents", &copy.parents.to_string())
            .field("unpack", &format!("{:?}", copy.unpack));
        // The key of the previous-result record: everything but the sources' content.
        let previous_base = key.clone().field("previous-result", "");
        // A `--from` source is keyed by its stage or image key; it is mounted only on a miss.
        let mut from_layers: Option<Vec<Layer>> = None;
        if !paths.is_empty() {
            if let Some(from) = &copy.from {
                let (source_key, layers) =
                    from_source(shared, from, command_index, stage_index, None).await?;
                key = key
                    .field("from", &source_key.to_string())
                    .list("sources", &paths);
                from_layers = Some(layers);
            } else {
                let sum = copy::prepare_checksum(shared.context.as_ref(), &spec(paths.clone()))?;
                key = key.field("context", &sum.to_string());
            }
        }
        // Remote sources. A git source is keyed by the commit its ref resolves to, so it is
        // fetched before the lookup (as BuildKit asks the remote first); so is a URL without
        // `--checksum`, keyed by its content and Last-Modified. A URL with `--checksum` is keyed
        // by that checksum, as BuildKit keys it: a cache hit makes no request at all, and the
        // download (verified against it) happens only on a miss.
        let mut downloads = Vec::new();
        let mut deferred = Vec::new();
        for url in &urls {
            let dir = scratch_path.join(format!("url{}", downloads.len() + deferred.len()));
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                path: dir.clone(),
                source,
            })?;
            let fetch = if copy::http::is_git_source(url) {
                // `--keep-git-dir` applies to git sources only; BuildKit ignores it for the
                // others, and so does this.
                Fetch::Git(copy::http::git::GitOptions {
                    keep_git_dir: copy.keep_git_dir.unwrap_or(false),
                    checksum: copy.checksum.clone(),
                })
            } else {
                match &copy.checksum {
                    Some(c) => {
                        let checksum = c.parse::<Digest>().map_err(|_| BuildError::Expand {
                            rendered: format!(
                                "invalid checksum {c:?}: expected sha256:<64 hex digits>"
                            ),
                        })?;
                        key = key.field("url", &format!("{url}\0checksum\0{checksum}"));
                        deferred.push((dir, url.clone(), checksum));
                        continue;
                    }
                    None => Fetch::Http(None),
                }
            };
            let downloaded = fetch_remote(url, &dir, fetch).await?;
            key = key.field(
                "url",
                &format!(
                    "{url}\0{}\0{:?}",
                    downloaded.digest, downloaded.last_modified
                ),
            );
            downloads.push((dir, downloaded));
        }
        let heredoc_dir = scratch_path.join("heredocs");
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
        // Only a COPY of context paths alone is incremental; `previous_key` is its record of
        // the previous result.
        let incremental = !is_add
            && copy.from.is_none()
            && urls.is_empty()
            && heredocs.is_empty()
            && !paths.is_empty();
        let previous_key = incremental.then(|| previous_base.finish());
        let key = key.finish();
        if let Some((result, time)) = lookup(shared, &key) {
            state.time = time;
            finish_step(shared, state, link.then_some(key), key, result, created_by).await?;
            return Ok(true);
        }
        let (base_layers, base_parent) = if link {
            (Vec::new(), None)
        } else {
            (state.layers.clone(), state.last_chain())
        };

        let context = shared.context.clone();
        if let Some(previous_key) = previous_key {
            let spec = spec(paths.clone());
            drop(scratch);
            let result = incremental_copy(
                shared,
                base_layers,
                base_parent,
                context,
                spec,
                &previous_key,
            )
            .await?;
            record_executed(shared, state, &key, &result)?;
            finish_step(shared, state, link.then_some(key), key, result, created_by).await?;
            return Ok(false);
        }
        for (dir, url, checksum) in deferred {
            let downloaded = fetch_remote(&url, &dir, Fetch::Http(Some(checksum))).await?;
            downloads.push((dir, downloaded));
        }
        let mut from_view: Option<ReadView> = None;
        let mut from_tree: Option<DirTree> = None;
        if let Some(layers) = from_layers {
            let view = read_view(shared, layers).await?;
            from_tree = Some(DirTree::new(view.root()));
            from_view = Some(view);
        }
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
        let result = copy_in_view(shared, base_layers, base_parent, move |root| {
            for (tree, spec) in &jobs {
                let prepared = copy::prepare(tree.as_ref(), spec)?;
                copy::execute(&root, tree.as_ref(), &prepared)?;
            }
            Ok(())
        })
        .await?;
        drop(from_view);
        drop(scratch);
        record_executed(shared, state, &key, &result)?;
        finish_step(shared, state, link.then_some(key), key, result, created_by).await?;
        Ok(false)
    })
}

/// A COPY of context paths: unchanged files of the previous result of the same instruction
/// on the same parent (the record under `previous_key`) are linked, not copied, and this
/// result becomes the record.
async fn incremental_copy(
    shared: &Arc<Shared>,
    layers: Vec<Layer>,
    parent: Option<Digest>,
    context: Arc<crate::context::BuildContext>,
    spec: CopySpec,
    previous_key: &Digest,
) -> Result<StepResult, BuildError> {
    let store = shared.store.clone();
    let snapshotter = shared.snapshotter.clone();
    let use_previous = !shared.options.no_cache;
    let key = *previous_key;
    let (view, previous) = tokio::task::spawn_blocking(move || {
        let previous = if use_previous {
            load_previous(&store, &key)
        } else {
            None
        };
        WritableView::prepare(&store, snapshotter.as_ref(), &layers).map(|v| (v, previous))
    })
    .await
    .map_err(join_error)??;
    let root = view.root().to_path_buf();
    let previous = Arc::new(previous);
    let prev = previous.clone();
    let copied = tokio::task::spawn_blocking(move || -> Result<CopyOutcome, BuildError> {
        let tree = ContextRef(context);
        let prepared = copy::prepare(&tree, &spec)?;
        Ok(apply::execute_tracked(
            &root,
            &tree,
            &prepared,
            prev.as_ref().as_ref(),
        )?)
    })
    .await
    .map_err(join_error)?;
    let outcome = match copied {
        Ok(outcome) => outcome,
        Err(e) => {
            view.discard(shared.snapshotter.as_ref());
            return Err(e);
        }
    };
    tracing::debug!(
        copied = outcome.stats.files,
        linked = outcome.stats.reused,
        "incremental copy"
    );
    let store = shared.store.clone();
    let snapshotter = shared.snapshotter.clone();
    let sde = shared.options.source_date_epoch;
    let key = *previous_key;
    tokio::task::spawn_blocking(move || -> Result<StepResult, BuildError> {
        let layer = view.commit_with(
            &store,
            snapshotter.as_ref(),
            parent.as_ref(),
            sde,
            |upper| match previous.as_ref() {
                Some(p) => Ok(apply::link_previous(upper, &p.snapshot, &outcome)?),
                None => Ok(()),
            },
        )?;
        Ok(match layer {
            Some(layer) => {
                                // Only an optimisation for the next build: a failure is not the build's.
                if let Err(error) = record_previous(&store, &key, &layer, &outcome.files) {
                    tracing::warn!(%error, "could not record the COPY result for incremental rebuilds");
                }
                StepResult::Layer(layer)
            }
            None => StepResult::Empty,
        })
    })
    .await
    .map_err(join_error)?
}

/// How a remote ADD source is fetched.
enum Fetch {
    /// An http(s) URL, verified against the `--checksum` digest when there is one.
    Http(Option<Digest>),
    /// A git repository with the Dockerfile's options.
    Git(copy::http::git::GitOptions),
}

/// Downloads (or checks out) `url` into `dir` on a blocking thread.
async fn fetch_remote(
    url: &str,
    dir: &std::path::Path,
    fetch: Fetch,
) -> Result<copy::http::Downloaded, BuildError> {
    let url = url.to_string();
    let dir = dir.to_path_buf();
    let downloaded = tokio::task::spawn_blocking(move || match fetch {
        Fetch::Http(checksum) => copy::http::download(&url, &dir, checksum.as_ref()),
        Fetch::Git(options) => copy::http::git::download(&url, &dir, &options),
    })
    .await
    .map_err(join_error)?
    .map_err(copy::CopyError::from)?;
    Ok(downloaded)
}

/// Runs `work` (blocking) in a writable view of `layers` and commits it on top of `parent`.
async fn copy_in_view(
    shared: &Arc<Shared>,
    layers: Vec<Layer>,
    parent: Option<Digest>,
    work: impl FnOnce(std::path::PathBuf) -> Result<(), BuildError> + Send + 'static,
) -> Result<StepResult, BuildError> {
    in_view(shared, layers, parent, |root| async move {
        tokio::task::spawn_blocking(move || work(root))
            .await
            .map_err(join_error)?
    })
    .await
}

/// Applies a step's result to the stage. A `--link` result (`link_key` is its cache key) is a
/// layer made on an empty base: it is rebased onto the stage's chain (the same diff and blob,
/// a snapshot under the new chain id), and the next steps build on a key combining the
/// parent's and this layer's.
async fn finish_step(
    shared: &Arc<Shared>,
    state: &mut StageState,
    link_key: Option<Digest>,
    key: Digest,
    result: StepResult,
    created_by: String,
) -> Result<(), BuildError> {
    let Some(link_key) = link_key else {
        apply_result(shared, state, key, &result, created_by);
        return Ok(());
    };
    let stage_key = KeyBuilder::new("copy-link-rebase", &state.key)
        .field("link", &link_key.to_string())
        .finish();
    let rebased = match result {
        StepResult::Layer(layer) => {
            let parent = state.last_chain();
            let rebased_from = layer.chain_id;
            let layer = Layer {
                chain_id: super::layer::chain_id(parent.as_ref(), &layer.diff_id),
                ..layer
            };
            let own_chain = rebased_from;
            let mut layers = state.layers.clone();
            layers.push(layer.clone());
            let store = shared.store.clone();
            tokio::task::spawn_blocking(move || {
                super::layer::rebase_snapshot(&store, &own_chain, &layers)
            })
            .await
            .map_err(join_error)??;
            StepResult::Layer(layer)
        }
        StepResult::Empty => StepResult::Empty,
    };
    apply_result(shared, state, stage_key, &rebased, created_by);
    Ok(())
}

/// `--chown` of a `COPY --link`: ids only, as in BuildKit, where the copy runs on an empty
/// base and a name cannot be looked up (`root` is 0, like BuildKit's numeric parse).
fn link_chown(spec: &str) -> Result<String, BuildError> {
    let id = |part: &str| -> Option<String> {
        if part.is_empty() || part.parse::<u32>().is_ok() {
            Some(part.to_string())
        } else if part == "root" {
            Some("0".to_string())
        } else {
            None
        }
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let refuse = || BuildError::Expand {
        rendered: format!(
            "--chown={spec} with --link: COPY --link does not see the parent's /etc/passwd \
             and /etc/group, so the owner must be numeric (uid[:gid])"
        ),
    };
    let user = id(user).ok_or_else(refuse)?;
    Ok(match group {
        Some(g) => format!("{user}:{}", id(g).ok_or_else(refuse)?),
        None => user,
    })
}

/// The record of a COPY's previous result: its layer and the blob of where its files came
/// from.
#[derive(serde::Serialize, serde::Deserialize)]
struct PreviousRecord {
    layer: Layer,
    files: Digest,
}

/// The previous result under `key`, if it and its snapshot are still there. Anything missing
/// or unreadable only means a full copy.
fn load_previous(store: &strata_store::Store, key: &Digest) -> Option<PreviousCopy> {
    let record = store.cache_get(key).ok()??;
    let record: PreviousRecord = serde_json::from_value(record.payload).ok()?;
    let snapshot = store.snapshot(&record.layer.chain_id).ok()??;
    let bytes = store.read_blob(&record.files).ok()?;
    let files: Vec<(String, SourceIdentity)> = serde_json::from_slice(&bytes).ok()?;
    Some(PreviousCopy {
        snapshot: snapshot.dir,
        files: files.into_iter().collect(),
    })
}

/// Makes `layer` (with where its files came from) the previous result under `key`.
fn record_previous(
    store: &strata_store::Store,
    key: &Digest,
    layer: &Layer,
    files: &[(String, SourceIdentity)],
) -> Result<(), strata_store::StoreError> {
    // Serializing these plain types cannot fail; if it ever did, the next build would simply
    // copy everything.
    let Ok(bytes) = serde_json::to_vec(files) else {
        return Ok(());
    };
    if files.is_empty() {
        return Ok(());
    }
    let blob = store.put_blob(&bytes)?;
    let Ok(payload) = serde_json::to_value(PreviousRecord {
        layer: layer.clone(),
        files: blob,
    }) else {
        return Ok(());
    };
    store.cache_put(
        key,
        &strata_store::CacheRecord {
            payload,
            blobs: vec![layer.blob, blob],
            chain_ids: vec![layer.chain_id],
            created: chrono::Utc::now(),
        },
    )
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
