//! `strata wait CONTAINER...`: block until the containers exit, printing each exit code.

use std::process::ExitCode;

use strata_container::Containers;

use crate::commands::Global;
use crate::commands::container::runtime;
use crate::store;

/// Block until one or more containers stop, then print their exit codes
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let rt = runtime()?;
    let mut failed = false;
    for name in &args.containers {
        let result = containers
            .get(name)
            .and_then(|mut c| rt.block_on(containers.wait(&mut c)));
        match result {
            Ok(code) => println!("{code}"),
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
