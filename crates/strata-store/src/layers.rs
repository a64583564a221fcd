//! Per-layer facts that are expensive to recompute, keyed by diff_id: the unpacked size docker
//! reports (the sum of file sizes in the layer, not the tar size).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use strata_image::Digest;

use crate::Store;
use crate::error::Result;
use crate::fsutil::{read_json_record, write_json_record};

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
        read_json_record(self.layer_path(diff_id), "layer record")
    }

    /// Records facts about a layer (idempotent: they are a function of the diff_id).
    pub fn set_layer_info(&self, info: &LayerInfo) -> Result<()> {
        write_json_record(self.layer_path(&info.diff_id), "layer record", info)
    }
}
