//! `strata logs [-f] CONTAINER`: the output of a detached container (stdout and stderr, as
//! they interleaved), followed while it runs with `-f`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use strata_container::Containers;

use crate::commands::Global;
use crate::store;

/// Fetch the logs of a container
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,

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
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        out.flush()?;
        if !args.follow {
            break;
        }
        containers.refresh(&mut container)?;
        if !container.is_running() {
            // Drain what the last moments wrote, then stop.
            let pos = file.stream_position()?;
            file.seek(SeekFrom::Start(pos))?;
            std::io::copy(&mut file, &mut out)?;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}
