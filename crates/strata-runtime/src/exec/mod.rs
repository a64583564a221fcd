//! Running one process in a root filesystem.
//!
//! [`Executor::run`] takes a [`ProcessSpec`], the root of a prepared snapshot and where the
//! process's standard streams go, and resolves to the process's exit status. Two
//! implementations: [`RuncExecutor`] (a real container through `runc` or `crun`) and
//! [`FakeExecutor`] (records what it was asked to run, for the tests of callers).
//!
//! Output is streamed while the process runs, never buffered whole and never clipped.

mod fake;
mod mountpoints;
mod output;
mod pty;
mod runc;
mod tiny_elf;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

pub use fake::{FakeExecutor, FakeRun, RecordedRun};
pub use runc::{ContainerState, RuncExecutor, RuntimeKind, probe_crun};

use crate::fsutil::PathError;
use crate::spec::{ProcessSpec, SpecError};

/// How a process ended. An OCI runtime reports a death by signal `n` as `128 + n`, as a shell
/// does, so that is what [`ExitStatus::code`] holds then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus {
    code: i32,
}

impl ExitStatus {
    pub fn from_code(code: i32) -> Self {
        Self { code }
    }

    pub fn code(&self) -> i32 {
        self.code
    }

    pub fn success(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.code)
    }
}

/// Where a process's stdin comes from (only when [`ProcessSpec::stdin`] is set; `/dev/null`
/// otherwise).
pub enum StdinSource {
    Null,
    Inherit,
    Bytes(Vec<u8>),
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

/// Receives output one line at a time (see [`OutputSink::Lines`]).
pub type LineCallback = Box<dyn FnMut(&[u8]) + Send>;

/// Where a process's stdout or stderr goes.
pub enum OutputSink {
    Null,
    Inherit,
    /// Called with each line as it arrives, newline included (the last line may lack one). A
    /// line longer than 64 KiB arrives in 64 KiB pieces, so a progress bar without newlines is
    /// still shown live.
    Lines(LineCallback),
    /// Bytes copied as they arrive.
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

impl std::fmt::Debug for StdinSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Null => "Null",
            Self::Inherit => "Inherit",
            Self::Bytes(_) => "Bytes",
            Self::Reader(_) => "Reader",
        })
    }
}

impl std::fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Null => "Null",
            Self::Inherit => "Inherit",
            Self::Lines(_) => "Lines",
            Self::Writer(_) => "Writer",
        })
    }
}

/// The standard streams of one run.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: StdinSource,
    pub stdout: OutputSink,
    pub stderr: OutputSink,
}

impl Stdio {
    /// Nothing in, nothing kept.
    pub fn null() -> Self {
        Self {
            stdin: StdinSource::Null,
            stdout: OutputSink::Null,
            stderr: OutputSink::Null,
        }
    }

    /// The caller's own streams.
    pub fn inherit() -> Self {
        Self {
            stdin: StdinSource::Inherit,
            stdout: OutputSink::Inherit,
            stderr: OutputSink::Inherit,
        }
    }
}

/// The future [`Executor::run`] returns (boxed, so executors can be chosen at run time).
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<ExitStatus, ExecError>> + Send + 'a>>;

/// Runs processes in root filesystems.
///
/// Dropping the future before it resolves stops the process: the container is killed and
/// deleted, and the mount points made for it are removed.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// A short name for logs (`runc`, `crun`, `fake`).
    fn name(&self) -> &'static str;

    /// Run `spec` in `rootfs` and wait for it to end.
    ///
    /// The mount points the run needs and the rootfs lacks (`/proc`, `/dev`, `/sys`,
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, extra mount destinations, and any
    /// missing parents) are removed again afterwards, so that a snapshot committed after the
    /// run holds only what the process changed.
    fn run<'a>(&'a self, spec: &'a ProcessSpec, rootfs: &'a Path, stdio: Stdio) -> RunFuture<'a>;
}

/// Why a process could not be run (its own non-zero exit is not an error: see [`ExitStatus`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Fs(#[from] PathError),
    #[error("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidContainerId { id: String },
    #[error("unknown OCI runtime {name:?} (known: runc, crun)")]
    UnknownRuntime { name: String },
    #[error("start {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{runtime} failed to run container {id}: {message}")]
    Runtime {
        runtime: &'static str,
        id: String,
        message: String,
    },
    #[error("{runtime} was killed by signal {signal} while running container {id}")]
    RuntimeKilled {
        runtime: &'static str,
        id: String,
        signal: i32,
    },
    #[error("{stream} of container {id}: {source}")]
    Stream {
        stream: &'static str,
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no probe program for {arch}: the runtime probe runs on x86_64 and aarch64")]
    ProbeUnavailable { arch: &'static str },
    #[error("the {runtime} probe container exited with {status}")]
    ProbeFailed {
        runtime: &'static str,
        status: ExitStatus,
    },
}
