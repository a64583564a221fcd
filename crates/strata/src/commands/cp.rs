//! `strata cp CONTAINER:SRC DEST` and `strata cp SRC CONTAINER:DEST`: docker's rules for
//! files, directories, `SRC/.` (contents) and `-` (a tar stream on stdin or stdout). Container
//! paths resolve inside the container's root (symlinks included), never out of it.

use std::process::ExitCode;

use anyhow::bail;
use strata_container::{Containers, CopyEndpoint, copy_from_container, copy_into_container};

use crate::commands::Global;
use crate::store;

/// Copy files/folders between a container and the local filesystem
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CONTAINER:SRC_PATH or a local SRC_PATH (- for a tar stream on STDIN)
    #[arg(value_name = "SRC")]
    pub src: String,

    /// CONTAINER:DEST_PATH or a local DEST_PATH (- for a tar stream on STDOUT)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// docker's split: a local path is `-`, absolute, or starts with `.`; otherwise `NAME:PATH`
/// names a container.
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg == "-" || arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':').filter(|(name, _)| !name.contains('/'))
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let containers = Containers::open(&store)?;
    match (split(&args.src), split(&args.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((name, path)), None) => {
            let container = containers.get(name)?;
            let dest = CopyEndpoint::parse(&args.dest);
            let mut stdout = std::io::stdout().lock();
            copy_from_container(&containers, &container, path, &dest, &mut stdout)?;
        }
        (None, Some((name, path))) => {
            let container = containers.get(name)?;
            let src = CopyEndpoint::parse(&args.src);
            let mut stdin = std::io::stdin().lock();
            copy_into_container(&containers, &container, &src, path, &mut stdin)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn container_or_local() {
        assert_eq!(
            split("extract:/go/bin/app"),
            Some(("extract", "/go/bin/app"))
        );
        assert_eq!(split("/abs:path"), None);
        assert_eq!(split("./rel:path"), None);
        assert_eq!(split("-"), None);
        assert_eq!(split("dir/file:x"), None);
        assert_eq!(split("plain"), None);
    }
}
