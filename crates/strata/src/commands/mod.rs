//! One module per subcommand; `Cli` is the clap definition of the whole command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// strata: a daemonless, docker-compatible container image builder.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// Where images, layers and build cache are stored.
    #[arg(long, global = true, env = "STRATA_ROOT")]
    pub root: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print version information.
    Version,
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("strata {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
