//! The build engine: the build context (`.dockerignore`, content hashing with a stat cache),
//! COPY/ADD with BuildKit's semantics, and (as they land) cache keys and the solver that runs a
//! plan's steps on snapshots.
//!
//! Pure parts (glob and ignore matching, path arithmetic, chmod parsing, source resolution)
//! are separate from the effectful ones (scanning, copying into a rootfs, downloading), and
//! every path written into a rootfs is resolved in that root, so a symlink planted in an image
//! can never redirect a write outside it.

pub mod context;
pub mod copy;
pub mod glob;
pub mod ignore;
pub mod paths;
pub mod progress;
pub mod solve;
pub mod source;
