//! The registry client's error type: every variant carries the data a user needs to act
//! (the URL, the status, the registry's own error codes, expected vs found digests).
//!
//! Credentials never appear here: URLs are built by strata and never carry userinfo, and
//! token or password values are never formatted.

use std::fmt;
use std::path::PathBuf;

use strata_image::Digest;

/// One entry of a registry's error body (`{"errors":[{"code":…,"message":…}]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// Parses a registry error body; anything else yields no entries.
pub(crate) fn parse_error_body(body: &[u8]) -> Vec<ApiError> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

/// Renders `errors[]` as `CODE: message; CODE: message`.
#[derive(Debug)]
pub struct ApiErrors<'a>(pub &'a [ApiError]);

impl fmt::Display for ApiErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => write!(f, "{}: {}", e.code, e.message)?,
                (false, true) => f.write_str(&e.code)?,
                _ => f.write_str(&e.message)?,
            }
        }
        Ok(())
    }
}

fn status_detail(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", ApiErrors(errors))
    }
}

/// Everything that can go wrong talking to a registry or moving content to/from the store.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {url}: {source}")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}: registry answered {status}{}", status_detail(errors))]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        errors: Vec<ApiError>,
    },
    #[error("{registry}: authentication required{}{}", status_detail(errors), if *had_credentials { " (the credentials were refused)" } else { "" })]
    Unauthorized {
        registry: String,
        had_credentials: bool,
        errors: Vec<ApiError>,
    },
    #[error("{registry}: access denied{}", status_detail(errors))]
    Denied {
        registry: String,
        errors: Vec<ApiError>,
    },
    #[error(
        "token request to {realm} failed with {status}{}",
        status_detail(errors)
    )]
    TokenStatus {
        realm: String,
        status: u16,
        errors: Vec<ApiError>,
    },
    #[error("token response from {realm} is not a token: {detail}")]
    TokenMalformed { realm: String, detail: String },
    #[error("{url}: registry URL is invalid")]
    InvalidUrl { url: String },
    #[error("{reference}: not found in {registry}{}", status_detail(errors))]
    NotFound {
        registry: String,
        reference: String,
        errors: Vec<ApiError>,
    },
    #[error("manifest {reference}: larger than the {limit} byte limit")]
    ManifestTooLarge { reference: String, limit: u64 },
    #[error("{what} {expected}: content has digest {found}")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        found: Digest,
    },
    #[error("{what} {digest}: expected {expected} bytes, received {found}")]
    SizeMismatch {
        what: &'static str,
        digest: Digest,
        expected: u64,
        found: u64,
    },
    #[error(
        "manifest {reference}: Docker-Content-Digest {header} does not match the content digest {found}"
    )]
    HeaderDigestMismatch {
        reference: String,
        header: String,
        found: Digest,
    },
    #[error("manifest {reference}: malformed {media_type}: {source}")]
    MalformedManifest {
        reference: String,
        media_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest {reference}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("manifest {reference}: descriptor has an invalid digest {digest:?}")]
    InvalidDescriptorDigest { reference: String, digest: String },
    #[error("{reference}: no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    #[error(
        "upload of {digest} to {repository}: registry answered {status} without a Location header"
    )]
    MissingLocation {
        repository: String,
        digest: Digest,
        status: u16,
    },
    #[error("credential helper docker-credential-{helper}: {detail}")]
    CredentialHelper { helper: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid docker config: {source}")]
    ConfigFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: auth entry for {registry} is not base64 of user:password")]
    ConfigAuthEntry { path: PathBuf, registry: String },
    #[error("store: {0}")]
    Store(#[from] strata_store::StoreError),
    #[error("blob {digest}: {source}")]
    BlobIo {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("image {0} not found in the store")]
    ImageNotInStore(String),
    #[error("cannot push {0}: a push needs a tag, not a digest")]
    PushNeedsTag(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("transfer task failed: {0}")]
    Task(String),
}

impl RegistryError {
    /// Whether retrying the same request may succeed (connection trouble, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
            }
            RegistryError::Status { status, .. } | RegistryError::TokenStatus { status, .. } => {
                *status == 429 || (500..600).contains(status) && *status != 501
            }
            _ => false,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
