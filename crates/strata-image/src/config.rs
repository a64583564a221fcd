//! Image configs: oci-spec's `ImageConfiguration` plus the docker extensions it does not model.
//!
//! Docker (and BuildKit, even under OCI media types) stores `Healthcheck`, `OnBuild`, `Shell`
//! and `ArgsEscaped` inside the `config` object. oci-spec drops them, so [`ImageConfig`] keeps
//! them in [`DockerExtensions`] beside the oci-spec value and merges them back into `config` when
//! serializing. Everything oci-spec models stays an oci-spec type.
//!
//! Serialization ([`ImageConfig::to_vec`]) is canonical: object keys sorted at every depth
//! (oci-spec keeps labels, ports and volumes in `HashMap`s), no whitespace, so the same config
//! always has the same digest. Configs read from an image are kept as their original bytes by
//! the caller (a digest is of bytes); only configs strata builds are serialized.

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};
use crate::oci::image::{History, ImageConfiguration};

/// An image config: the OCI fields (as oci-spec models them) and docker's extensions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    pub oci: ImageConfiguration,
    pub docker: DockerExtensions,
}

/// Docker's additions to the `config` object of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DockerExtensions {
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Whether `Cmd`/`Entrypoint` are already escaped for Windows; kept for fidelity.
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub args_escaped: Option<bool>,
}

/// Docker's `HEALTHCHECK` settings; durations are Go `time.Duration` nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_period: Option<i64>,
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_interval: Option<i64>,
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

impl DockerExtensions {
    pub fn is_empty(&self) -> bool {
        self == &DockerExtensions::default()
    }
}

/// Why bytes are not an image config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid image config: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid image config: rootfs.diff_ids[{index}]: {source}")]
    DiffId { index: usize, source: DigestError },
}

impl ImageConfig {
    /// Parses a config (OCI or Docker media type), keeping docker's extensions.
    pub fn from_slice(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        let docker = match value.get("config") {
            Some(config @ serde_json::Value::Object(_)) => {
                DockerExtensions::deserialize(config.clone())?
            }
            _ => DockerExtensions::default(),
        };
        let mut oci = ImageConfiguration::deserialize(value)?;
        // oci-spec reads JSON sets (ports, volumes) through a HashMap: order them, so two parses
        // of the same bytes compare equal.
        if let Some(config) = oci.config().clone() {
            let mut config = config;
            if let Some(mut ports) = config.exposed_ports().clone() {
                ports.sort();
                config.set_exposed_ports(Some(ports));
            }
            if let Some(mut volumes) = config.volumes().clone() {
                volumes.sort();
                config.set_volumes(Some(volumes));
            }
            oci.set_config(Some(config));
        }
        Ok(ImageConfig { oci, docker })
    }

    /// The canonical JSON bytes (sorted keys, no whitespace) with the extensions merged into
    /// `config`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut value = to_value(&self.oci);
        if !self.docker.is_empty()
            && let serde_json::Value::Object(top) = &mut value
        {
            let config = top
                .entry("config")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if config.is_null() {
                *config = serde_json::Value::Object(Default::default());
            }
            if let (serde_json::Value::Object(config), serde_json::Value::Object(ext)) =
                (config, to_value(&self.docker))
            {
                config.extend(ext);
            }
        }
        canonical_json(&value)
    }

    /// The digest of [`to_vec`](Self::to_vec): the image id of a config strata builds.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_vec())
    }

    /// The layer diff_ids, bottom first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, ConfigError> {
        self.oci
            .rootfs()
            .diff_ids()
            .iter()
            .enumerate()
            .map(|(index, d)| {
                d.parse()
                    .map_err(|source| ConfigError::DiffId { index, source })
            })
            .collect()
    }

    /// The history entries (empty when the config has none).
    pub fn history(&self) -> &[History] {
        self.oci.history().as_deref().unwrap_or(&[])
    }

    /// Appends a history entry (and, for a non-empty layer, its diff_id) to the config.
    pub fn push_layer(&mut self, entry: History, diff_id: Option<Digest>) {
        if let Some(diff_id) = diff_id {
            self.oci
                .rootfs_mut()
                .diff_ids_mut()
                .push(diff_id.to_string());
        }
        self.oci
            .history_mut()
            .get_or_insert_with(Vec::new)
            .push(entry);
    }

    /// History rows paired with the layer each created, as `docker history` shows them: rows
    /// marked `empty_layer` have no layer; the others take diff_ids in order. A row left
    /// without a diff_id (an inconsistent config) gets `None`.
    pub fn history_layers(&self) -> Result<Vec<(&History, Option<Digest>)>, ConfigError> {
        let diff_ids = self.diff_ids()?;
        let mut next = diff_ids.into_iter();
        Ok(self
            .history()
            .iter()
            .map(|h| {
                let layer = if h.empty_layer().unwrap_or(false) {
                    None
                } else {
                    next.next()
                };
                (h, layer)
            })
            .collect())
    }
}

/// A history entry as the builder records it.
pub fn history_entry(
    created: Option<chrono::DateTime<chrono::Utc>>,
    created_by: &str,
    comment: Option<&str>,
    empty_layer: bool,
) -> History {
    let mut h = History::default();
    h.set_created(created.map(format_time));
    h.set_created_by(Some(created_by.to_string()));
    h.set_comment(comment.map(str::to_string));
    h.set_empty_layer(empty_layer.then_some(true));
    h
}

/// Parses a config or history `created` time (RFC 3339 with any fraction).
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.to_utc())
}

/// Go's `time.RFC3339Nano` in UTC, as docker writes `created`: trailing zeros of the fraction
/// trimmed, no fraction when whole.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    // Serializing plain data structs (string keys, no custom failing serializers) to a Value
    // cannot fail; fall back to null rather than panic if a future oci-spec changes that.
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Canonical JSON: keys sorted at every depth regardless of how the map was built, no
/// whitespace. Used for every config, manifest and index strata writes.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

/// Serializes any value canonically (see [`canonical_json`]).
pub fn to_canonical_vec<T: Serialize>(value: &T) -> Vec<u8> {
    canonical_json(&to_value(value))
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own encoding (writing to a Vec cannot fail).
        scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests;
