//! Layer tars: apply them safely, create them deterministically, diff an overlay upperdir.
//!
//! * [`apply_layer`] applies an OCI layer (plain, gzip or zstd) onto a rootfs directory, honoring
//!   whiteouts and opaque markers; [`unpack_overlay_diff`] unpacks one as an overlayfs lower directory
//!   (whiteouts as 0/0 character devices, opaque directories as `trusted.overlay.opaque=y`). Both resolve
//!   every name beneath the target with `openat2(RESOLVE_BENEATH)` and refuse an escaping entry by name.
//! * [`write_layer`] tars a whole tree and [`write_overlay_diff`] an overlay upperdir, byte-for-byte
//!   deterministically, digesting the stream (the diff_id) as it is written.
//! * [`compress`] / [`decompressed`] stream gzip and zstd, detecting the compression from magic bytes.
//!
//! Layers are specified in the OCI image spec (`layer.md`): changesets as tars, `.wh.<name>` whiteouts,
//! `.wh..wh..opq` opaque directories applied before their siblings whatever their position in the tar.

mod apply;
mod compression;
mod error;
pub mod name;
mod pgzip;
mod root;
mod tarfmt;
mod write;

pub use apply::{ApplyStats, apply_layer, unpack_overlay_diff};
pub use compression::{
    Compressed, Compression, compress, decompressed, decompressed_as, default_level,
};
pub use error::{ApplyError, WriteError};
pub use write::{
    LayerInfo, WriteOptions, write_layer, write_overlay_diff, write_overlay_diff_unhashed,
};
