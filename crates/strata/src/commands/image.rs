//! `strata image COMMAND`: docker's `image` management group. The verbs are the same commands
//! as their top-level forms (`image ls` = `images`, `image rm` = `rmi`, ...), plus
//! `image prune`.

use std::collections::HashSet;
use std::process::ExitCode;

use crate::commands::{Global, history, images, import, inspect, load, rmi, save, tag};
use crate::output;
use crate::store;

/// Manage images
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::Args),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(rmi::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::Args),
    /// Display detailed information on one or more images
    Inspect(inspect::Args),
    /// Show the history of an image
    History(history::Args),
    /// Remove unused images
    Prune(PruneArgs),
    /// Load images from a tar archive or STDIN
    Load(load::Args),
    /// Save one or more images to a tar archive
    Save(save::Args),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::Args),
}

/// Remove unused images
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,

    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Ls(a) => images::run(global, a),
        ImageCommand::Rm(a) => rmi::run(global, a),
        ImageCommand::Tag(a) => tag::run(global, a),
        ImageCommand::Inspect(a) => inspect::run(global, a),
        ImageCommand::History(a) => history::run(global, a),
        ImageCommand::Prune(a) => prune(global, a),
        ImageCommand::Load(a) => load::run(global, a),
        ImageCommand::Save(a) => save::run(global, a),
        ImageCommand::Import(a) => import::run(global, a),
    }
}

fn prune(global: &Global, args: PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !output::confirm(warning)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let store = store::open(global)?;
    let in_use: HashSet<_> = store
        .roots()?
        .into_iter()
        .flat_map(|(_, r)| r.manifests)
        .collect();
    let mut lines = Vec::new();
    for summary in store::summaries(&store)? {
        let dangling = summary.repo_tags.is_empty() && summary.repo_digests.is_empty();
        if !(dangling || args.all) || summary.entries.iter().any(|m| in_use.contains(m)) {
            continue;
        }
        let id = summary.image.config_digest.to_string();
        for line in rmi::remove(&store, &id, true)? {
            // `image prune` reports in lower case, as docker does.
            lines.push(match line.split_once(": ") {
                Some((verb, what)) => format!("{}: {what}", verb.to_ascii_lowercase()),
                None => line,
            });
        }
    }
    let report = store.gc()?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for line in &lines {
            println!("{line}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        output::size4(report.bytes_freed)
    );
    Ok(ExitCode::SUCCESS)
}
