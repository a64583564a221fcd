//! Snapshots and process execution for strata: everything that needs root.
//!
//! Two narrow effects, each behind a trait with two implementations:
//!
//! - [`snapshot::Snapshotter`] turns a stack of layer directories in the overlay-diff format (the
//!   store's unpacked layers) into a root filesystem view, and afterwards leaves exactly the
//!   changes made in that view in an overlay-style upper directory: [`OverlaySnapshotter`] mounts
//!   overlayfs through the new mount API, [`CopySnapshotter`] materializes and diffs by copying
//!   where overlayfs is unavailable.
//! - [`exec::Executor`] runs one process described by a [`ProcessSpec`] in such a root filesystem:
//!   [`RuncExecutor`] drives an OCI runtime binary (`runc`, or `crun`) on a bundle whose
//!   `config.json` comes from the pure [`runtime_spec`]; [`FakeExecutor`] records specs for the
//!   tests of callers.
//!
//! [`resolve_user`] turns a Dockerfile `USER` (or `--user`) string into ids by reading the
//! rootfs's own `/etc/passwd` and `/etc/group` without following symlinks out of it.

pub mod exec;
mod fsutil;
mod inroot;
pub mod snapshot;
pub mod spec;
pub mod user;

pub use exec::{
    ExecError, Executor, ExitStatus, FakeExecutor, OutputSink, RuncExecutor, RuntimeKind,
    StdinSource, Stdio,
};
pub use snapshot::{
    ActiveSnapshot, CopySnapshotter, OverlaySnapshotter, SnapshotError, Snapshotter, UpperDir,
    overlay_supported,
};
pub use spec::{EtcFiles, Mount, MountKind, Network, ProcessSpec, SpecError, User, runtime_spec};
pub use user::{UserError, resolve_user};
