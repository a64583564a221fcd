//! Content digests (`sha256:<64 lowercase hex>`), the identity of every blob strata stores.
//!
//! Only sha256 is produced; other algorithms are parsed and refused with a clear error, so a
//! manifest naming `sha512` blobs fails loudly instead of being mis-verified.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A sha256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Why a string is not a digest strata can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex characters>")]
    Malformed(String),
    #[error("unsupported digest algorithm {algorithm:?} in {digest:?}: only sha256 is supported")]
    UnsupportedAlgorithm { algorithm: String, digest: String },
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// Wraps raw sha256 output.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[(b >> 4) as usize]));
            s.push(char::from(HEX[(b & 15) as usize]));
        }
        s
    }

    /// The first 12 hex characters, as docker shows an IMAGE ID.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Parses 64 hex characters without the algorithm prefix.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(DigestError::Malformed(hex.to_string()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = nibble(pair[0]).ok_or_else(|| DigestError::Malformed(hex.to_string()))?;
            let lo = nibble(pair[1]).ok_or_else(|| DigestError::Malformed(hex.to_string()))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Digest(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::Malformed(s.to_string()));
        };
        if algorithm != "sha256" {
            if algorithm.is_empty()
                || !algorithm
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c))
            {
                return Err(DigestError::Malformed(s.to_string()));
            }
            return Err(DigestError::UnsupportedAlgorithm {
                algorithm: algorithm.to_string(),
                digest: s.to_string(),
            });
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Malformed(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<Digest> for oci_spec::image::Digest {
    fn from(d: Digest) -> Self {
        oci_spec::image::Sha256Digest::from_str(&d.hex())
            .expect("64 lowercase hex characters are a valid sha256 digest")
            .into()
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        d.to_string().parse()
    }
}

/// The chain ids of a layer stack, bottom first (OCI image spec, config.md):
/// `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
///
/// A chain id names a whole stack of layers, so an unpacked snapshot is keyed by it.
pub fn chain_id(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        out.push(chain_id_on(out.last(), diff_id));
    }
    out
}

/// One step of [`chain_id`]: the chain id of `diff_id` stacked on the chain `parent`
/// (`sha256(parent + " " + diff_id)`; the bottom layer's chain id is its diff_id).
pub fn chain_id_on(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => *diff_id,
        Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
    }
}

/// A writer that hashes (and counts) everything written through it, then forwards it.
///
/// Used to digest a stream while it is being stored, so no blob is ever read twice.
#[derive(Debug)]
pub struct Sha256Writer<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Sha256Writer<W> {
    pub fn new(inner: W) -> Self {
        Sha256Writer {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The digest of everything written, the byte count, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (
            Digest(self.hasher.finalize().into()),
            self.written,
            self.inner,
        )
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let d = Digest::of(b"");
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "sha256:",
            "sha256:ABC",
            "e3b0",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85G",
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(DigestError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "sha512:abcd".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
    }

    const CHAIN_1: &str = "sha256:e735a3dad8470831ba9a0854a72b7af2a5c40e906b4389d69c39790bd3ac26eb";
    const CHAIN_2: &str = "sha256:4faefdbf38ce8912f780924a400f74186973604f5b4269b163aca2f6515b32c6";

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        assert!(chain_id(&[]).is_empty());
        // Vector computed independently: printf '%s %s' <chain0> <diff1> | sha256sum, etc.
        let diff_ids: Vec<Digest> = [
            "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:5dc65ad32f67be7348344d8e7c6aafef00ab808e91ca036bca5305ede1aaf847",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let expected: Vec<Digest> = [
            "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4",
            CHAIN_1,
            CHAIN_2,
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(chain_id(&diff_ids), expected);
    }

    #[test]
    fn writer_hashes_what_passes_through() {
        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"hello").unwrap();
        let (d, n, inner) = w.finish();
        assert_eq!(n, 5);
        assert_eq!(inner, b"hello");
        assert_eq!(d, Digest::of(b"hello"));
    }
}
