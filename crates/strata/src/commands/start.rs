//! `strata start [-a] CONTAINER...`: start created or stopped containers under a supervisor
//! (prints each name as given), or with `-a` in the foreground, attached, returning its exit
//! code.

use std::process::ExitCode;

use anyhow::bail;
use strata_container::{Containers, Output};

use crate::commands::Global;
use crate::commands::container::{exit_code, for_each, runtime, supervisor_command};
use crate::store;

/// Start one or more stopped containers
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,

    /// Attach the container's STDIN
    #[arg(short, long)]
    pub interactive: bool,

    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    if args.attach || args.interactive {
        let [name] = args.containers.as_slice() else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let store = store::open(global)?;
        let containers = Containers::open(&store)?;
        let mut container = containers.get(name)?;
        let outcome = runtime()?.block_on(containers.run_owned(&mut container, Output::Inherit))?;
        // A command that cannot be executed: the runtime has said so on stderr already.
        if let Some(error) = &outcome.error
            && !matches!(outcome.exit_code, 126 | 127)
        {
            eprintln!("Error: {error}");
        }
        if container.config.auto_remove {
            containers.remove(&container)?;
        }
        return Ok(exit_code(outcome.exit_code));
    }
    let rt = runtime()?;
    for_each(global, &args.containers, |containers, mut container| {
        if container.is_running() {
            return Ok(());
        }
        let supervisor = supervisor_command(global, &container.config.id)?;
        rt.block_on(containers.start_detached(&mut container, supervisor))?;
        if container.state.status == strata_container::Status::Exited
            && let Some(error) = container.state.error.clone()
        {
            if container.config.auto_remove {
                containers.remove(&container)?;
            }
            bail!("{error}");
        }
        Ok(())
    })
}
