//! How a user's word for an image (`busybox`, `sha256:…`, a full or short IMAGE ID) becomes an
//! image, following docker: an exact id first, then a tag, then a unique id prefix.
//!
//! [`classify`] is pure; [`Store::resolve_with`] applies it to `index.json`.

use strata_image::Digest;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::images::Image;

/// What a query can mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `sha256:<64 hex>` or 64 hex characters: an IMAGE ID (config digest).
    Id(Digest),
    /// A reference (already normalized), and, when the text is also valid hex, an id prefix to
    /// try when no tag matches.
    Name {
        name: String,
        id_prefix: Option<String>,
    },
    /// Only an id prefix (`sha256:abc`, or hex that is not a valid reference).
    IdPrefix(String),
}

/// Classifies `query`; `normalize` turns a reference into its full form (`None` when invalid).
pub fn classify(query: &str, normalize: impl Fn(&str) -> Option<String>) -> Result<Query> {
    let hex = query.strip_prefix("sha256:");
    let candidate = hex.unwrap_or(query);
    let is_hex = !candidate.is_empty()
        && candidate.len() <= 64
        && candidate
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_hex && candidate.len() == 64 {
        return Digest::from_hex(candidate).map(Query::Id).map_err(|e| {
            StoreError::InvalidReference {
                query: query.to_string(),
                reason: e.to_string(),
            }
        });
    }
    if hex.is_some() {
        return if is_hex {
            Ok(Query::IdPrefix(candidate.to_string()))
        } else {
            Err(StoreError::InvalidReference {
                query: query.to_string(),
                reason: "an image id is sha256: followed by hex characters".to_string(),
            })
        };
    }
    match normalize(query) {
        Some(name) => Ok(Query::Name {
            name,
            id_prefix: is_hex.then(|| candidate.to_string()),
        }),
        None if is_hex => Ok(Query::IdPrefix(candidate.to_string())),
        None => Err(StoreError::InvalidReference {
            query: query.to_string(),
            reason: "not a valid reference or image id".to_string(),
        }),
    }
}

impl Store {
    /// Finds the image `query` names: a reference (normalized as docker does), `sha256:<id>`,
    /// a full IMAGE ID or a unique prefix of one.
    pub fn resolve(&self, query: &str) -> Result<Image> {
        self.resolve_with(query, |s| {
            strata_image::Reference::parse(s)
                .ok()
                .map(|r| r.to_string())
        })
    }

    /// Finds the image `query` names, with `normalize` giving the full form of a reference.
    /// Ambiguous id prefixes are refused, as docker does.
    pub fn resolve_with(
        &self,
        query: &str,
        normalize: impl Fn(&str) -> Option<String>,
    ) -> Result<Image> {
        let classified = classify(query, normalize)?;
        let entries = self.images()?;
        let prefix = match &classified {
            Query::Name { name, id_prefix } => {
                if let Some(e) = entries.iter().find(|e| e.name.as_deref() == Some(name)) {
                    return self.load_image(&e.digest, &entries);
                }
                match id_prefix {
                    Some(p) => p.clone(),
                    None => return Err(StoreError::ImageNotFound(query.to_string())),
                }
            }
            Query::IdPrefix(p) => p.clone(),
            Query::Id(d) => d.hex(),
        };
        let mut matches: Vec<Image> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for e in &entries {
            if !seen.insert(e.digest) {
                continue;
            }
            // An entry whose content is missing or foreign cannot be what the user means.
            let Ok(image) = self.load_image(&e.digest, &entries) else {
                continue;
            };
            if image.config_digest.hex().starts_with(&prefix)
                && !matches
                    .iter()
                    .any(|m| m.config_digest == image.config_digest)
            {
                matches.push(image);
            }
        }
        match matches.len() {
            0 => Err(StoreError::ImageNotFound(query.to_string())),
            1 => Ok(matches.remove(0)),
            _ => Err(StoreError::AmbiguousId {
                query: query.to_string(),
                candidates: matches.into_iter().map(|m| m.config_digest).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(s: &str) -> Option<String> {
        // A stand-in for docker normalization, enough to tell names from hex here.
        if s.is_empty() || s.contains(char::is_uppercase) || s.len() == 64 {
            return None;
        }
        let full = if s.contains('/') {
            s.to_string()
        } else {
            format!("docker.io/library/{s}")
        };
        Some(
            if full.rsplit('/').next().is_some_and(|l| l.contains(':')) {
                full
            } else {
                format!("{full}:latest")
            },
        )
    }

    #[test]
    fn classifies_like_docker() {
        let full = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let id = Digest::from_hex(full).unwrap();
        let cases: &[(&str, Query)] = &[
            (full, Query::Id(id)),
            (&format!("sha256:{full}"), Query::Id(id)),
            ("sha256:e3b0", Query::IdPrefix("e3b0".into())),
            (
                "busybox",
                Query::Name {
                    name: "docker.io/library/busybox:latest".into(),
                    id_prefix: None,
                },
            ),
            (
                "e3b0",
                Query::Name {
                    name: "docker.io/library/e3b0:latest".into(),
                    id_prefix: Some("e3b0".into()),
                },
            ),
            (
                "abc:1",
                Query::Name {
                    name: "docker.io/library/abc:1".into(),
                    id_prefix: None,
                },
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(&classify(query, normalize).unwrap(), expected, "{query}");
        }
        for bad in ["sha256:xyz", "sha256:", "BAD"] {
            assert!(
                matches!(
                    classify(bad, normalize),
                    Err(StoreError::InvalidReference { .. })
                ),
                "{bad}"
            );
        }
    }
}
