//! Progress events of a build, for the binary to render (a live tty view or plain logs).
//!
//! The engine only emits events; it never prints. Every step gets a vertex number (`#N` in
//! BuildKit's plain output) when it starts; its output lines, its cached/done/error state and
//! its duration refer to that number.

use std::sync::Arc;
use std::time::Duration;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's stdout.
    Stdout,
    /// The process's stderr.
    Stderr,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step started (`[stage 2/5] RUN make`, `[internal] load build context`).
    Started {
        /// The vertex number.
        vertex: usize,
        /// The display name.
        name: String,
    },
    /// The step's result came from the build cache.
    Cached {
        /// The vertex number.
        vertex: usize,
    },
    /// A line of output (newline stripped).
    Log {
        /// The vertex number.
        vertex: usize,
        /// The stream.
        stream: Stream,
        /// The line.
        line: String,
    },
    /// The step finished.
    Done {
        /// The vertex number.
        vertex: usize,
        /// How long it took.
        elapsed: Duration,
    },
    /// The step failed; the build error follows.
    Failed {
        /// The vertex number.
        vertex: usize,
        /// How long it ran.
        elapsed: Duration,
        /// One-line reason.
        message: String,
    },
}

/// Receives events; called from several threads (parallel stages).
pub type ProgressSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops every event.
pub fn discard() -> ProgressSink {
    Arc::new(|_| {})
}
