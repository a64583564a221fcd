//! `strata ps [-a] [-q] [--no-trunc]`: containers in docker's columns (CONTAINER ID, IMAGE,
//! COMMAND, CREATED, STATUS, PORTS, NAMES), newest first; running ones only unless `-a`.
//! A container whose supervisor died shows as exited (the records reconcile on read).

use std::process::ExitCode;

use strata_container::Containers;
use strata_image::human::human_duration_ago;

use crate::commands::Global;
use crate::output::Table;
use crate::store;

/// List containers
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,

    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,

    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let now = chrono::Utc::now();
    let shown: Vec<_> = containers
        .list()?
        .into_iter()
        .filter(|c| args.all || c.is_running())
        .collect();
    let id = |c: &strata_container::Container| {
        if args.no_trunc {
            c.config.id.clone()
        } else {
            c.short_id().to_owned()
        }
    };
    if args.quiet {
        for c in &shown {
            println!("{}", id(c));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]);
    for c in &shown {
        table.row(vec![
            id(c),
            c.config.image.clone(),
            c.config.command_column(!args.no_trunc),
            human_duration_ago(c.config.created, now),
            c.state.status_column(now),
            c.config
                .ports
                .iter()
                .map(|p| p.display())
                .collect::<Vec<_>>()
                .join(", "),
            c.config.name.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
