//! `--output`: the built image as something other than a store entry.
//!
//! - `docker` / `oci`: an image archive (docker's dual layout: an OCI image layout that also
//!   carries `manifest.json`, so both `docker load` and OCI tools read it);
//! - `local`: the image's root filesystem, flattened, in a directory;
//! - `tar`: the same root filesystem as a tar stream.
//!
//! The flattened filesystem is made by applying the layers in order (whiteouts delete) into
//! the destination, with strata-layer's in-root applier.

use crate::solve::BuildError;
use std::path::Path;
use strata_image::Digest;
use strata_store::Store;

/// Where `--output` sends the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=docker,dest=FILE` or `type=oci,dest=FILE`: an image archive.
    Archive {
        /// The archive file.
        dest: std::path::PathBuf,
    },
    /// `type=local,dest=DIR`: the root filesystem in a directory.
    Local {
        /// The directory (created if missing).
        dest: std::path::PathBuf,
    },
    /// `type=tar,dest=FILE`: the root filesystem as a tar.
    Tar {
        /// The tar file.
        dest: std::path::PathBuf,
    },
}

/// Why an `--output` value is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputSpecError {
    /// No `type=`, or an unknown one.
    #[error("invalid --output {spec:?}: type must be docker, oci, tar or local")]
    Type {
        /// The value.
        spec: String,
    },
    /// No `dest=`.
    #[error("invalid --output {spec:?}: dest=PATH is required")]
    Dest {
        /// The value.
        spec: String,
    },
}

impl Output {
    /// Parses `type=local,dest=out` (docker's CSV form; a bare path means `type=local`).
    pub fn parse(spec: &str) -> Result<Self, OutputSpecError> {
        if !spec.contains('=') {
            return Ok(Output::Local { dest: spec.into() });
        }
        let mut kind = None;
        let mut dest = None;
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(std::path::PathBuf::from(v)),
                _ => {}
            }
        }
        let dest = dest.ok_or_else(|| OutputSpecError::Dest {
            spec: spec.to_string(),
        })?;
        match kind.as_deref() {
            Some("docker") | Some("oci") => Ok(Output::Archive { dest }),
            Some("local") => Ok(Output::Local { dest }),
            Some("tar") => Ok(Output::Tar { dest }),
            _ => Err(OutputSpecError::Type {
                spec: spec.to_string(),
            }),
        }
    }
}

/// Writes the image `manifest_digest` (named `refs`) to `output`.
pub fn export(
    store: &Store,
    manifest_digest: &Digest,
    refs: &[strata_image::Reference],
    output: &Output,
) -> Result<(), BuildError> {
    match output {
        Output::Archive { dest } => {
            let io = |source| BuildError::Io {
                path: dest.clone(),
                source,
            };
            let file = std::fs::File::create(dest).map_err(io)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let images = [strata_image::archive::SaveImage {
                manifest_digest: *manifest_digest,
                refs: refs.to_vec(),
            }];
            strata_image::archive::write_docker_archive(&mut out, &images, store)
                .map_err(|e| io(std::io::Error::other(e.to_string())))?;
            std::io::Write::flush(&mut out).map_err(io)?;
            Ok(())
        }
        Output::Local { dest } => {
            std::fs::create_dir_all(dest).map_err(|source| BuildError::Io {
                path: dest.clone(),
                source,
            })?;
            apply_all(store, manifest_digest, dest)
        }
        Output::Tar { dest } => {
            let tmp = store
                .root()
                .join("tmp")
                .join(format!("export-{}", std::process::id()));
            std::fs::create_dir_all(&tmp).map_err(|source| BuildError::Io {
                path: tmp.clone(),
                source,
            })?;
            let result = (|| {
                apply_all(store, manifest_digest, &tmp)?;
                let io = |source| BuildError::Io {
                    path: dest.clone(),
                    source,
                };
                let file = std::fs::File::create(dest).map_err(io)?;
                let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
                strata_layer::write_layer(&tmp, &mut out, &strata_layer::WriteOptions::default())?;
                std::io::Write::flush(&mut out).map_err(io)?;
                Ok(())
            })();
            let _ = std::fs::remove_dir_all(&tmp);
            result
        }
    }
}

fn apply_all(store: &Store, manifest_digest: &Digest, dest: &Path) -> Result<(), BuildError> {
    let image = store.image(manifest_digest)?;
    for layer in image.manifest.layers() {
        let digest = Digest::try_from(layer.digest()).map_err(|_| BuildError::SnapshotMissing)?;
        let reader = store.open_blob(&digest)?;
        strata_layer::apply_layer(reader, dest).map_err(|source| BuildError::Unpack {
            layer: digest,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        assert_eq!(
            Output::parse("type=local,dest=out").unwrap(),
            Output::Local { dest: "out".into() }
        );
        assert_eq!(
            Output::parse("dest=x.tar,type=docker").unwrap(),
            Output::Archive {
                dest: "x.tar".into()
            }
        );
        assert_eq!(
            Output::parse("type=tar,dest=-x").unwrap(),
            Output::Tar { dest: "-x".into() }
        );
        assert_eq!(
            Output::parse("./dir").unwrap(),
            Output::Local {
                dest: "./dir".into()
            }
        );
        assert!(Output::parse("type=registry,dest=x").is_err());
        assert!(Output::parse("type=local").is_err());
    }
}
