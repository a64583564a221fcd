//! Docker image references (`[registry/]repository[:tag][@digest]`) with docker's exact normalization.
//!
//! The rules are those of the `distribution/reference` grammar as the docker CLI applies them
//! (`ParseNormalizedNamed` followed by `TagNameOnly`): a first path component is a registry only
//! when it is `localhost`, contains `.` or `:`, or contains an uppercase letter; everything else
//! lives on `docker.io`, single-component names under `library/`; `index.docker.io` is spelled
//! `docker.io`; a name without tag or digest gets `:latest`. The parser is hand-written (no regex
//! engine) but follows the grammar production by production, so the tests can quote docker's
//! behaviour case by case.
//!
//! Two deliberate differences from docker, both refusals of inputs docker would accept but which
//! strata cannot serve: a digest algorithm other than sha256 (strata only stores sha256 blobs),
//! and a first component that looks like a host (it has a `.` or `:`) but is not a valid host name,
//! which docker silently turns into a registry-less name.

use std::fmt;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical registry name in references.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's legacy name, rewritten to [`DEFAULT_REGISTRY`].
pub const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
pub const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path (without registry) docker accepts.
pub const REPOSITORY_MAX_LEN: usize = 255;
/// The longest tag docker accepts.
pub const TAG_MAX_LEN: usize = 128;

/// A fully normalized image reference: registry and repository always present, and at least one
/// of tag and digest (the parser adds `latest` when neither is given).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference. Messages follow docker's wording and add what exactly
/// is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("invalid reference format: repository name ({name}) must be lowercase")]
    RepositoryNotLowercase { name: String },
    #[error("invalid reference format: repository name must be lowercase")]
    NameContainsUppercase { reference: String },
    #[error(
        "invalid reference format: repository name must not be more than {REPOSITORY_MAX_LEN} characters (got {length})"
    )]
    NameTooLong { length: usize },
    #[error("invalid reference format: repository name must have at least one component")]
    NameEmpty,
    #[error(
        "invalid reference format: invalid registry host {host:?} (a host name, IPv4 or [IPv6] address, optionally with :port)"
    )]
    InvalidRegistry { host: String },
    #[error(
        "invalid reference format: invalid repository path component {component:?} in {reference:?} (lowercase letters and digits, separated by '.', '_', '__' or '-')"
    )]
    InvalidPathComponent {
        component: String,
        reference: String,
    },
    #[error(
        "invalid reference format: invalid tag {tag:?} (up to {TAG_MAX_LEN} letters, digits, '_', '.' or '-', not starting with '.' or '-')"
    )]
    InvalidTag { tag: String },
    #[error("invalid reference format: invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        digest: String,
        reason: DigestReason,
    },
}

/// What is wrong with the digest part of a reference (go-digest's error classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestReason {
    /// Not `algorithm:hex`, or hex with uppercase or non-hex characters.
    Format,
    /// The hex part has the wrong length for the algorithm.
    Length,
    /// A well-formed digest of an algorithm strata does not support.
    UnsupportedAlgorithm,
}

impl fmt::Display for DigestReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestReason::Format => "invalid checksum digest format",
            DigestReason::Length => "invalid checksum digest length",
            DigestReason::UnsupportedAlgorithm => {
                "unsupported digest algorithm (only sha256 is supported)"
            }
        })
    }
}

impl Reference {
    /// Parses and normalizes a reference as `docker pull`/`docker tag` do, adding `:latest` when
    /// there is neither tag nor digest.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_normalized(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalizes a reference without adding a default tag (a bare repository name
    /// stays tag-less, as `docker images busybox` or `pull --all-tags` need).
    pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::NameEmpty);
        }
        if is_hex_identifier(s) {
            return Err(ReferenceError::HexIdentifier(s.to_string()));
        }
        let (registry, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or("");
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::RepositoryNotLowercase {
                name: remote.to_string(),
            });
        }
        let full = format!("{registry}/{remainder}");
        let parts = parse_full(&full)?;
        Ok(Reference {
            registry: parts.registry.to_string(),
            repository: parts.path.to_string(),
            tag: parts.tag.map(str::to_string),
            digest: parts.digest,
        })
    }

    /// The registry host (with port when given): `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path without registry: `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as docker shows it: `busybox`, `user/app`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.registry != DEFAULT_REGISTRY {
            return self.name();
        }
        match self.repository.strip_prefix(OFFICIAL_REPOSITORY_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// The short form docker prints: `busybox:latest`, `localhost:5000/x:latest`,
    /// `busybox@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The same repository with `tag` (validated), keeping the digest as docker's `WithTag` does.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest`, keeping the tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with only the tag (the digest dropped), or `None` when untagged.
    pub fn without_digest(&self) -> Option<Reference> {
        self.tag.as_ref().map(|_| Reference {
            digest: None,
            ..self.clone()
        })
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is 64 lowercase hex characters: an image id, never a name.
pub fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `s` matches docker's tag grammar `[\w][\w.-]{0,127}`.
pub fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= TAG_MAX_LEN
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// Docker's `splitDockerDomain`: decides whether the first component is a registry.
fn split_docker_domain(name: &str) -> (&str, String) {
    let Some((first, rest)) = name.split_once('/') else {
        return (
            DEFAULT_REGISTRY,
            format!("{OFFICIAL_REPOSITORY_PREFIX}{name}"),
        );
    };
    let (domain, remote) = if first == "localhost" {
        (first, rest)
    } else if first == LEGACY_DEFAULT_REGISTRY {
        (DEFAULT_REGISTRY, rest)
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        (first, rest)
    } else {
        (DEFAULT_REGISTRY, name)
    };
    if domain == DEFAULT_REGISTRY && !remote.contains('/') {
        return (domain, format!("{OFFICIAL_REPOSITORY_PREFIX}{remote}"));
    }
    (domain, remote.to_string())
}

struct Parts<'a> {
    registry: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<Digest>,
}

/// Parses `registry/path[:tag][@digest]` (the registry is always present here, because
/// normalization put it there), reporting the first part that breaks the grammar.
fn parse_full(s: &str) -> Result<Parts<'_>, ReferenceError> {
    let result = parse_full_inner(s);
    match result {
        // Docker reports uppercase anywhere as a lowercase problem when lowercasing would fix it.
        Err(
            ReferenceError::InvalidPathComponent { .. } | ReferenceError::InvalidRegistry { .. },
        ) if s.to_lowercase() != s && matches_grammar(&s.to_lowercase()) => {
            Err(ReferenceError::NameContainsUppercase {
                reference: s.to_string(),
            })
        }
        other => other,
    }
}

/// Whether `s` matches docker's reference grammar, where the registry part is optional (a
/// registry-less match is tried by prefixing a registry that is always valid).
fn matches_grammar(s: &str) -> bool {
    parse_full_inner(s).is_ok() || parse_full_inner(&format!("{DEFAULT_REGISTRY}/{s}")).is_ok()
}

fn parse_full_inner(s: &str) -> Result<Parts<'_>, ReferenceError> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(parse_digest(d)?)),
        None => (s, None),
    };
    // A tag follows the last ':' only when no '/' comes after it; otherwise that ':' is a port.
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(ReferenceError::InvalidTag {
            tag: tag.to_string(),
        });
    }
    let Some((registry, path)) = name.split_once('/') else {
        return Err(ReferenceError::NameEmpty);
    };
    if !is_domain_and_port(registry) {
        return Err(ReferenceError::InvalidRegistry {
            host: registry.to_string(),
        });
    }
    if path.is_empty() {
        return Err(ReferenceError::NameEmpty);
    }
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(ReferenceError::InvalidPathComponent {
                component: component.to_string(),
                reference: s.to_string(),
            });
        }
    }
    if path.len() > REPOSITORY_MAX_LEN {
        return Err(ReferenceError::NameTooLong { length: path.len() });
    }
    Ok(Parts {
        registry,
        path,
        tag,
        digest,
    })
}

/// go-digest's validation classes, restricted to what strata stores (sha256).
fn parse_digest(d: &str) -> Result<Digest, ReferenceError> {
    let fail = |reason| ReferenceError::InvalidDigest {
        digest: d.to_string(),
        reason,
    };
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Err(fail(DigestReason::Format));
    };
    if algorithm.is_empty() || hex.is_empty() {
        return Err(fail(DigestReason::Format));
    }
    if algorithm != "sha256" {
        let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphabetic()
                && b.iter().all(|c| c.is_ascii_alphanumeric())
        });
        let hex_ok = hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit());
        return Err(fail(if algorithm_ok && hex_ok {
            DigestReason::UnsupportedAlgorithm
        } else {
            DigestReason::Format
        }));
    }
    if !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(fail(DigestReason::Format));
    }
    if hex.len() != 64 {
        return Err(fail(DigestReason::Length));
    }
    Digest::from_hex(hex).map_err(|_: DigestError| fail(DigestReason::Format))
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is a dotted name of `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?`
/// components or a bracketed IPv6 address.
fn is_domain_and_port(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return false;
        };
        let addr = &rest[..end];
        if addr.is_empty() || !addr.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
            return false;
        }
        match &rest[end + 1..] {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    if s.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

#[cfg(test)]
mod tests;
