//! `strata load [-i FILE]`: load images from a `docker save` archive (legacy or Docker 25+
//! layout), an OCI archive, or a gzip-compressed one, from a file or stdin.
//!
//! All or nothing: blobs stream into the store as the archive is read, every layer is then
//! checked (each entry stays inside the layer root, its diff_id matches the config) and
//! measured, and only then are the images named. On any error the blobs this load added are
//! removed again and no name changes, so the store is exactly as before.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use strata_image::Digest;
use strata_image::archive::{LoadedImage, read_archive};
use strata_store::{LayerInfo, Store};

use crate::commands::Global;
use crate::store;

/// Load images from a tar archive or STDIN
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read from tar archive file, instead of STDIN (gzip-compressed archives are accepted)
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let (reader, source): (Box<dyn Read>, String) = match &args.input {
        Some(path) => (
            Box::new(File::open(path).with_context(|| format!("cannot open {}", path.display()))?),
            path.display().to_string(),
        ),
        None => {
            if io::stdin().is_terminal() {
                bail!(
                    "requested load from stdin, but stdin is empty\nhint: pass -i FILE or pipe an archive in"
                );
            }
            (Box::new(io::stdin().lock()), "stdin".to_string())
        }
    };
    let store = store::open(global)?;
    let mut sink = store.sink();
    let result = read_archive(reader, &mut sink)
        .map_err(anyhow::Error::from)
        .and_then(|images| check(&store, images));
    let loaded = match result {
        Ok(loaded) => loaded,
        Err(e) => {
            sink.discard().context("undoing the failed load")?;
            return Err(e.context(format!("cannot load {source}")));
        }
    };
    let created = sink.created().to_vec();
    for (mut image, layers) in loaded {
        for info in &layers {
            store.set_layer_info(info)?;
        }
        // Docker v2s2 manifests (docker's legacy layout has none: the reader synthesizes one)
        // are stored as their OCI twin, so the store stays a layout skopeo and umoci read.
        if let Some(oci) = store::oci_manifest(&image.manifest)? {
            let docker_manifest = image.manifest_digest;
            image.manifest_digest = store.put_blob(&oci)?;
            image.manifest = oci;
            if created.contains(&docker_manifest) {
                store.discard_blobs(&[docker_manifest])?;
            }
        }
        for line in name(&store, &image)? {
            println!("{line}");
        }
    }
    let _ = args.quiet; // strata prints no progress; the result lines stay, as with docker -q
    Ok(ExitCode::SUCCESS)
}

/// Verifies and measures every layer of every loaded image before anything is named.
fn check(
    store: &Store,
    images: Vec<LoadedImage>,
) -> anyhow::Result<Vec<(LoadedImage, Vec<LayerInfo>)>> {
    let mut out = Vec::with_capacity(images.len());
    for loaded in images {
        let image = store.image(&loaded.manifest_digest)?;
        let config = &image.config;
        let diff_ids = config.diff_ids()?;
        let mut infos = Vec::new();
        for (layer, diff_id) in image.manifest.layers().iter().zip(diff_ids) {
            if let Some(info) = store.layer_info(&diff_id)? {
                infos.push(info);
                continue;
            }
            let digest = Digest::try_from(layer.digest())?;
            let scan = store::scan_layer(store.open_blob(&digest)?, &digest.to_string())?;
            if scan.diff_id != diff_id {
                bail!(
                    "layer {digest}: diff_id mismatch: the config lists {diff_id}, the layer is {}",
                    scan.diff_id
                );
            }
            infos.push(LayerInfo {
                diff_id,
                size: scan.size,
            });
        }
        out.push((loaded, infos));
    }
    Ok(out)
}

/// Tags a loaded image with its names (docker's messages), or records it untagged.
fn name(store: &Store, loaded: &LoadedImage) -> anyhow::Result<Vec<String>> {
    let image = store.image(&loaded.manifest_digest)?;
    let descriptor = image.descriptor.clone();
    let mut lines = Vec::new();
    if loaded.refs.is_empty() {
        store.add_untagged(descriptor)?;
        lines.push(format!("Loaded image ID: {}", loaded.config_digest));
        return Ok(lines);
    }
    for reference in &loaded.refs {
        let outcome = store.tag(&reference.to_string(), descriptor.clone())?;
        if let Some(previous) = outcome.previous
            && let Ok(old) = store.image(&previous)
            && old.config_digest != loaded.config_digest
        {
            lines.push(format!(
                "The image {} already exists, renaming the old one with ID {} to empty string",
                reference.familiar(),
                old.config_digest
            ));
        }
        lines.push(format!("Loaded image: {}", reference.familiar()));
    }
    Ok(lines)
}
