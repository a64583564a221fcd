//! `strata save [-o FILE] IMAGE...`: write images as docker's dual archive layout (OCI image
//! layout + `manifest.json` + `repositories`), streaming blobs from the store. The output is a
//! function of the images and names only, so save → load → save is byte-identical.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use strata_image::Reference;
use strata_image::archive::{SaveImage, write_docker_archive};
use strata_store::Store;

use crate::commands::Global;
use crate::store;

/// Save one or more images to a tar archive (streamed to STDOUT by default)
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    if args.output.is_none() && io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal\nhint: use the -o flag or redirect");
    }
    let store = store::open(global)?;
    let mut images = Vec::new();
    for query in &args.images {
        images.extend(select(&store, query)?);
    }
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed into place: an interrupted save never
            // leaves a truncated archive under the requested name.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = dir.join(format!(".{name}.strata-{}", std::process::id()));
            let result = (|| -> anyhow::Result<()> {
                let file = File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let mut out = BufWriter::with_capacity(1 << 20, file);
                write_docker_archive(&mut out, &images, &store)?;
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                fs::rename(&tmp, path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(())
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result?;
        }
        None => {
            let stdout = io::stdout().lock();
            let mut out = BufWriter::with_capacity(1 << 20, stdout);
            write_docker_archive(&mut out, &images, &store)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `docker save` saves for one argument: a tag saves that name; a repository without a
/// tag saves all its tags; an id saves the image without names.
fn select(store: &Store, query: &str) -> anyhow::Result<Vec<SaveImage>> {
    let entries = store.images()?;
    if let Some(name) = store::normalize(query)
        && entries
            .iter()
            .any(|e| e.name.as_deref() == Some(name.as_str()))
    {
        let image = store.resolve(&name)?;
        return Ok(vec![SaveImage {
            manifest_digest: image.manifest_digest,
            refs: vec![Reference::parse(&name)?],
        }]);
    }
    if let Ok(repo) = Reference::parse_normalized(query)
        && repo.tag().is_none()
        && repo.digest().is_none()
    {
        let mut out = Vec::new();
        for e in &entries {
            let Some(r) = e.name.as_deref().and_then(|n| Reference::parse(n).ok()) else {
                continue;
            };
            if r.name() == repo.name() && r.digest().is_none() {
                let image = store.image(&e.digest)?;
                out.push(SaveImage {
                    manifest_digest: image.manifest_digest,
                    refs: vec![r],
                });
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
    }
    let image = store.resolve(query)?;
    Ok(vec![SaveImage {
        manifest_digest: image.manifest_digest,
        refs: Vec::new(),
    }])
}
