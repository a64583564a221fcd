//! Snapshots created on demand: an image layer's blob unpacked, as an overlay diff, into a
//! snapshot committed under its chain id. The build engine (base images, `--from` images) and
//! containers share this one path, so a layer is unpacked once for both.

use strata_image::{Digest, chain_id_on};

use crate::Store;
use crate::error::{Result, StoreError};

impl Store {
    /// Makes sure every layer of `layers` (`(blob, diff_id)`, bottom first) is unpacked as a
    /// committed snapshot, and returns their chain ids (bottom first).
    ///
    /// Idempotent and safe under concurrency: a layer another process unpacks at the same time
    /// is unpacked twice and the first commit wins ([`Store::commit_snapshot`]).
    pub fn ensure_snapshots(&self, layers: &[(Digest, Digest)]) -> Result<Vec<Digest>> {
        let mut chain_ids: Vec<Digest> = Vec::with_capacity(layers.len());
        for (blob, diff_id) in layers {
            let parent = chain_ids.last().copied();
            let chain_id = chain_id_on(parent.as_ref(), diff_id);
            if self.snapshot(&chain_id)?.is_none() {
                let prepared = self.prepare_snapshot()?;
                let reader = self.open_blob(blob)?;
                strata_layer::unpack_overlay_diff(reader, &prepared.dir).map_err(|source| {
                    StoreError::Unpack {
                        layer: *blob,
                        source,
                    }
                })?;
                self.commit_snapshot(prepared, chain_id, *diff_id, parent)?;
            }
            chain_ids.push(chain_id);
        }
        Ok(chain_ids)
    }
}
