//! Image references, digests, and the OCI/Docker image formats strata reads and writes.
//!
//! Everything here is pure or streaming I/O: no store, no network. The OCI types are the
//! `oci-spec` crate's, re-exported as [`oci`], so every other crate speaks the same types.

pub mod digest;

pub use digest::{Digest, DigestError, Sha256Writer};
/// The `oci-spec` crate, re-exported so every strata crate uses the same version.
pub use oci_spec as oci;
