//! One module per subcommand; `Cli` is the clap definition of the whole command line.
//!
//! Each subcommand module exposes `Args` (clap derive) and `run(&Global, Args) -> anyhow::Result<ExitCode>`.
//! Errors bubble up as `anyhow::Error` and are printed once by `main`, with exit code 1 unless the
//! command chose another (usage errors are clap's, exit code 2).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod build;
pub mod builder;
pub mod commit;
pub mod container;
pub mod cp;
pub mod create;
pub mod export;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod login;
pub mod logout;
pub mod logs;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod start;
pub mod stop;
pub mod system;
pub mod tag;
pub mod wait;

/// strata: a daemonless, docker-compatible container image builder.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// Where images, layers and build cache are stored [default: /var/lib/strata as root,
    /// $XDG_DATA_HOME/strata otherwise]
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Print debug logs to stderr
    #[arg(long, global = true)]
    pub debug: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the strata version
    Version,
    /// Build an image from a Dockerfile
    Build(build::Args),
    /// Manage builds (build cache)
    Builder(builder::Args),
    /// List images
    Images(images::Args),
    /// Show the history of an image
    History(history::Args),
    /// Display detailed information on one or more images
    Inspect(inspect::Args),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::Args),
    /// Remove one or more images
    Rmi(rmi::Args),
    /// Manage images
    Image(image::Args),
    /// Manage strata (disk usage)
    System(system::Args),
    /// Load images from a tar archive or STDIN
    Load(load::Args),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::Args),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::Args),
    /// Download an image from a registry
    Pull(pull::Args),
    /// Upload an image to a registry
    Push(push::Args),
    /// Log in to a registry
    Login(login::Args),
    /// Log out from a registry
    Logout(logout::Args),
    /// Create and run a new container from an image
    Run(run::Args),
    /// Create a new container
    Create(create::Args),
    /// Start one or more stopped containers
    Start(start::Args),
    /// List containers
    Ps(ps::Args),
    /// Fetch the logs of a container
    Logs(logs::Args),
    /// Stop one or more running containers
    Stop(stop::Args),
    /// Kill one or more running containers
    Kill(kill::Args),
    /// Block until one or more containers stop, then print their exit codes
    Wait(wait::Args),
    /// Remove one or more containers
    Rm(rm::Args),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::Args),
    /// Create a new image from a container's changes
    Commit(commit::Args),
    /// Export a container's filesystem as a tar archive
    Export(export::Args),
    /// Manage containers
    Container(container::Args),
}

impl Command {
    /// Commands whose only effect is printing to stdout (safe to end on a closed pipe).
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Version
                | Command::Images(_)
                | Command::History(_)
                | Command::Inspect(_)
                | Command::Ps(_)
                | Command::Logs(_)
        )
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    let _ = global;
    match cli.command {
        Command::Version => {
            println!("strata {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Build(args) => build::run(global, args),
        Command::Builder(args) => builder::run(global, args),
        Command::Images(args) => images::run(global, args),
        Command::History(args) => history::run(global, args),
        Command::Inspect(args) => inspect::run(global, args),
        Command::Tag(args) => tag::run(global, args),
        Command::Rmi(args) => rmi::run(global, args),
        Command::Image(args) => image::run(global, args),
        Command::System(args) => system::run(global, args),
        Command::Load(args) => load::run(global, args),
        Command::Save(args) => save::run(global, args),
        Command::Import(args) => import::run(global, args),
        Command::Pull(args) => pull::run(global, args),
        Command::Push(args) => push::run(global, args),
        Command::Login(args) => login::run(global, args),
        Command::Logout(args) => logout::run(global, args),
        Command::Run(args) => run::run(global, args),
        Command::Create(args) => create::run(global, args),
        Command::Start(args) => start::run(global, args),
        Command::Ps(args) => ps::run(global, args),
        Command::Logs(args) => logs::run(global, args),
        Command::Stop(args) => stop::run(global, args),
        Command::Kill(args) => kill::run(global, args),
        Command::Wait(args) => wait::run(global, args),
        Command::Rm(args) => rm::run(global, args),
        Command::Cp(args) => cp::run(global, args),
        Command::Commit(args) => commit::run(global, args),
        Command::Export(args) => export::run(global, args),
        Command::Container(args) => container::run(global, args),
    }
}
