//! `strata system df`: disk usage in docker's four rows. Images count each layer once however
//! many images share it; strata has no containers or volumes of its own yet, so those rows
//! are zero.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

use strata_image::Digest;

use crate::commands::Global;
use crate::output::{self, Table};
use crate::store;

/// Manage strata
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SystemCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show disk usage
    Df(DfArgs),
}

/// Show disk usage
#[derive(Debug, clap::Args)]
pub struct DfArgs {}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        SystemCommand::Df(_) => df(global),
    }
}

fn df(global: &Global) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let summaries = store::summaries(&store)?;
    let in_use: HashSet<Digest> = store
        .roots()?
        .into_iter()
        .flat_map(|(_, r)| r.manifests)
        .collect();

    let mut layer_size: HashMap<Digest, u64> = HashMap::new();
    let mut active_layers: HashSet<Digest> = HashSet::new();
    let mut active = 0;
    for s in &summaries {
        let used = s.entries.iter().any(|m| in_use.contains(m));
        active += usize::from(used);
        for (diff_id, size) in &s.layers {
            layer_size.insert(*diff_id, *size);
            if used {
                active_layers.insert(*diff_id);
            }
        }
    }
    let images_size: u64 = layer_size.values().sum();
    let reclaimable: u64 = layer_size
        .iter()
        .filter(|(d, _)| !active_layers.contains(d))
        .map(|(_, s)| s)
        .sum();

    // Build cache: the blobs cache records keep that no image uses.
    let image_blobs: HashSet<Digest> = summaries
        .iter()
        .flat_map(|s| {
            s.image
                .manifest
                .layers()
                .iter()
                .filter_map(|l| Digest::try_from(l.digest()).ok())
        })
        .collect();
    let records = store.cache_records()?;
    let mut cache_blobs = HashSet::new();
    for (_, r) in &records {
        cache_blobs.extend(r.blobs.iter().filter(|b| !image_blobs.contains(b)).copied());
    }
    let mut cache_size = 0;
    for blob in cache_blobs {
        cache_size += store.blob_size(&blob).unwrap_or(0);
    }

    let percent = |part: u64, total: u64| match (part * 100).checked_div(total) {
        Some(p) => format!("{} ({p}%)", output::size4(part)),
        None => output::size4(part),
    };
    let mut table = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    table.row(vec![
        "Images".into(),
        summaries.len().to_string(),
        active.to_string(),
        output::size4(images_size),
        percent(reclaimable, images_size),
    ]);
    table.row(vec![
        "Containers".into(),
        "0".into(),
        "0".into(),
        "0B".into(),
        "0B".into(),
    ]);
    table.row(vec![
        "Local Volumes".into(),
        "0".into(),
        "0".into(),
        "0B".into(),
        "0B".into(),
    ]);
    table.row(vec![
        "Build Cache".into(),
        records.len().to_string(),
        "0".into(),
        output::size4(cache_size),
        output::size4(cache_size),
    ]);
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
