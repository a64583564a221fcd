//! OCI distribution client: pull images from registries into the store and push stored images
//! back, speaking the protocol as docker does (Docker Hub naming, bearer-token and basic auth
//! from docker's `config.json` and credential helpers, cross-repository mounts, chunked
//! uploads, retries).
//!
//! Layers: [`client`] (HTTP, auth, retries) → [`registry`] (the [`Registry`] trait of the six
//! protocol operations, implemented by [`Client`] and by [`memory::MemoryRegistry`]) →
//! [`mod@pull`] / [`mod@push`] (content moved into and out of the store, verified on the way).
//! [`manifest`] and [`challenge`] are pure; [`credentials`] reads and writes docker's files.
//!
//! A caller (the `pull`/`push` commands, the build engine for `FROM`) makes one [`Client`] per
//! process and shares it: it caches each registry's scheme, auth challenge and tokens.
//!
//! ```text
//! let client = Client::new(ClientOptions::from_environment()?)?;
//! let pulled = pull(&client, &store /* Arc<Store> */, &reference, &PullOptions::default(), &|event| ...).await?;
//! // pulled.name is tagged in the store; store.image(&pulled.manifest_digest) loads it.
//! let pushed = push(&client, &store, &image, &target, &PushOptions::default(), &|event| ...).await?;
//! ```
//!
//! Everything is verified before it becomes visible in the store: blobs by size and digest on
//! commit, manifests by digest (and `Docker-Content-Digest`), the tag only once every blob it
//! needs is present. Credentials never appear in errors or logs.

pub mod challenge;
pub mod client;
pub mod credentials;
pub mod error;
pub mod events;
pub mod manifest;
pub mod memory;
pub mod metadata;
pub mod pull;
pub mod push;
pub mod registry;

pub use client::{Client, ClientOptions};
pub use credentials::{Credential, DockerConfig};
pub use error::{RegistryError, Result};
pub use events::{BlobStatus, Event, EventSink};
pub use manifest::Platform;
pub use pull::{PullOptions, Pulled, pull};
pub use push::{DEFAULT_COMPRESSION_LEVEL, PushOptions, Pushed, push};
pub use registry::{Registry, Repo};
