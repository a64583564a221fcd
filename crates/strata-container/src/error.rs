//! [`ContainerError`]: why a container operation failed, with the data to say so precisely.

use std::path::PathBuf;

use strata_image::Digest;

/// Why a container operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no such container: {query}")]
    NotFound { query: String },
    #[error("multiple containers match {query:?}: {}", .matches.join(", "))]
    Ambiguous { query: String, matches: Vec<String> },
    #[error(
        "the container name \"/{name}\" is already in use by container {id}: remove (or rename) that container to reuse the name"
    )]
    NameInUse { name: String, id: String },
    #[error("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName { name: String },
    #[error("container {id} is running: stop it first, or use --force")]
    Running { id: String },
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("container {id} is already running")]
    AlreadyRunning { id: String },
    #[error("no command specified: the image has neither Entrypoint nor Cmd")]
    NoCommand,
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidOption {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unknown signal {signal:?}")]
    UnknownSignal { signal: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Json {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("image {image}: {source}")]
    ImageConfig {
        image: Digest,
        #[source]
        source: strata_image::config::ConfigError,
    },
    #[error("image {image}: the manifest lists {layers} layers but the config {diff_ids} diff_ids")]
    LayerCount {
        image: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("image {image}: invalid layer digest {digest:?}: {source}")]
    LayerDigest {
        image: Digest,
        digest: String,
        #[source]
        source: strata_image::DigestError,
    },
    #[error("the root filesystem of container {id} is still mounted at {target}")]
    StillMounted { id: String, target: PathBuf },
    #[error("write the layer of container {id}: {source}")]
    WriteLayer {
        id: String,
        #[source]
        source: strata_layer::WriteError,
    },
    #[error(transparent)]
    Store(#[from] strata_store::StoreError),
    #[error(transparent)]
    Exec(#[from] strata_runtime::ExecError),
    #[error(transparent)]
    User(#[from] strata_runtime::UserError),
    #[error("mount the root filesystem of container {id} at {target}: {source}")]
    Mount {
        id: String,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor of container {id} exited before starting it (see {log})")]
    SupervisorFailed { id: String, log: PathBuf },
    #[error("{path} (in container {id}): {reason}")]
    CopyPath {
        id: String,
        path: String,
        reason: CopyReason,
    },
    #[error("{path}: {reason}")]
    HostPath { path: PathBuf, reason: CopyReason },
    #[error("invalid --change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },
    #[error("invalid reference {reference:?}: {source}")]
    Reference {
        reference: String,
        #[source]
        source: strata_image::reference::ReferenceError,
    },
    #[error("publish port {spec}: {source}")]
    Publish {
        spec: String,
        #[source]
        source: std::io::Error,
    },
}

/// Why a `cp` path cannot be used as asked (docker's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CopyReason {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("cannot copy a directory to a file")]
    DirectoryOntoFile,
    #[error("the destination directory does not exist")]
    MissingDirectory,
    #[error("the path leaves the container's root")]
    Escapes,
    #[error("unsupported file type")]
    UnsupportedType,
}

pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// Attaches the action and the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| ContainerError::Io {
            action,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn at(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|errno| ContainerError::Io {
            action,
            path: path.into(),
            source: errno.into(),
        })
    }
}
