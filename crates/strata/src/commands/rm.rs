//! `strata rm [-f] CONTAINER...`: remove stopped containers (`-f` kills running ones first).

use std::process::ExitCode;
use std::time::Duration;

use crate::commands::Global;
use crate::commands::container::{for_each, runtime};

/// Remove one or more containers
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,

    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    for_each(global, &args.containers, |containers, mut container| {
        if container.is_running() {
            if !args.force {
                anyhow::bail!(
                    "cannot remove container {:?}: container is running: stop the container before removing or force remove",
                    format!("/{}", container.config.name)
                );
            }
            rt.block_on(async {
                let _ = containers.kill(&container, "KILL").await;
                containers.stop(&mut container, Duration::ZERO).await
            })?;
        }
        containers.remove(&container)?;
        Ok(())
    })
}
