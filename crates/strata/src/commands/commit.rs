//! `strata commit [-a AUTHOR] [-c CHANGE]... [-m MESSAGE] CONTAINER [REPOSITORY[:TAG]]`: the
//! container's changes become a new layer on its image; prints the new IMAGE ID. The container
//! is not paused while its changes are read.

use std::process::ExitCode;

use strata_container::{CommitOptions, Containers, commit};

use crate::commands::Global;
use crate::store;

/// Create a new image from a container's changes
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,

    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,

    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,

    /// Pause container during commit (accepted for docker compatibility; strata does not pause)
    #[arg(short, long)]
    pub pause: bool,

    pub container: String,

    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let container = containers.get(&args.container)?;
    let id = commit(
        &containers,
        &container,
        &CommitOptions {
            reference: args.reference,
            changes: args.changes,
            message: args.message,
            author: args.author,
        },
    )?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
