//! `strata create [OPTIONS] IMAGE [COMMAND] [ARG...]`: a container prepared (its filesystem
//! ready, its name taken) but not started; prints its ID. The flags are `run`'s.

use std::process::ExitCode;

use anyhow::Context;
use strata_container::record::{env_entry, parse_env_file, parse_volume};
use strata_container::{Containers, CreateOptions, PortMapping};
use strata_runtime::Network;

use crate::commands::Global;
use crate::store;

/// The container flags `create` and `run` share.
#[derive(Debug, clap::Args)]
pub struct ContainerFlags {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,

    /// Set environment variables (KEY=value, or KEY to copy it from this environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<std::path::PathBuf>,

    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,

    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,

    /// Network: host (the host's network, the default) or none (loopback only)
    #[arg(long, default_value = "host", value_parser = ["host", "none"])]
    pub network: String,

    /// Bind mount a host path (HOST:CONTAINER[:ro])
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<String>,

    /// Publish a container's port to the host ([IP:]HOST:CONTAINER); with --network none a
    /// userspace proxy forwards it, on the host network the container's ports are the host's
    #[arg(short, long = "publish", value_name = "[IP:]HOST:CONTAINER")]
    pub publish: Vec<String>,

    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,

    /// Keep STDIN open
    #[arg(short, long)]
    pub interactive: bool,

    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,

    /// The image
    pub image: String,

    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl ContainerFlags {
    /// The library's options, with docker's flag semantics.
    pub fn options(&self) -> anyhow::Result<CreateOptions> {
        let lookup = |k: &str| std::env::var(k).ok();
        let mut env = Vec::new();
        for file in &self.env_files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the env file {}", file.display()))?;
            env.extend(parse_env_file(&text, lookup));
        }
        env.extend(self.env.iter().filter_map(|e| env_entry(e, lookup)));
        let network = if self.network == "none" {
            Network::None
        } else {
            Network::Host
        };
        let mut ports = self
            .publish
            .iter()
            .map(|p| PortMapping::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        if network == Network::Host && !ports.is_empty() {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
            ports.clear();
        }
        Ok(CreateOptions {
            name: self.name.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            network,
            mounts: self
                .volumes
                .iter()
                .map(|v| parse_volume(v))
                .collect::<Result<_, _>>()?,
            ports,
            tty: self.tty,
            interactive: self.interactive,
            auto_remove: self.rm,
        })
    }
}

/// Create a new container
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: ContainerFlags,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match create(global, &args.flags) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // docker's code for its own failures to create or run a container.
            eprintln!("Error: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}

fn create(global: &Global, flags: &ContainerFlags) -> anyhow::Result<()> {
    let options = flags.options()?;
    pull_if_missing(global, &flags.image)?;
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let container = containers
        .create(&flags.image, &options)
        .map_err(|e| image_hint(e, &flags.image))?;
    println!("{}", container.config.id);
    Ok(())
}

/// docker's `--pull=missing`: an image not in the store is pulled first (progress on stderr,
/// so the command's own output stays the container's).
pub fn pull_if_missing(global: &Global, image: &str) -> anyhow::Result<()> {
    let store = std::sync::Arc::new(store::open(global)?);
    match store.resolve(image) {
        Err(strata_store::StoreError::ImageNotFound(_)) => {}
        _ => return Ok(()),
    }
    // An id or id prefix is not something a registry can serve.
    let Ok(reference) = strata_image::Reference::parse(image) else {
        return Ok(());
    };
    eprintln!("Unable to find image '{image}' locally");
    let client = crate::commands::pull::registry_client(&crate::commands::pull::RegistryArgs {
        insecure_registries: Vec::new(),
    })?;
    let options = strata_registry::PullOptions::default();
    let pulled = crate::commands::container::runtime()?
        .block_on(strata_registry::pull(
            &client,
            &store,
            &reference,
            &options,
            &|_| {},
        ))
        .map_err(crate::commands::pull::with_hint)?;
    eprintln!("Digest: {}", pulled.digest);
    eprintln!(
        "Status: Downloaded newer image for {}",
        reference.familiar()
    );
    Ok(())
}

/// Adds the way out to "image not found".
pub fn image_hint(err: strata_container::ContainerError, image: &str) -> anyhow::Error {
    let missing = matches!(
        &err,
        strata_container::ContainerError::Store(strata_store::StoreError::ImageNotFound(_))
    );
    let err = anyhow::Error::from(err);
    if missing {
        err.context(format!(
            "unable to find image {image:?} locally (pull it with `strata pull {image}`)"
        ))
    } else {
        err
    }
}
