//! One module per subcommand; `Cli` is the clap definition of the whole command line.
//!
//! Each subcommand module exposes `Args` (clap derive) and `run(&Global, Args) -> anyhow::Result<ExitCode>`.
//! Errors bubble up as `anyhow::Error` and are printed once by `main`, with exit code 1 unless the
//! command chose another (usage errors are clap's, exit code 2).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    let _ = global;
    match cli.command {
        Command::Version => {
            println!("strata {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}
