//! `strata builder prune [-a] [-f]`: remove build cache, docker's spelling.
//!
//! Without `-a`, the build cache records are removed and then garbage collection frees the
//! layers and snapshots that only the cache kept alive (layers of tagged images stay). With
//! `-a`, the persistent `RUN --mount=type=cache` directories and the context stat caches go
//! too.

use std::process::ExitCode;

use anyhow::Context;

use super::container::dir_size;
use crate::commands::Global;
use crate::output;
use crate::store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Remove build cache
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all build cache, including cache mounts and context stat caches
    #[arg(short, long)]
    pub all: bool,

    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Prune(prune) => run_prune(global, prune),
    }
}

fn run_prune(global: &Global, args: PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force {
        let what = if args.all {
            "all build cache"
        } else {
            "all dangling build cache"
        };
        if !output::confirm(&format!("WARNING! This will remove {what}."))? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let store = store::open(global)?;
    let records = store.cache_prune(|_, _| true)?;
    let mut reclaimed = 0u64;
    if args.all {
        for dir in ["cache-mounts", "statcache"] {
            let path = store.root().join(dir);
            reclaimed += dir_size(&path);
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
        }
    }
    let report = store.gc()?;
    reclaimed += report.bytes_freed;
    println!(
        "Deleted build cache objects: {records} records, {} snapshots, {} blobs",
        report.snapshots_removed.len(),
        report.blobs_removed.len()
    );
    println!("Total reclaimed space: {}", output::size(reclaimed));
    Ok(ExitCode::SUCCESS)
}
