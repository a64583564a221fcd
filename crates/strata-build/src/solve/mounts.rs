//! `RUN --mount`: tmpfs, cache (shared, locked, private; seeded `from` a stage or an image),
//! secret (file or env) and bind (from the context, a stage or an image; `rw` binds get a
//! private copy).
//!
//! A cache mount with `from=` follows BuildKit (`solver/llbsolver/mounts/mount.go`): the cache
//! instance is keyed by the id *and* the `from` snapshot (`id:refID`), so each distinct `from`
//! content gets its own cache, and a new instance starts as a copy of that snapshot (BuildKit
//! makes it a mutable child of the ref); later builds with the same id and `from` content reuse
//! the instance and its writes, the seed is never re-applied. `source=` picks the subdirectory
//! of `from` that is mounted. When `source` is not given and `uid`/`gid`/`mode` are, the
//! Dockerfile frontend mounts `/cache` of the `from` tree, created with those attributes if
//! missing (`dispatchRunMounts`), and so does this module. Unlike BuildKit, only the mounted
//! subdirectory is copied into the instance (the rest of the snapshot is never visible
//! through the mount), so the source is part of the instance's key too.

use super::run::write_file;
use super::{BuildError, Shared};
use crate::copy::{self, CopySpec};
use crate::source::{DirTree, SourceTree};
use strata_dockerfile::MountType;
use strata_image::Digest;
use strata_runtime::{Mount, MountKind};

/// The persistent directory of a cache mount: keyed by its id (the target by default) and,
/// for a mount seeded `from` a snapshot, by that snapshot's chain id and the seeded source.
pub(super) fn cache_mount_dir(
    shared: &Shared,
    mount: &strata_dockerfile::Mount,
    target: &str,
    seed: Option<&Digest>,
) -> std::path::PathBuf {
    let id = mount.id.clone().unwrap_or_else(|| target.to_string());
    let key = match seed {
        None => id,
        Some(chain_id) => format!("{id}\0{chain_id}\0{}", cache_seed_source(mount).0),
    };
    shared
        .store
        .root()
        .join("cache-mounts")
        .join(Digest::of(key.as_bytes()).hex())
}

/// The directory of the `from` tree a seeded cache mount shows, and whether it is created
/// (with the mount's mode/uid/gid) when missing: `source`, else `/cache` when any of
/// uid/gid/mode is set (the Dockerfile frontend's permissions step), else the root.
fn cache_seed_source(mount: &strata_dockerfile::Mount) -> (String, bool) {
    match mount.source.as_deref().map(crate::paths::confine) {
        Some(source) if !source.is_empty() => (source, false),
        _ if mount.uid.is_some() || mount.gid.is_some() || mount.mode.is_some() => {
            ("cache".to_string(), true)
        }
        _ => (String::new(), false),
    }
}

/// Fills a new cache instance `dir` from `from_root` (a read-only view of the `from`
/// snapshot): the seed is copied into a sibling directory, then renamed into place, so a
/// concurrent build never sees a half-seeded cache; when another build seeded it first, its
/// instance is kept and this copy dropped.
fn seed_cache_dir(
    mount: &strata_dockerfile::Mount,
    from_root: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let reject = |reason: String| BuildError::Mount {
        raw: format!("{mount:?}"),
        reason,
    };
    let (source, create) = cache_seed_source(mount);
    let tree = DirTree::new(from_root);
    let resolved = crate::source::resolve(&tree, &source, true)
        .map_err(|e| reject(format!("cache source /{source}: {e}")))?;
    let meta = tree
        .lstat(&resolved)
        .map_err(|e| reject(format!("cache source /{source}: {e}")))?;
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    // Unique per process and call: two steps of one build may seed the same cache at once.
    static SEEDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEEDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = sibling(dir, &format!("seed-{}-{n}", std::process::id()));
    if staging.exists() {
        // Left by a crashed process that had the same pid.
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    if let Some(parent) = staging.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let (mode, uid, gid) = match meta {
        Some(meta) if meta.is_dir() => {
            let spec = CopySpec {
                sources: vec![resolved.clone()],
                dest: "/".into(),
                workdir: "/".into(),
                ..Default::default()
            };
            let prepared = copy::prepare(&tree, &spec)?;
            copy::execute(&staging, &tree, &prepared)?;
            (meta.permissions(), meta.uid, meta.gid)
        }
        Some(_) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(reject(format!(
                "cache source /{source} in the from tree is not a directory"
            )));
        }
        None if create => (
            mount.mode.unwrap_or(0o755),
            mount.uid.unwrap_or(0),
            mount.gid.unwrap_or(0),
        ),
        None => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(reject(format!(
                "cache source /{source} not found in the from tree"
            )));
        }
    };
    // The instance's root is the seeded directory itself, with its ownership and mode.
    std::os::unix::fs::chown(&staging, Some(uid), Some(gid)).map_err(io(&staging))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .map_err(io(&staging))?;
    match std::fs::rename(&staging, dir) {
        Ok(()) => Ok(()),
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(io(dir)(e))
        }
    }
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

/// `RUN --mount`: tmpfs, cache (a persistent directory under the store, seeded from
/// `bind_root` when it is new and the mount has `from=`), secret (a file outside every
/// layer), bind (from the context, or from `bind_root`, a view of a stage or an image).
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
            let dir = cache_dir
                .map(std::path::Path::to_path_buf)
                .unwrap_or_else(|| cache_mount_dir(shared, mount, &target, None));
            if let (false, Some(from_root)) = (dir.exists(), bind_root) {
                seed_cache_dir(mount, from_root, &dir)?;
            } else if !dir.exists() {
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
