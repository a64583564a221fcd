//! The `strata` binary: argument parsing and output only; the work lives in the library crates.

mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    commands::run(cli)
}
