//! `strata rmi IMAGE...`: untag, then delete what nothing references, with docker's messages
//! (`Untagged: busybox:1.35`, `Deleted: sha256:…` for the image and each released layer).

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::bail;
use strata_image::{Digest, Reference};
use strata_store::Store;

use crate::commands::Global;
use crate::store;

/// Remove one or more images
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Force removal of the image (untag every name when given an id)
    #[arg(short, long)]
    pub force: bool,

    /// Do not delete untagged parents (accepted for docker compatibility; strata keeps none)
    #[arg(long)]
    pub no_prune: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let mut errors = Vec::new();
    for query in &args.images {
        match remove(&store, query, args.force) {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
            }
            Err(e) => errors.push(e),
        }
    }
    // Content only the removed images used goes now, unless another strata is writing (then
    // the next prune collects it).
    store.gc_if_idle()?;
    if let Some(last) = errors.pop() {
        for e in errors {
            eprintln!("Error: {e:#}");
        }
        return Err(last);
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes one image (or one of its names) and returns the lines to print.
pub fn remove(store: &Store, query: &str, force: bool) -> anyhow::Result<Vec<String>> {
    let image = store::resolve(store, query)?;
    let id = image.config_digest;
    let entries = store.images()?;
    // Every index.json entry of this IMAGE ID (several manifests may share one config).
    let mut mine = Vec::new();
    for e in &entries {
        if e.digest == image.manifest_digest
            || store.image(&e.digest).is_ok_and(|i| i.config_digest == id)
        {
            mine.push(e.clone());
        }
    }
    let names: Vec<String> = mine.iter().filter_map(|e| e.name.clone()).collect();
    let by_name = store::normalize(query).filter(|n| names.contains(n));

    // A container's image is checked before anything is untagged, so a refused rmi changes
    // nothing; with -f the names go but the image stays for the container, as in docker.
    let used = in_use(store, &mine.iter().map(|e| e.digest).collect::<Vec<_>>())?;
    let mut lines = Vec::new();
    if let Some(name) = by_name {
        if names.len() > 1 {
            store.untag(&name)?;
            lines.push(format!("Untagged: {}", store::familiar(&name)));
            return Ok(lines); // other names keep the image
        }
        if used && !force {
            bail!(
                "conflict: unable to remove repository reference \"{query}\" (must force) - a container is using its referenced image {}\nhint: remove the container first (strata rm), or use -f to untag anyway",
                id.short()
            );
        }
        store.untag(&name)?;
        lines.push(format!("Untagged: {}", store::familiar(&name)));
    } else {
        let repositories: HashSet<String> = names
            .iter()
            .filter_map(|n| Reference::parse(n).ok().map(|r| r.name()))
            .collect();
        if repositories.len() > 1 && !force {
            bail!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories\nhint: remove it by name, or use -f to remove every name",
                id.short()
            );
        }
        if used && !force {
            bail!(
                "conflict: unable to delete {} (must be forced) - image is being used by a container\nhint: remove the container first (strata rm), or use -f to untag anyway",
                id.short()
            );
        }
        for name in &names {
            store.untag(name)?;
            lines.push(format!("Untagged: {}", store::familiar(name)));
        }
    }
    if used {
        return Ok(lines); // forced: untagged, but the container keeps the image
    }
    for e in &mine {
        store.remove_image(&e.digest)?;
    }
    lines.push(format!("Deleted: {id}"));
    // The layers no remaining image shares, top first, as docker lists released layers.
    let config = &image.config;
    let chain = strata_image::chain_id(&config.diff_ids()?);
    let mut kept = HashSet::new();
    for e in store.images()? {
        if let Ok(other) = store.image(&e.digest)
            && let Ok(ids) = other.config.diff_ids()
        {
            kept.extend(strata_image::chain_id(&ids));
        }
    }
    for chain_id in chain.iter().rev().filter(|c| !kept.contains(*c)) {
        lines.push(format!("Deleted: {chain_id}"));
    }
    Ok(lines)
}

/// Whether a container (a root registered as `container-<id>`) keeps one of these manifests;
/// other roots (a running build's) do not block rmi.
fn in_use(store: &Store, manifests: &[Digest]) -> anyhow::Result<bool> {
    Ok(store.roots()?.iter().any(|(name, r)| {
        name.starts_with("container-") && r.manifests.iter().any(|m| manifests.contains(m))
    }))
}
