//! `strata kill [-s SIGNAL] CONTAINER...`: signal running containers (SIGKILL by default).

use std::process::ExitCode;

use crate::commands::Global;
use crate::commands::container::{for_each, runtime};

/// Kill one or more running containers
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,

    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    for_each(global, &args.containers, |containers, container| {
        rt.block_on(containers.kill(&container, &args.signal))?;
        Ok(())
    })
}
