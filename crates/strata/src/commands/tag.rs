//! `strata tag SOURCE TARGET`: give an image another name.

use std::process::ExitCode;

use anyhow::Context;
use strata_image::Reference;

use crate::commands::Global;
use crate::store;

/// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let image = store::resolve(&store, &args.source)?;
    let target = Reference::parse(&args.target)
        .with_context(|| format!("invalid target reference {:?}", args.target))?;
    if target.digest().is_some() {
        anyhow::bail!(
            "refusing to create a tag with a digest reference: {}\nhint: name the target with a tag",
            args.target
        );
    }
    store.tag(&target.to_string(), image.descriptor.clone())?;
    Ok(ExitCode::SUCCESS)
}
