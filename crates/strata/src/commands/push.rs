//! `strata push [--format docker|oci] [-q] NAME[:TAG]`: upload a stored image to its
//! registry, printing docker's per-layer lines and the pushed digest.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use strata_image::Reference;
use strata_image::manifest::ManifestFormat;
use strata_registry::PushOptions;

use crate::commands::Global;
use crate::commands::pull::{
    Direction, Mode, Progress, RegistryArgs, registry_client, runtime, with_hint,
};
use crate::store;

/// The manifest format to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Docker image manifest v2 schema 2
    Docker,
    /// OCI image manifest
    Oci,
}

/// Upload an image to a registry
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Convert the manifest to this format [default: the image's own]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// gzip level for layers stored uncompressed (1 fastest … 9 smallest, 0 stored)
    #[arg(long, value_name = "LEVEL", default_value_t = strata_registry::DEFAULT_COMPRESSION_LEVEL, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compression_level: u32,
    /// Suppress verbose output (print only the digest line)
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let target = Reference::parse(&args.name)
        .with_context(|| format!("invalid reference format {:?}", args.name))?;
    if target.digest().is_some() {
        anyhow::bail!(
            "cannot push a digest reference: {}\nhint: push a tag",
            args.name
        );
    }
    let store = Arc::new(store::open(global)?);
    let image = store::resolve(&store, &target.to_string()).with_context(|| {
        format!(
            "an image does not exist locally with the tag: {}",
            target.familiar()
        )
    })?;
    let client = registry_client(&args.registry)?;
    let rt = runtime()?;
    let options = PushOptions {
        format: args.format.map(|f| match f {
            Format::Docker => ManifestFormat::Docker,
            Format::Oci => ManifestFormat::Oci,
        }),
        compression_level: args.compression_level,
        ..PushOptions::default()
    };
    if !args.quiet {
        println!("The push refers to repository [{}]", target.name());
    }
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        Mode::detect()
    };
    let progress = Progress::new(mode, Direction::Push);
    let sink = |event| progress.event(event);
    let result = rt.block_on(strata_registry::push(
        &client, &store, &image, &target, &options, &sink,
    ));
    progress.finish();
    let pushed = result.map_err(with_hint)?;
    println!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    );
    Ok(ExitCode::SUCCESS)
}
