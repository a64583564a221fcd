//! `strata stop [-t N] CONTAINER...`: the image's STOPSIGNAL (SIGTERM by default), then
//! SIGKILL after N seconds (10).

use std::process::ExitCode;
use std::time::Duration;

use crate::commands::Global;
use crate::commands::container::{for_each, runtime};

/// Stop one or more running containers
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    pub time: u64,

    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    for_each(global, &args.containers, |containers, mut container| {
        rt.block_on(containers.stop(&mut container, Duration::from_secs(args.time)))?;
        Ok(())
    })
}
