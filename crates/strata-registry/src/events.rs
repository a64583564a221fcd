//! Progress of a pull or push, reported per blob the way docker reports it, so a front end
//! can draw docker's `<id>: Downloading [===>  ] 1.2MB/3.4MB` lines or log one line per state.
//!
//! Events are plain data sent to a caller-supplied sink; the library never prints.

use strata_image::Digest;

/// What is happening to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStatus {
    /// Pull: queued (docker's "Pulling fs layer"); push: queued ("Waiting").
    Waiting,
    /// Pull: the store already has it ("Already exists").
    AlreadyExists,
    Downloading {
        current: u64,
        total: u64,
    },
    /// Pull: downloaded, digest being checked ("Verifying Checksum").
    Verifying,
    /// Pull: verified and committed to the store ("Pull complete").
    PullComplete,
    /// Push: compressing an uncompressed layer before upload ("Preparing").
    Preparing,
    Pushing {
        current: u64,
        total: u64,
    },
    /// Push: uploaded ("Pushed").
    Pushed,
    /// Push: linked from another repository of the registry (`Mounted from <repository>`).
    Mounted {
        from: String,
    },
    /// Push: the registry already has it ("Layer already exists").
    LayerExists,
}

/// A progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The reference resolved to this digest (an index or a manifest).
    Resolved { digest: Digest },
    /// A blob (config or layer) changed state. `is_config` lets a front end hide the config
    /// as docker does.
    Blob {
        digest: Digest,
        is_config: bool,
        status: BlobStatus,
    },
}

/// Where events go. Must be cheap: it is called for every chunk of every transfer.
pub type EventSink<'a> = &'a (dyn Fn(Event) + Send + Sync);

/// A sink that drops everything.
pub fn ignore(_: Event) {}
