//! A container's root filesystem: the image's snapshots (unpacked once, shared by every
//! container and build) as overlay lowers, and the container's own `upper`/`work` directories,
//! so writes never touch the image and survive stop/start until `rm`.
//!
//! The runtime crate's snapshotters want an empty upper directory at every prepare (a build
//! step's diff starts empty); a container's upper keeps its changes across restarts, so the
//! overlay is mounted here directly.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};
use strata_image::Digest;
use strata_store::{Image, Store};

use crate::error::{ContainerError, IoContext, Result};

/// Makes sure every layer of `image` is unpacked as a committed snapshot, and returns the
/// snapshot directories top-first (overlay's lowerdir order).
///
/// Idempotent and safe under concurrency: a layer another process is unpacking at the same time
/// is unpacked twice and the store keeps the first commit ([`Store::commit_snapshot`]).
pub fn ensure_snapshots(store: &Store, image: &Image) -> Result<Vec<PathBuf>> {
    let (layers, _) = image_layers(image)?;
    let chain_ids = store.ensure_snapshots(&layers)?;
    let mut dirs = Vec::with_capacity(chain_ids.len());
    for chain_id in chain_ids.iter().rev() {
        let snapshot = store
            .snapshot(chain_id)?
            .ok_or(strata_store::StoreError::SnapshotNotFound(*chain_id))?;
        dirs.push(snapshot.dir);
    }
    Ok(dirs)
}

/// An image's layers as (blob digest, diff_id), bottom first, and their chain ids.
pub(crate) type ImageLayers = (Vec<(Digest, Digest)>, Vec<Digest>);

/// The layers of `image`.
pub(crate) fn image_layers(image: &Image) -> Result<ImageLayers> {
    let config = strata_image::ImageConfig::from_slice(&image.config_bytes).map_err(|source| {
        ContainerError::ImageConfig {
            image: image.config_digest,
            source,
        }
    })?;
    let diff_ids = config
        .diff_ids()
        .map_err(|source| ContainerError::ImageConfig {
            image: image.config_digest,
            source,
        })?;
    let layers = image.manifest.layers();
    if layers.len() != diff_ids.len() {
        return Err(ContainerError::LayerCount {
            image: image.config_digest,
            layers: layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let mut out = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.iter().zip(&diff_ids) {
        let blob =
            Digest::try_from(layer.digest()).map_err(|source| ContainerError::LayerDigest {
                image: image.config_digest,
                digest: layer.digest().to_string(),
                source,
            })?;
        out.push((blob, *diff_id));
    }
    let chain_ids = strata_image::chain_id(&diff_ids);
    Ok((out, chain_ids))
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
pub(crate) fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = path.parent() else {
        return false;
    };
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}

/// Overlay mount options: `lowerdir` top-first, with overlay's separators escaped.
fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> Vec<u8> {
    fn push_escaped(out: &mut Vec<u8>, path: &Path) {
        for &b in path.as_os_str().as_bytes() {
            if matches!(b, b':' | b',' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
    }
    let mut out = b"lowerdir=".to_vec();
    for (i, lower) in lowers.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        push_escaped(&mut out, lower);
    }
    out.extend_from_slice(b",upperdir=");
    push_escaped(&mut out, upper);
    out.extend_from_slice(b",workdir=");
    push_escaped(&mut out, work);
    out
}

/// Mounts the overlay at `target` (unmounting a stale mount a crashed owner left first).
pub(crate) fn mount(
    id: &str,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<()> {
    if is_mounted(target) {
        unmount(target)?;
    }
    let data =
        CString::new(overlay_options(lowers, upper, work)).map_err(|_| ContainerError::Mount {
            id: id.to_owned(),
            target: target.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
    rustix::mount::mount(
        c"overlay",
        target,
        c"overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|errno| ContainerError::Mount {
        id: id.to_owned(),
        target: target.to_owned(),
        source: errno.into(),
    })
}

/// Unmounts `target`, lazily when still busy.
pub(crate) fn unmount(target: &Path) -> Result<()> {
    if !is_mounted(target) {
        return Ok(());
    }
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Err(rustix::io::Errno::BUSY) => {
            rustix::mount::unmount(target, UnmountFlags::DETACH).at("unmount", target)
        }
        other => other.at("unmount", target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_escape_overlay_separators() {
        let opts = overlay_options(
            &[PathBuf::from("/s/2/fs"), PathBuf::from("/s/a:b,c/fs")],
            Path::new("/c/upper"),
            Path::new("/c/work"),
        );
        assert_eq!(
            String::from_utf8(opts).unwrap(),
            "lowerdir=/s/2/fs:/s/a\\:b\\,c/fs,upperdir=/c/upper,workdir=/c/work"
        );
    }
}
