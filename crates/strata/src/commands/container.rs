//! `strata container prune` and the hidden `strata container supervise ID` (the `-d`
//! supervisor: `run -d` and `start` re-execute strata with it, in a new session, with the
//! container's log file as stdout and stderr), plus what the container commands share.

use std::process::ExitCode;

use anyhow::Context;
use strata_container::logs::LogWriter;
use strata_container::{Container, Containers, Output};
use strata_store::Store;

use crate::commands::Global;
use crate::output;
use crate::store;

/// Manage containers
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Run a container in this process until it exits (what `run -d` and `start` execute)
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    pub id: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Prune(args) => prune(global, args),
        Sub::Supervise(args) => supervise(global, args),
    }
}

fn prune(global: &Global, args: PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force && !output::confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(ExitCode::SUCCESS);
    }
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let mut removed = Vec::new();
    let mut reclaimed = 0u64;
    for c in containers.list()? {
        if c.is_running() {
            continue;
        }
        reclaimed += dir_size(&c.upper_dir());
        containers.remove(&c)?;
        removed.push(c.config.id.clone());
    }
    containers.remove_leftovers()?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for id in &removed {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        strata_image::human::human_size(reclaimed)
    );
    Ok(ExitCode::SUCCESS)
}

/// Bytes of regular files below `dir` (a container's changes), not following symlinks.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

fn supervise(global: &Global, args: SuperviseArgs) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let mut container = containers.get(&args.id)?;
    let log = LogWriter::open(&container.log_path())?;
    let outcome = runtime()?.block_on(containers.run_owned(&mut container, Output::Log(log)))?;
    // A command that cannot be executed: the runtime has said so on stderr already.
    if let Some(error) = &outcome.error
        && !matches!(outcome.exit_code, 126 | 127)
    {
        eprintln!("Error: {error}");
    }
    // A start that failed is left for the process that asked for it (`run -d`, `start`) to
    // report and remove: it reads the error from the record.
    if container.config.auto_remove && outcome.error.is_none() {
        containers.remove(&container)?;
    }
    Ok(exit_code(outcome.exit_code))
}

/// The command that supervises container `id` (this very binary, same store).
pub fn supervisor_command(global: &Global, id: &str) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe().context("cannot find the strata binary to re-execute")?;
    let root = store::root(global)?;
    let root = std::path::absolute(&root).unwrap_or(root);
    let mut command = std::process::Command::new(exe);
    command
        .arg("--root")
        .arg(root)
        .args(["container", "supervise", id]);
    Ok(command)
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A process exit code from a container's (0–255).
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255))
}

/// Opens the store and its containers, and runs `f` on each named container, printing the
/// name as given on success (docker's `stop`/`kill`/`rm` output) and every error at the end.
pub fn for_each(
    global: &Global,
    names: &[String],
    mut f: impl FnMut(&Containers<'_>, Container) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let store: Store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let mut failed = false;
    for name in names {
        let result = containers
            .get(name)
            .map_err(anyhow::Error::from)
            .and_then(|c| f(&containers, c));
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
