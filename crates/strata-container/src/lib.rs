//! Containers on strata's store, without a daemon: records and their lifecycle (create, start,
//! stop, kill, wait, rm), the `-d` supervisor's loop, `cp` in and out of a container's root
//! filesystem resolved strictly in-root, `commit` of a container's changes as a new image
//! layer, `export` of its flattened filesystem, and the userspace port proxy.
//!
//! A container lives in the store root under `containers/<id>/` (see [`containers`]); its
//! filesystem is an overlay of the image's snapshots (unpacked once by [`ensure_snapshots`],
//! shared with builds) and its own upper directory. It runs through the OCI runtime of
//! `strata-runtime` under the container's own id, so any strata process can signal it.
//!
//! A detached container runs under a supervisor process (strata re-executed) that owns it and
//! keeps its output as docker's `json-file` lines ([`logs`]); `ps` stays right when a
//! supervisor is SIGKILLed, because ownership is a `flock` the kernel releases ([`containers`]).
//!
//! Docker's rules are kept where users rely on them: the image config's
//! Entrypoint/Cmd/Env/WorkingDir/User merged with `run` flags ([`record::resolve`]), exit codes
//! 125/126/127, `ps` columns, random `adjective_surname` names, `cp`'s file/directory/`/.`
//! rules.

pub mod commit;
pub mod containers;
pub mod copy;
mod error;
pub mod lifecycle;
pub mod logs;
pub mod names;
pub mod proxy;
pub mod record;
mod rootfs;

pub use commit::{CommitOptions, commit, export};
pub use containers::{Container, Containers};
pub use copy::{CopyEndpoint, copy_from_container, copy_into_container};
pub use error::{ContainerError, CopyReason, Result};
pub use lifecycle::{Outcome, Output, start_failure_code};
pub use record::{ContainerConfig, CreateOptions, PortMapping, State, Status};
pub use rootfs::ensure_snapshots;
