//! Image references, digests, and the OCI/Docker image formats strata reads and writes.
//!
//! Everything here is pure or streaming I/O: no store, no network. The OCI types are the
//! `oci-spec` crate's, re-exported as [`oci`], so every other crate speaks the same types.
//!
//! - [`reference`]: docker's reference grammar and normalization (`busybox` →
//!   `docker.io/library/busybox:latest`) and the familiar short form.
//! - [`digest`]: sha256 digests, a hashing writer, chain ids.
//! - [`media`]: OCI and Docker media types, layer compression.
//! - [`config`]: image configs with docker's extensions preserved, canonical JSON.
//! - [`manifest`]: manifests and indexes of both formats on oci-spec types.
//! - [`archive`]: streaming `docker save`/`docker load` and OCI archive reading and writing.
//! - [`human`]: sizes and durations as the docker CLI prints them.

pub mod archive;
pub mod config;
pub mod digest;
pub mod human;
pub mod manifest;
pub mod media;
pub mod reference;

pub use config::{DockerExtensions, Healthcheck, ImageConfig};
pub use digest::{Digest, DigestError, Sha256Writer, chain_id, chain_id_on};
pub use media::LayerCompression;
/// The `oci-spec` crate, re-exported so every strata crate uses the same version.
pub use oci_spec as oci;
pub use reference::{Reference, ReferenceError};
