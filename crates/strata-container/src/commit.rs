//! `commit`: a container's changes (its overlay upper directory) become one new layer on top of
//! its image, with a history entry, as `docker commit` makes it; and `export`: a container's
//! whole filesystem as one flat tar.
//!
//! The new image's config is the image's, with the container's own Entrypoint/Cmd/Env/
//! WorkingDir/User (docker commits what the container was run with), then `--change`
//! instructions applied. The layer is written uncompressed straight into the store (its digest
//! is its diff_id), as docker keeps committed layers; the manifest is OCI.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use strata_image::manifest::descriptor;
use strata_image::{Digest, LayerCompression, Reference, media};
use strata_layer::WriteOptions;

use crate::containers::{Container, Containers};
use crate::error::{ContainerError, Result};

/// What `commit` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOptions {
    /// `REPOSITORY[:TAG]`; untagged when absent.
    pub reference: Option<String>,
    /// `-c`/`--change` Dockerfile instructions.
    pub changes: Vec<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-a`.
    pub author: Option<String>,
}

/// Commits the container's changes as a new image; returns its IMAGE ID (config digest).
pub fn commit(
    containers: &Containers<'_>,
    container: &Container,
    options: &CommitOptions,
) -> Result<Digest> {
    let reference = options
        .reference
        .as_deref()
        .map(|r| {
            Reference::parse(r).map_err(|source| ContainerError::Reference {
                reference: r.to_owned(),
                source,
            })
        })
        .transpose()?;
    let store = containers.store();
    let image = store.image(&container.config.manifest)?;
    let mut config: Value =
        serde_json::from_slice(&image.config_bytes).map_err(|source| ContainerError::Json {
            what: "image config",
            path: store.blob_path(&image.config_digest),
            source,
        })?;

    // While the container runs, the runtime's mount points (and `-v` destinations) have
    // placeholders in the upper directory; everything written below them went to the mounted
    // filesystems, so they are left out whole (a stopped container has none: the executor
    // removes the placeholders it made).
    let mut mount_points: Vec<PathBuf> = [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    mount_points.extend(container.config.mounts.iter().map(|m| {
        m.destination
            .strip_prefix("/")
            .unwrap_or(&m.destination)
            .to_path_buf()
    }));
    let running = container.is_running();
    let exclude = |path: &Path| running && mount_points.iter().any(|m| m == path);
    let write_options = WriteOptions {
        exclude: Some(&exclude),
        ..WriteOptions::default()
    };
    let mut ingest = store.ingest()?;
    let layer =
        strata_layer::write_overlay_diff(&container.upper_dir(), &mut ingest, &write_options)
            .map_err(|source| ContainerError::WriteLayer {
                id: container.id().to_owned(),
                source,
            })?;
    let (layer_digest, layer_size) = ingest.commit(None)?;

    let now = strata_image::config::format_time(chrono::Utc::now());
    let c = &container.config;
    let top = object(&mut config);
    let run = object(top.entry("config").or_insert_with(|| json!({})));
    run.insert(
        "Entrypoint".into(),
        if c.entrypoint.is_empty() {
            Value::Null
        } else {
            json!(c.entrypoint)
        },
    );
    run.insert("Cmd".into(), json!(c.cmd));
    run.insert("Env".into(), json!(c.env));
    run.insert("WorkingDir".into(), json!(c.working_dir));
    run.insert("User".into(), json!(c.user));
    for change in &options.changes {
        apply_change(run, change)?;
    }
    top.insert("created".into(), json!(now));
    match &options.author {
        Some(author) => top.insert("author".into(), json!(author)),
        None => top.remove("author"),
    };
    let mut entry = Map::new();
    entry.insert("created".into(), json!(now));
    entry.insert("created_by".into(), json!(c.args().join(" ")));
    if let Some(author) = &options.author {
        entry.insert("author".into(), json!(author));
    }
    if let Some(message) = &options.message {
        entry.insert("comment".into(), json!(message));
    }
    array(top.entry("history").or_insert_with(|| json!([]))).push(Value::Object(entry));
    let rootfs = object(
        top.entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []})),
    );
    array(rootfs.entry("diff_ids").or_insert_with(|| json!([])))
        .push(json!(layer.diff_id.to_string()));

    let config_bytes = strata_image::config::canonical_json(&config);
    let mut layers: Vec<_> = image
        .manifest
        .layers()
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if let Ok(compression) = LayerCompression::from_media_type(l.media_type().as_ref()) {
                l.set_media_type(compression.oci_media_type().into());
            }
            l
        })
        .collect();
    layers.push(descriptor(media::OCI_LAYER, layer_digest, layer_size));
    let names: Vec<String> = reference.iter().map(ToString::to_string).collect();
    let image = store.put_image(&config_bytes, layers, &names)?;
    Ok(image.config_digest)
}

/// `export`: the container's filesystem as one tar (its live rootfs, or a temporary mount).
pub fn export(
    containers: &Containers<'_>,
    container: &Container,
    out: &mut dyn Write,
) -> Result<()> {
    containers.with_rootfs(container, |rootfs| {
        strata_layer::write_layer(rootfs, out, &WriteOptions::default())
            .map(drop)
            .map_err(|source| ContainerError::WriteLayer {
                id: container.id().to_owned(),
                source,
            })
    })
}

/// `value` as an object, replacing anything else (a config field of the wrong type).
fn object(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("just made an object"),
    }
}

fn array(value: &mut Value) -> &mut Vec<Value> {
    if !value.is_array() {
        *value = Value::Array(Vec::new());
    }
    match value {
        Value::Array(list) => list,
        _ => unreachable!("just made an array"),
    }
}

/// Applies one `--change` Dockerfile instruction to the `config` object (docker's names).
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    let invalid = |reason: &str| ContainerError::InvalidChange {
        change: change.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = change.trim();
    let (keyword, rest) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    let rest = rest.trim();
    match keyword.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert(
                "Cmd".into(),
                command(rest).ok_or_else(|| invalid("missing command"))?,
            );
        }
        "ENTRYPOINT" => {
            config.insert(
                "Entrypoint".into(),
                command(rest).ok_or_else(|| invalid("missing command"))?,
            );
        }
        "ENV" => {
            let pairs = key_values(rest).ok_or_else(|| invalid("expected KEY=value"))?;
            let env = array(config.entry("Env").or_insert_with(|| json!([])));
            for (key, value) in pairs {
                let prefix = format!("{key}=");
                env.retain(|v| !v.as_str().is_some_and(|s| s.starts_with(&prefix)));
                env.push(json!(format!("{key}={value}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest).ok_or_else(|| invalid("expected key=value"))?;
            let labels = object(config.entry("Labels").or_insert_with(|| json!({})));
            for (key, value) in pairs {
                labels.insert(key, json!(value));
            }
        }
        "EXPOSE" => {
            let ports = object(config.entry("ExposedPorts").or_insert_with(|| json!({})));
            for port in rest.split_whitespace() {
                let port = if port.contains('/') {
                    port.to_owned()
                } else {
                    format!("{port}/tcp")
                };
                ports.insert(port, json!({}));
            }
        }
        "VOLUME" => {
            let list = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(list) => list,
                Err(_) => rest.split_whitespace().map(str::to_owned).collect(),
            };
            let volumes = object(config.entry("Volumes").or_insert_with(|| json!({})));
            for v in list {
                volumes.insert(v, json!({}));
            }
        }
        "USER" | "WORKDIR" | "STOPSIGNAL" => {
            if rest.is_empty() {
                return Err(invalid("missing value"));
            }
            let field = match keyword.to_ascii_uppercase().as_str() {
                "USER" => "User",
                "WORKDIR" => "WorkingDir",
                _ => "StopSignal",
            };
            config.insert(field.into(), json!(unquote(rest)));
        }
        _ => {
            return Err(invalid(
                "only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR and STOPSIGNAL apply to a commit",
            ));
        }
    }
    Ok(())
}

/// Exec form (`["a","b"]`) or shell form (`a b` → `/bin/sh -c "a b"`).
fn command(rest: &str) -> Option<Value> {
    if rest.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(rest)
    {
        return Some(json!(list));
    }
    (!rest.is_empty()).then(|| json!(["/bin/sh", "-c", rest]))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    s.to_owned()
}

/// `K=V K2="v 2"`, or the legacy `K value with spaces` (one pair).
fn key_values(rest: &str) -> Option<Vec<(String, String)>> {
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(key.to_owned(), value.trim().to_owned())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return None;
        }
        let mut value = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    chars.next();
                    if let Some(escaped) = chars.peek() {
                        value.push(*escaped);
                    }
                }
                (_, c) => value.push(c),
            }
            chars.next();
        }
        if quote.is_some() {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker_commit() {
        let mut config = Map::new();
        config.insert("Env".into(), json!(["PATH=/bin", "A=1"]));
        for change in [
            "CMD [\"/serve\", \"--port\", \"80\"]",
            "ENTRYPOINT /bin/init",
            "ENV A=2 B=\"two words\"",
            "ENV LEGACY value with spaces",
            "LABEL org.example.x=y",
            "EXPOSE 80 53/udp",
            "USER nobody",
            "WORKDIR /srv",
            "STOPSIGNAL SIGQUIT",
            "VOLUME [\"/data\"]",
        ] {
            apply_change(&mut config, change).unwrap();
        }
        assert_eq!(
            Value::Object(config),
            json!({
                "Cmd": ["/serve", "--port", "80"],
                "Entrypoint": ["/bin/sh", "-c", "/bin/init"],
                "Env": ["PATH=/bin", "A=2", "B=two words", "LEGACY=value with spaces"],
                "Labels": {"org.example.x": "y"},
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "User": "nobody",
                "WorkingDir": "/srv",
                "StopSignal": "SIGQUIT",
                "Volumes": {"/data": {}},
            })
        );
    }

    #[test]
    fn bad_changes_are_refused() {
        let mut config = Map::new();
        for bad in ["RUN true", "CMD", "ENV A=\"unterminated", "USER"] {
            assert!(apply_change(&mut config, bad).is_err(), "{bad}");
        }
    }
}
