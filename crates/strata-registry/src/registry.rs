//! The [`Registry`] trait: the six distribution-protocol operations pull and push are built
//! from, and its HTTP implementation on [`Client`].
//!
//! Keeping the protocol behind this narrow trait lets pull/push logic (skip present blobs,
//! mount-or-upload, verification) be tested against [`crate::memory::MemoryRegistry`] as well
//! as against real registries.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use strata_image::Digest;

use crate::client::{Client, read_limited, redact, repository_scope};
use crate::error::{RegistryError, Result};
use crate::manifest::{MANIFEST_ACCEPT, MANIFEST_LIMIT, RawManifest, effective_media_type};

/// A repository of a registry, e.g. `docker.io` + `library/busybox`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub registry: String,
    pub repository: String,
}

impl Repo {
    pub fn new(registry: impl Into<String>, repository: impl Into<String>) -> Repo {
        Repo {
            registry: registry.into(),
            repository: repository.into(),
        }
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Blob content as it arrives, chunk by chunk; never buffered whole.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A blob being downloaded: the size the registry announced, if any, and the stream.
pub struct Blob {
    pub announced_size: Option<u64>,
    pub stream: BlobStream,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blob")
            .field("announced_size", &self.announced_size)
            .finish_non_exhaustive()
    }
}

/// The answer to a cross-repository mount request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob into the target repository: nothing to upload.
    Mounted,
    /// The registry declined (202, or an error): upload the blob.
    Declined,
}

/// Bytes transferred so far, shared with whoever reports progress.
pub type ByteCounter = Arc<AtomicU64>;

/// Blobs larger than this are uploaded in chunks (`PATCH` + `Content-Range`).
pub const CHUNKED_UPLOAD_THRESHOLD: u64 = 64 * 1024 * 1024;
/// The size of one chunk of a chunked upload.
pub const UPLOAD_CHUNK: u64 = 32 * 1024 * 1024;

/// The distribution-protocol operations strata needs. Implementations verify nothing about
/// blob content (callers stream it into the store, which verifies); manifests are returned
/// with their digest checked against the reference and `Docker-Content-Digest`.
pub trait Registry: Send + Sync {
    /// `GET /v2/<name>/manifests/<reference>` (a tag or a digest).
    fn manifest(
        &self,
        repo: &Repo,
        reference: &str,
    ) -> impl Future<Output = Result<RawManifest>> + Send;
    /// `GET /v2/<name>/blobs/<digest>`, following redirects.
    fn blob(&self, repo: &Repo, digest: &Digest) -> impl Future<Output = Result<Blob>> + Send;
    /// `HEAD /v2/<name>/blobs/<digest>`: whether the repository has the blob.
    fn blob_exists(
        &self,
        repo: &Repo,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<from>`.
    fn mount_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        from: &str,
    ) -> impl Future<Output = Result<MountOutcome>> + Send;
    /// Uploads the file at `path` (exactly `size` bytes with digest `digest`), adding the
    /// bytes sent to `sent` as they go (for progress).
    fn upload_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        path: &Path,
        sent: ByteCounter,
    ) -> impl Future<Output = Result<()>> + Send;
    /// `PUT /v2/<name>/manifests/<reference>` with the manifest's media type.
    fn put_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        manifest: &RawManifest,
    ) -> impl Future<Output = Result<()>> + Send;
}

fn pull_scope(repo: &Repo) -> Vec<String> {
    vec![repository_scope(&repo.repository, false)]
}

fn push_scope(repo: &Repo) -> Vec<String> {
    vec![repository_scope(&repo.repository, true)]
}

impl Client {
    async fn repo_url(&self, repo: &Repo, rest: &str) -> Result<Url> {
        self.url(&repo.registry, &format!("v2/{}/{rest}", repo.repository))
            .await
    }

    /// Resolves a `Location` header (absolute, or relative to the registry) into a URL.
    async fn location(
        &self,
        repo: &Repo,
        response: &reqwest::Response,
        digest: &Digest,
    ) -> Result<Url> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::MissingLocation {
                repository: repo.to_string(),
                digest: *digest,
                status: response.status().as_u16(),
            })?;
        let base = self.base_url(&repo.registry).await?;
        base.join(location).map_err(|_| RegistryError::InvalidUrl {
            url: location.to_string(),
        })
    }

    async fn start_upload(&self, repo: &Repo, digest: &Digest) -> Result<Url> {
        let url = self.repo_url(repo, "blobs/uploads/").await?;
        let response = self
            .simple(
                &repo.registry,
                &push_scope(repo),
                Method::POST,
                &url,
                &[("content-length", "0")],
            )
            .await?;
        let response = self.check(response, "POST", &url).await?;
        self.location(repo, &response, digest).await
    }

    async fn upload_monolithic(
        &self,
        repo: &Repo,
        digest: &Digest,
        (size, path, sent): (u64, &Path, &ByteCounter),
        location: Url,
    ) -> Result<()> {
        let mut url = location;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let response = self
            .send(&repo.registry, &push_scope(repo), "PUT", &url, |http| {
                Ok(http
                    .put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(file_body(path, (0, size), digest, sent)?))
            })
            .await?;
        self.check(response, "PUT", &url).await.map(|_| ())
    }

    async fn upload_chunked(
        &self,
        repo: &Repo,
        digest: &Digest,
        (size, path, sent): (u64, &Path, &ByteCounter),
        location: Url,
    ) -> Result<()> {
        let mut url = location;
        let mut offset = 0u64;
        while offset < size {
            let length = UPLOAD_CHUNK.min(size - offset);
            let range = format!("{}-{}", offset, offset + length - 1);
            let response = self
                .send(&repo.registry, &push_scope(repo), "PATCH", &url, |http| {
                    Ok(http
                        .patch(url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("content-range", range.as_str())
                        .header(CONTENT_LENGTH, length)
                        .body(file_body(path, (offset, length), digest, sent)?))
                })
                .await?;
            let response = self.check(response, "PATCH", &url).await?;
            url = self.location(repo, &response, digest).await?;
            offset += length;
        }
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let response = self
            .simple(
                &repo.registry,
                &push_scope(repo),
                Method::PUT,
                &url,
                &[("content-length", "0")],
            )
            .await?;
        self.check(response, "PUT", &url).await.map(|_| ())
    }
}

/// A request body streaming `length` bytes of the file at `path` from `offset`, counting
/// them into `sent` (a retried request counts from `offset` again).
fn file_body(
    path: &Path,
    (offset, length): (u64, u64),
    digest: &Digest,
    sent: &ByteCounter,
) -> Result<reqwest::Body> {
    use std::io::{Seek, SeekFrom};
    use tokio::io::AsyncReadExt as _;
    let mut file = std::fs::File::open(path).map_err(|source| RegistryError::BlobIo {
        digest: *digest,
        source,
    })?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|source| RegistryError::BlobIo {
            digest: *digest,
            source,
        })?;
    let reader = tokio::fs::File::from_std(file).take(length);
    sent.store(offset, Ordering::Relaxed);
    let sent = Arc::clone(sent);
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
    Ok(reqwest::Body::wrap_stream(stream))
}

impl Registry for Client {
    async fn manifest(&self, repo: &Repo, reference: &str) -> Result<RawManifest> {
        let url = self
            .repo_url(repo, &format!("manifests/{reference}"))
            .await?;
        let shown = format!("{repo}:{reference}");
        let response = self
            .simple(
                &repo.registry,
                &pull_scope(repo),
                Method::GET,
                &url,
                &[("accept", MANIFEST_ACCEPT)],
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: repo.registry.clone(),
                reference: shown,
                errors: crate::error::parse_error_body(
                    &read_limited(response, 64 * 1024, url.as_ref())
                        .await
                        .unwrap_or_default(),
                ),
            });
        }
        let response = self.check(response, "GET", &url).await?;
        if response
            .content_length()
            .is_some_and(|len| len > MANIFEST_LIMIT)
        {
            return Err(RegistryError::ManifestTooLarge {
                reference: shown,
                limit: MANIFEST_LIMIT,
            });
        }
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_limited(response, MANIFEST_LIMIT, &shown).await?;
        let digest = Digest::of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>()
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                expected,
                found: digest,
            });
        }
        if let Some(header) = header_digest {
            // Only sha256 headers can be compared; others are ignored as containerd does.
            if header.starts_with("sha256:") && header.parse::<Digest>().ok() != Some(digest) {
                return Err(RegistryError::HeaderDigestMismatch {
                    reference: shown,
                    header,
                    found: digest,
                });
            }
        }
        let media_type = effective_media_type(content_type.as_deref(), &bytes);
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    async fn blob(&self, repo: &Repo, digest: &Digest) -> Result<Blob> {
        let url = self.repo_url(repo, &format!("blobs/{digest}")).await?;
        let response = self
            .simple(&repo.registry, &pull_scope(repo), Method::GET, &url, &[])
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound {
                registry: repo.registry.clone(),
                reference: format!("{repo}@{digest}"),
                errors: vec![],
            });
        }
        let response = self.check(response, "GET", &url).await?;
        let announced_size = response.content_length();
        let shown = redact(&url);
        let stream = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|source| RegistryError::Http {
                method: "GET",
                url: shown.clone(),
                source: source.without_url(),
            })
        });
        Ok(Blob {
            announced_size,
            stream: Box::pin(stream),
        })
    }

    async fn blob_exists(&self, repo: &Repo, digest: &Digest) -> Result<bool> {
        let url = self.repo_url(repo, &format!("blobs/{digest}")).await?;
        // HEAD needs only pull access, but asking for push up front saves a second token
        // request when the blob is then uploaded.
        let response = self
            .simple(&repo.registry, &push_scope(repo), Method::HEAD, &url, &[])
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            _ => self.check(response, "HEAD", &url).await.map(|_| false),
        }
    }

    async fn mount_blob(&self, repo: &Repo, digest: &Digest, from: &str) -> Result<MountOutcome> {
        let mut url = self.repo_url(repo, "blobs/uploads/").await?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        // One token covering both repositories, as the registry needs read access to `from`.
        let scopes = vec![
            repository_scope(&repo.repository, true),
            repository_scope(from, false),
        ];
        let response = match self
            .simple(
                &repo.registry,
                &scopes,
                Method::POST,
                &url,
                &[("content-length", "0")],
            )
            .await
        {
            Ok(response) => response,
            Err(RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }) => {
                return Ok(MountOutcome::Declined);
            }
            Err(e) => return Err(e),
        };
        match response.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => {
                // The registry opened an upload session instead; cancel it so it does not linger.
                if let Ok(location) = self.location(repo, &response, digest).await {
                    let _ = self
                        .simple(
                            &repo.registry,
                            &push_scope(repo),
                            Method::DELETE,
                            &location,
                            &[],
                        )
                        .await;
                }
                Ok(MountOutcome::Declined)
            }
            status => {
                tracing::debug!(%repo, %digest, from, status = status.as_u16(), "mount declined");
                Ok(MountOutcome::Declined)
            }
        }
    }

    async fn upload_blob(
        &self,
        repo: &Repo,
        digest: &Digest,
        size: u64,
        path: &Path,
        sent: ByteCounter,
    ) -> Result<()> {
        let location = self.start_upload(repo, digest).await?;
        if size > CHUNKED_UPLOAD_THRESHOLD {
            self.upload_chunked(repo, digest, (size, path, &sent), location)
                .await
        } else {
            self.upload_monolithic(repo, digest, (size, path, &sent), location)
                .await
        }
    }

    async fn put_manifest(
        &self,
        repo: &Repo,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<()> {
        let url = self
            .repo_url(repo, &format!("manifests/{reference}"))
            .await?;
        let response = self
            .send(&repo.registry, &push_scope(repo), "PUT", &url, |http| {
                Ok(http
                    .put(url.clone())
                    .header(CONTENT_TYPE, manifest.media_type.as_str())
                    .body(manifest.bytes.clone()))
            })
            .await?;
        let response = self.check(response, "PUT", &url).await?;
        if let Some(header) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && header.starts_with("sha256:")
            && header.parse::<Digest>().ok() != Some(manifest.digest)
        {
            return Err(RegistryError::HeaderDigestMismatch {
                reference: format!("{repo}:{reference}"),
                header: header.to_string(),
                found: manifest.digest,
            });
        }
        Ok(())
    }
}
