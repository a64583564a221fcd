//! `strata export [-o FILE] CONTAINER`: the container's filesystem, flattened, as one tar.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use strata_container::{Containers, export};

use crate::commands::Global;
use crate::store;

/// Export a container's filesystem as a tar archive
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    pub container: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    let container = containers.get(&args.container)?;
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed, so a failed export leaves no partial file.
            let tmp = path.with_extension("strata-tmp");
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?,
            );
            let result = export(&containers, &container, &mut file)
                .map_err(anyhow::Error::from)
                .and_then(|()| file.flush().context("cannot write the export"));
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal: use the -o flag or redirect");
            }
            let mut out = std::io::BufWriter::new(stdout.lock());
            export(&containers, &container, &mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
