//! `--output`: the built image as something other than a store entry.
//!
//! - `docker` / `oci`: an image archive (docker's dual layout: an OCI image layout that also
//!   carries `manifest.json`, so both `docker load` and OCI tools read it). Layers are stored
//!   uncompressed and, by default, leave uncompressed (docker's own store is uncompressed);
//!   `compression=gzip|zstd[,compression-level=N]` compresses each layer blob into the store
//!   (so the next export finds it) and exports a rewritten manifest naming the compressed
//!   blobs; the config, and so the diff_ids and the IMAGE ID, do not change;
//! - `local`: the image's root filesystem, flattened, in a directory;
//! - `tar`: the same root filesystem as a tar stream.
//!
//! The flattened filesystem is made by applying the layers in order (whiteouts delete) into
//! the destination, with strata-layer's in-root applier.

use crate::solve::BuildError;
use std::path::Path;
use std::time::{Duration, Instant};
use strata_image::manifest::{self, ManifestFormat};
use strata_image::{Digest, LayerCompression};
use strata_store::Store;

/// Which archive `type=` asked for: both are written in docker's dual layout; the type decides
/// which compressions are allowed and the manifest format of a rewritten manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `type=docker`: gzip only (docker's layer media types have no standard zstd).
    Docker,
    /// `type=oci`: gzip or zstd, OCI media types.
    Oci,
}

/// Where `--output` sends the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=docker,dest=FILE` or `type=oci,dest=FILE`: an image archive.
    Archive {
        /// `docker` or `oci`.
        kind: ArchiveKind,
        /// The archive file.
        dest: std::path::PathBuf,
        /// How layer blobs leave the machine (`None`: as stored, uncompressed).
        compression: LayerCompression,
        /// `compression-level=N`; `None` is the compression's default.
        level: Option<i32>,
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
    #[error("invalid --output {spec:?}: type must be docker, oci, tar, local or registry")]
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
    /// A key this output type does not take.
    #[error("invalid --output {spec:?}: unknown key {key:?} for type={kind}")]
    UnknownKey {
        /// The value.
        spec: String,
        /// The key.
        key: String,
        /// The output type.
        kind: String,
    },
    /// A `compression=` other than gzip, zstd or uncompressed.
    #[error("invalid --output {spec:?}: compression {value:?} is not gzip, zstd or uncompressed")]
    Compression {
        /// The value.
        spec: String,
        /// The compression asked for.
        value: String,
    },
    /// `compression=zstd` with `type=docker`.
    #[error(
        "invalid --output {spec:?}: type=docker supports compression=gzip only (use type=oci for zstd)"
    )]
    ZstdForDocker {
        /// The value.
        spec: String,
    },
    /// A `compression-level=` that is not an integer in the compression's range.
    #[error("invalid --output {spec:?}: compression-level {value:?} is not in {min}..={max}")]
    Level {
        /// The value.
        spec: String,
        /// The level asked for.
        value: String,
        /// The lowest level of the compression.
        min: i32,
        /// The highest level of the compression.
        max: i32,
    },
    /// `compression-level=` without a compression to apply it to.
    #[error(
        "invalid --output {spec:?}: compression-level needs compression=gzip or compression=zstd"
    )]
    LevelWithoutCompression {
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
        let mut compression = None;
        let mut level = None;
        let mut other = Vec::new();
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v),
                Some(("dest", v)) => dest = Some(std::path::PathBuf::from(v)),
                Some(("compression", v)) => compression = Some(v),
                Some(("compression-level", v)) => level = Some(v),
                Some((k, _)) => other.push(k),
                None => other.push(part),
            }
        }
        let archive = match kind {
            Some("docker") => Some(ArchiveKind::Docker),
            Some("oci") => Some(ArchiveKind::Oci),
            Some("local") | Some("tar") => None,
            _ => {
                return Err(OutputSpecError::Type {
                    spec: spec.to_string(),
                });
            }
        };
        let unknown = |key: &str| OutputSpecError::UnknownKey {
            spec: spec.to_string(),
            key: key.to_string(),
            kind: kind.unwrap_or_default().to_string(),
        };
        if let Some(key) = other.first() {
            return Err(unknown(key));
        }
        let dest = dest.ok_or_else(|| OutputSpecError::Dest {
            spec: spec.to_string(),
        })?;
        let Some(archive) = archive else {
            // The root filesystem outputs are not image archives: nothing to compress.
            if compression.is_some() {
                return Err(unknown("compression"));
            }
            if level.is_some() {
                return Err(unknown("compression-level"));
            }
            return Ok(if kind == Some("local") {
                Output::Local { dest }
            } else {
                Output::Tar { dest }
            });
        };
        let compression = match compression {
            None | Some("uncompressed") => LayerCompression::None,
            Some("gzip") => LayerCompression::Gzip,
            Some("zstd") if archive == ArchiveKind::Docker => {
                return Err(OutputSpecError::ZstdForDocker {
                    spec: spec.to_string(),
                });
            }
            Some("zstd") => LayerCompression::Zstd,
            Some(value) => {
                return Err(OutputSpecError::Compression {
                    spec: spec.to_string(),
                    value: value.to_string(),
                });
            }
        };
        let level = match level {
            None => None,
            Some(_) if compression == LayerCompression::None => {
                return Err(OutputSpecError::LevelWithoutCompression {
                    spec: spec.to_string(),
                });
            }
            Some(value) => {
                let (min, max) = level_range(compression);
                match value.parse::<i32>() {
                    Ok(n) if (min..=max).contains(&n) => Some(n),
                    _ => {
                        return Err(OutputSpecError::Level {
                            spec: spec.to_string(),
                            value: value.to_string(),
                            min,
                            max,
                        });
                    }
                }
            }
        };
        Ok(Output::Archive {
            kind: archive,
            dest,
            compression,
            level,
        })
    }
}

/// The levels a compression takes: gzip's 0 (stored) to 9, zstd's 1 to 22 (its negative "fast"
/// levels are left out: nobody ships layers that way).
fn level_range(compression: LayerCompression) -> (i32, i32) {
    match compression {
        LayerCompression::None => (0, 0),
        LayerCompression::Gzip => (0, 9),
        LayerCompression::Zstd => (1, 22),
    }
}

/// What an export did, for the progress view: BuildKit-style statuses (`exporting layers`,
/// `exporting manifest sha256:...`, `sending tarball`) with their durations when timed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Finished sub-tasks in order.
    pub statuses: Vec<(String, Option<Duration>)>,
    /// The manifest the archive carries (a rewritten one when layers were compressed).
    pub manifest_digest: Option<Digest>,
}

/// The progress name of an export, as BuildKit names its exporters.
pub fn vertex_name(output: &Output) -> &'static str {
    match output {
        Output::Archive {
            kind: ArchiveKind::Docker,
            ..
        } => "exporting to docker image format",
        Output::Archive {
            kind: ArchiveKind::Oci,
            ..
        } => "exporting to oci image format",
        Output::Local { .. } => "exporting to client directory",
        Output::Tar { .. } => "exporting to client tarball",
    }
}

/// Writes the image `manifest_digest` (named `refs`) to `output`.
pub fn export(
    store: &Store,
    manifest_digest: &Digest,
    refs: &[strata_image::Reference],
    output: &Output,
) -> Result<ExportReport, BuildError> {
    let mut report = ExportReport::default();
    match output {
        Output::Archive {
            kind,
            dest,
            compression,
            level,
        } => {
            let started = Instant::now();
            let manifest_digest = match compression {
                LayerCompression::None => *manifest_digest,
                _ => compressed_manifest(store, manifest_digest, *kind, *compression, *level)?,
            };
            report
                .statuses
                .push(("exporting layers".into(), Some(started.elapsed())));
            let image = store.image(&manifest_digest)?;
            report
                .statuses
                .push((format!("exporting manifest {manifest_digest}"), None));
            report
                .statuses
                .push((format!("exporting config {}", image.config_digest), None));
            report.manifest_digest = Some(manifest_digest);
            let started = Instant::now();
            let io = |source| BuildError::Io {
                path: dest.clone(),
                source,
            };
            let file = std::fs::File::create(dest).map_err(io)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let images = [strata_image::archive::SaveImage {
                manifest_digest,
                refs: refs.to_vec(),
            }];
            strata_image::archive::write_docker_archive(&mut out, &images, store)
                .map_err(|e| io(std::io::Error::other(e.to_string())))?;
            std::io::Write::flush(&mut out).map_err(io)?;
            report
                .statuses
                .push(("sending tarball".into(), Some(started.elapsed())));
        }
        Output::Local { dest } => {
            let started = Instant::now();
            std::fs::create_dir_all(dest).map_err(|source| BuildError::Io {
                path: dest.clone(),
                source,
            })?;
            apply_all(store, manifest_digest, dest)?;
            report
                .statuses
                .push(("copying files".into(), Some(started.elapsed())));
        }
        Output::Tar { dest } => {
            let started = Instant::now();
            let tmp = store
                .root()
                .join("tmp")
                .join(format!("export-{}", std::process::id()));
            std::fs::create_dir_all(&tmp).map_err(|source| BuildError::Io {
                path: tmp.clone(),
                source,
            })?;
            let result = (|| -> Result<(), BuildError> {
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
            result?;
            report
                .statuses
                .push(("sending tarball".into(), Some(started.elapsed())));
        }
    }
    Ok(report)
}

/// Stores a manifest naming the `compression` variant of every layer of `manifest_digest` and
/// returns its digest. Each variant comes from [`Store::compress_layer`]: compressed on every
/// core the first time, read back from the store's record afterwards (the same record a push
/// uses), so a second export or a push of the same layers does not compress again. The config
/// blob is reused as is: its diff_ids are the digests of the uncompressed layers, whatever
/// travels.
fn compressed_manifest(
    store: &Store,
    manifest_digest: &Digest,
    kind: ArchiveKind,
    compression: LayerCompression,
    level: Option<i32>,
) -> Result<Digest, BuildError> {
    let image = store.image(manifest_digest)?;
    let format = match kind {
        ArchiveKind::Oci => ManifestFormat::Oci,
        // docker load reads either format: keep the stored one.
        ArchiveKind::Docker => image
            .manifest
            .media_type()
            .as_ref()
            .and_then(|m| ManifestFormat::of_media_type(m.as_ref()))
            .unwrap_or(ManifestFormat::Oci),
    };
    let level = level.unwrap_or_else(|| strata_layer::default_level(compression));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut layers = Vec::with_capacity(image.manifest.layers().len());
    for layer in image.manifest.layers() {
        let digest = Digest::try_from(layer.digest()).map_err(|_| BuildError::SnapshotMissing)?;
        let stored = LayerCompression::from_media_type(layer.media_type().as_ref())
            .unwrap_or(LayerCompression::None);
        let (blob, size) = if stored == compression {
            // A pulled layer already in the asked compression leaves as it is.
            (digest, layer.size())
        } else {
            let variant = store.compress_layer(&digest, compression, level, threads)?;
            (variant.digest, variant.size)
        };
        layers.push(manifest::descriptor(
            format.layer_media_type(compression),
            blob,
            size,
        ));
    }
    let config = image.manifest.config();
    let config = manifest::descriptor(
        format.config_media_type(),
        image.config_digest,
        config.size(),
    );
    let mut rewritten = manifest::build_manifest(format, config, layers);
    rewritten.set_annotations(image.manifest.annotations().clone());
    Ok(store.put_blob(&manifest::to_bytes(&rewritten))?)
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
                kind: ArchiveKind::Docker,
                dest: "x.tar".into(),
                compression: LayerCompression::None,
                level: None,
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

    #[test]
    fn archive_compression_specs() {
        use ArchiveKind::{Docker, Oci};
        use LayerCompression::{Gzip, None as Plain, Zstd};
        let ok: &[(&str, ArchiveKind, LayerCompression, Option<i32>)] = &[
            ("type=oci,dest=o.tar", Oci, Plain, None),
            (
                "type=oci,dest=o.tar,compression=uncompressed",
                Oci,
                Plain,
                None,
            ),
            ("type=oci,dest=o.tar,compression=gzip", Oci, Gzip, None),
            (
                "type=oci,dest=o.tar,compression=zstd,compression-level=3",
                Oci,
                Zstd,
                Some(3),
            ),
            (
                "compression-level=22,compression=zstd,type=oci,dest=o.tar",
                Oci,
                Zstd,
                Some(22),
            ),
            (
                "type=docker,dest=o.tar,compression=gzip,compression-level=0",
                Docker,
                Gzip,
                Some(0),
            ),
            (
                "type=docker,dest=o.tar,compression=gzip,compression-level=9",
                Docker,
                Gzip,
                Some(9),
            ),
        ];
        for (spec, kind, compression, level) in ok {
            assert_eq!(
                Output::parse(spec),
                Ok(Output::Archive {
                    kind: *kind,
                    dest: "o.tar".into(),
                    compression: *compression,
                    level: *level,
                }),
                "{spec}"
            );
        }
        let spec = |s: &str| s.to_string();
        let bad: &[(&str, OutputSpecError)] = &[
            (
                "type=docker,dest=o.tar,compression=zstd",
                OutputSpecError::ZstdForDocker {
                    spec: spec("type=docker,dest=o.tar,compression=zstd"),
                },
            ),
            (
                "type=oci,dest=o.tar,compression=xz",
                OutputSpecError::Compression {
                    spec: spec("type=oci,dest=o.tar,compression=xz"),
                    value: spec("xz"),
                },
            ),
            (
                "type=oci,dest=o.tar,compression=gzip,compression-level=10",
                OutputSpecError::Level {
                    spec: spec("type=oci,dest=o.tar,compression=gzip,compression-level=10"),
                    value: spec("10"),
                    min: 0,
                    max: 9,
                },
            ),
            (
                "type=oci,dest=o.tar,compression=zstd,compression-level=fast",
                OutputSpecError::Level {
                    spec: spec("type=oci,dest=o.tar,compression=zstd,compression-level=fast"),
                    value: spec("fast"),
                    min: 1,
                    max: 22,
                },
            ),
            (
                "type=oci,dest=o.tar,compression-level=3",
                OutputSpecError::LevelWithoutCompression {
                    spec: spec("type=oci,dest=o.tar,compression-level=3"),
                },
            ),
            (
                "type=oci,dest=o.tar,force-compression=true",
                OutputSpecError::UnknownKey {
                    spec: spec("type=oci,dest=o.tar,force-compression=true"),
                    key: spec("force-compression"),
                    kind: spec("oci"),
                },
            ),
            (
                "type=local,dest=out,compression=gzip",
                OutputSpecError::UnknownKey {
                    spec: spec("type=local,dest=out,compression=gzip"),
                    key: spec("compression"),
                    kind: spec("local"),
                },
            ),
            (
                "type=tar,dest=o.tar,compression-level=1",
                OutputSpecError::UnknownKey {
                    spec: spec("type=tar,dest=o.tar,compression-level=1"),
                    key: spec("compression-level"),
                    kind: spec("tar"),
                },
            ),
        ];
        for (s, expected) in bad {
            assert_eq!(Output::parse(s).as_ref(), Err(expected), "{s}");
        }
    }
}
