//! The `strata` binary: argument parsing and output only; the work lives in the library crates.

mod commands;
mod output;
mod store;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    if cli.command.only_prints() {
        restore_sigpipe();
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line: "what failed: why".
            eprintln!("Error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Dies quietly on a closed pipe (`strata images | head`), as C tools do, instead of panicking
/// in `println!`: Rust ignores SIGPIPE by default, which turns EPIPE into a panic. Only for
/// commands that just print: a command that feeds a child process's stdin must see EPIPE as an
/// error, not die of the signal.
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
