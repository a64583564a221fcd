//! Per-layer facts that are expensive to recompute, keyed by diff_id: the unpacked size docker
//! reports (the sum of file sizes in the layer, not the tar size).

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_image::Digest;

use crate::Store;
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::write_atomic;

/// What the store remembers about one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: Digest,
    /// Sum of the sizes of regular files and symlinks in the layer (hardlinks counted once),
    /// which is what docker shows as a layer's and an image's SIZE.
    pub size: u64,
}

impl Store {
    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// The recorded facts for a layer, if computed before.
    pub fn layer_info(&self, diff_id: &Digest) -> Result<Option<LayerInfo>> {
        let path = self.layer_path(diff_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx("read", path),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Json {
                what: "layer record",
                path,
                source,
            })
    }

    /// Records facts about a layer (idempotent: they are a function of the diff_id).
    pub fn set_layer_info(&self, info: &LayerInfo) -> Result<()> {
        let path = self.layer_path(&info.diff_id);
        let bytes = serde_json::to_vec(info).map_err(|source| StoreError::Json {
            what: "layer record",
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, &bytes)
    }
}
