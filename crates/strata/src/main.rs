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
    init_logging(cli.global.debug);
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

/// Warnings (a registry retry, a skipped cleanup) always reach stderr; `--debug` adds the
/// libraries' debug events (probes, mounts, cache decisions).
fn init_logging(debug: bool) {
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(debug)
        .without_time()
        .init();
}
