//! `strata run [OPTIONS] IMAGE [COMMAND] [ARG...]`: create a container and run it, in the
//! foreground (stdio and a terminal passed through, signals forwarded, the container's exit
//! code returned) or, with `-d`, under a supervisor (the container's ID printed).
//!
//! Exit codes as docker's: the container's own; 125 when strata fails; 126 when the command
//! cannot be executed; 127 when it is not found.

use std::process::ExitCode;

use strata_container::{Containers, Output, Status};

use crate::commands::Global;
use crate::commands::container::{exit_code, runtime, supervisor_command};
use crate::commands::create::{ContainerFlags, image_hint, pull_if_missing};
use crate::store;

/// Create and run a new container from an image
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,

    #[command(flatten)]
    pub flags: ContainerFlags,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match run_container(global, &args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}

fn run_container(global: &Global, args: &Args) -> anyhow::Result<ExitCode> {
    let options = args.flags.options()?;
    pull_if_missing(global, &args.flags.image)?;
    let id = {
        // Unpacking the image's layers takes a store lease that holds off garbage collection
        // until the store is dropped: drop it before running (the container's GC roots keep
        // what it uses).
        let store = store::open(global)?;
        let containers = Containers::open(&store)?;
        containers
            .create(&args.flags.image, &options)
            .map_err(|e| image_hint(e, &args.flags.image))?
            .config
            .id
    };
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let mut container = containers.get(&id)?;
    let rt = runtime()?;
    if args.detach {
        let supervisor = supervisor_command(global, &container.config.id)?;
        rt.block_on(containers.start_detached(&mut container, supervisor))?;
        // A command that could not be started fails `run -d` itself, as with docker.
        if container.state.status == Status::Exited
            && let Some(error) = &container.state.error
        {
            eprintln!("Error: {error}");
            if container.config.auto_remove {
                containers.remove(&container)?;
            }
            return Ok(exit_code(container.state.exit_code.unwrap_or(125)));
        }
        println!("{}", container.config.id);
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = rt.block_on(containers.run_owned(&mut container, Output::Inherit))?;
    // A command that cannot be executed: the runtime has said so on stderr already.
    if let Some(error) = &outcome.error
        && !matches!(outcome.exit_code, 126 | 127)
    {
        eprintln!("Error: {error}");
    }
    if container.config.auto_remove {
        containers.remove(&container)?;
    }
    Ok(exit_code(outcome.exit_code))
}
