//! `strata logs [-f] [-t] CONTAINER`: a detached container's output, each line back on the
//! stream it was written to (stdout or stderr), followed while the container runs with `-f`.

use std::io::{BufReader, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use strata_container::Containers;
use strata_container::logs::{Stream, read_entries};

use crate::commands::Global;
use crate::store;

/// Fetch the logs of a container
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,

    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,

    pub container: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let mut container = containers.get(&args.container)?;
    let path = container.log_path();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // A container that never ran detached has no log.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut offset = 0u64;
    loop {
        file.seek(SeekFrom::Start(offset))?;
        offset += read_entries(BufReader::new(&file), &path, |entry| {
            let out: &mut dyn Write = match entry.stream {
                Stream::Stdout => &mut stdout,
                Stream::Stderr => &mut stderr,
            };
            if args.timestamps {
                write!(
                    out,
                    "{} ",
                    entry
                        .time
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                )?;
            }
            out.write_all(entry.log.as_bytes())
        })?;
        stdout.flush()?;
        if !args.follow {
            break;
        }
        let was_running = container.is_running();
        if !was_running {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        // One more read after the container ended picks up its last lines.
        containers.refresh(&mut container)?;
    }
    Ok(ExitCode::SUCCESS)
}
