//! `RUN --mount`: tmpfs, cache (shared, locked, private), secret (file or env) and bind (from
//! the context, a stage or an image; `rw` binds get a private copy).

use super::run::write_file;
use super::{BuildError, Shared};
use crate::copy::{self, CopySpec};
use crate::source::{DirTree, SourceTree};
use strata_dockerfile::MountType;
use strata_image::Digest;
use strata_runtime::{Mount, MountKind};

/// The persistent directory of a cache mount (keyed by its id, the target by default).
pub(super) fn cache_mount_dir(
    shared: &Shared,
    mount: &strata_dockerfile::Mount,
    target: &str,
) -> std::path::PathBuf {
    let id = mount.id.clone().unwrap_or_else(|| target.to_string());
    shared
        .store
        .root()
        .join("cache-mounts")
        .join(Digest::of(id.as_bytes()).hex())
}

/// Takes the exclusive lock of a `sharing=locked` cache mount (other builds, in this process or
/// another, wait for it); the lock is released when the returned file is dropped.
pub(super) fn lock_cache_mount(dir: &std::path::Path) -> Result<std::fs::File, BuildError> {
    let path = lock_path(dir);
    let file = open_lock_file(&path)?;
    file.lock()
        .map_err(|source| BuildError::Io { path, source })?;
    Ok(file)
}

/// Opens (creating it and its parent if needed) the lock file of a cache directory.
fn open_lock_file(path: &std::path::Path) -> Result<std::fs::File, BuildError> {
    let io = |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)
}

/// `<dir>.<suffix>` beside `dir` (cache directory names are hex digests without a dot).
pub(super) fn sibling(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    dir.with_file_name(name)
}

pub(super) fn lock_path(dir: &std::path::Path) -> std::path::PathBuf {
    sibling(dir, "lock")
}

/// `sharing=private`: the first instance of the cache (`dir`, `dir-1`, `dir-2`, ...) whose lock
/// is free, locked for this step.
pub(super) fn private_cache_mount(
    base: &std::path::Path,
) -> Result<(std::path::PathBuf, std::fs::File), BuildError> {
    for n in 0.. {
        let dir = if n == 0 {
            base.to_path_buf()
        } else {
            sibling(base, &format!("private-{n}"))
        };
        let path = lock_path(&dir);
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => return Ok((dir, file)),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(BuildError::Io { path, source });
            }
        }
    }
    Err(BuildError::Io {
        path: base.to_path_buf(),
        source: std::io::Error::other("no free cache instance"),
    })
}

/// `RUN --mount`: tmpfs, cache (a persistent directory under the store), secret (a file
/// outside every layer), bind from the context.
pub(super) fn run_mount(
    shared: &Shared,
    mount: &strata_dockerfile::Mount,
    scratch: &std::path::Path,
    index: usize,
    bind_root: Option<&std::path::Path>,
    cache_dir: Option<&std::path::Path>,
) -> Result<Mount, BuildError> {
    let unsupported = |reason: &str| BuildError::Mount {
        raw: format!("{mount:?}"),
        reason: reason.to_string(),
    };
    match mount.kind {
        MountType::Tmpfs => {
            let target = mount
                .target
                .clone()
                .ok_or_else(|| unsupported("tmpfs needs a target"))?;
            Ok(Mount {
                kind: MountKind::Tmpfs { size: mount.size },
                destination: target.into(),
            })
        }
        MountType::Cache => {
            let target = mount
                .target
                .clone()
                .ok_or_else(|| unsupported("cache needs a target"))?;
            if mount.from.is_some() {
                return Err(unsupported(
                    "cache mounts seeded from another stage are not supported yet",
                ));
            }
            let dir = cache_dir
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| cache_mount_dir(shared, mount, &target));
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                    path: dir.clone(),
                    source,
                })?;
                use std::os::unix::fs::PermissionsExt;
                let mode = mount.mode.unwrap_or(0o755);
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(
                    |source| BuildError::Io {
                        path: dir.clone(),
                        source,
                    },
                )?;
                std::os::unix::fs::chown(
                    &dir,
                    Some(mount.uid.unwrap_or(0)),
                    Some(mount.gid.unwrap_or(0)),
                )
                .map_err(|source| BuildError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
            Ok(Mount {
                kind: MountKind::Bind {
                    source: dir,
                    readonly: mount.read_only,
                },
                destination: target.into(),
            })
        }
        MountType::Secret => {
            let id = mount
                .id
                .clone()
                .or_else(|| {
                    mount
                        .target
                        .as_deref()
                        .map(|t| crate::paths::base(t).to_string())
                })
                .ok_or_else(|| unsupported("secret needs an id or a target"))?;
            let Some(secret) = shared.options.secrets.iter().find(|s| s.id == id) else {
                if mount.required {
                    return Err(BuildError::SecretNotFound { id });
                }
                let file = scratch.join(format!("empty-secret-{index}"));
                write_file(&file, b"", 0o400)?;
                let target = mount
                    .target
                    .clone()
                    .unwrap_or_else(|| format!("/run/secrets/{id}"));
                return Ok(Mount {
                    kind: MountKind::Bind {
                        source: file,
                        readonly: true,
                    },
                    destination: target.into(),
                });
            };
            let file = scratch.join(format!("secret-{index}"));
            write_file(&file, &secret.value, mount.mode.unwrap_or(0o400))?;
            std::os::unix::fs::chown(
                &file,
                Some(mount.uid.unwrap_or(0)),
                Some(mount.gid.unwrap_or(0)),
            )
            .map_err(|source| BuildError::Io {
                path: file.clone(),
                source,
            })?;
            let target = mount
                .target
                .clone()
                .unwrap_or_else(|| format!("/run/secrets/{id}"));
            Ok(Mount {
                kind: MountKind::Bind {
                    source: file,
                    readonly: true,
                },
                destination: target.into(),
            })
        }
        MountType::Bind => {
            let target = mount
                .target
                .clone()
                .ok_or_else(|| unsupported("bind needs a target"))?;
            let source = crate::paths::confine(mount.source.as_deref().unwrap_or(""));
            // The source tree: another stage's or image's read-only view, else the context.
            let stage_tree = bind_root.map(DirTree::new);
            let tree: &dyn SourceTree = match &stage_tree {
                Some(t) => t,
                None => shared.context.as_ref(),
            };
            let host_root = bind_root
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| shared.context.root().to_path_buf());
            let resolved = crate::source::resolve(tree, &source, true)
                .map_err(|e| unsupported(&e.to_string()))?;
            let Some(meta) = tree
                .lstat(&resolved)
                .map_err(|e| unsupported(&e.to_string()))?
            else {
                return Err(unsupported(&format!("source {source:?} not found")));
            };
            if mount.read_only {
                return Ok(Mount {
                    kind: MountKind::Bind {
                        source: host_root.join(&resolved),
                        readonly: true,
                    },
                    destination: target.into(),
                });
            }
            // rw: the process may write, the writes are thrown away: bind a private copy.
            let dir = scratch.join(format!("bind-{index}"));
            std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
                path: dir.clone(),
                source,
            })?;
            let spec = CopySpec {
                sources: vec![source.clone()],
                dest: "/".into(),
                workdir: "/".into(),
                ..Default::default()
            };
            let prepared = copy::prepare(tree, &spec)?;
            copy::execute(&dir, tree, &prepared)?;
            let host = if meta.is_dir() {
                dir
            } else {
                dir.join(crate::paths::base(&source))
            };
            Ok(Mount {
                kind: MountKind::Bind {
                    source: host,
                    readonly: false,
                },
                destination: target.into(),
            })
        }
        MountType::Ssh => Err(unsupported("ssh mounts are not supported")),
    }
}
