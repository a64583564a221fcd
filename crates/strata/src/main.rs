//! The `strata` binary: argument parsing and output only; the work lives in the library crates.

mod commands;
mod output;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: "what failed: why".
            eprintln!("Error: {err:#}");
            ExitCode::from(1)
        }
    }
}
