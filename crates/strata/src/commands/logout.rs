//! `strata logout [SERVER]`: forget a registry's credentials in docker's `config.json` (and its
//! credential helper), as `docker logout` does.

use std::process::ExitCode;

use strata_registry::DockerConfig;
use strata_registry::credentials::config_key;

use crate::commands::Global;
use crate::commands::login::registry_name;

/// Log out from a registry
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry [default: Docker Hub]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

pub fn run(_global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let registry = registry_name(args.server.as_deref());
    let key = config_key(&registry);
    let mut config = DockerConfig::load_default()?;
    let known = config.helper_for(&registry).is_some() || config.credentials(&registry)?.is_some();
    if !known {
        println!("Not logged in to {key}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("Removing login credentials for {key}");
    config.erase(&registry)?;
    config.save()?;
    Ok(ExitCode::SUCCESS)
}
