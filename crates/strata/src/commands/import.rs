//! `strata import FILE|- [REPOSITORY[:TAG]]`: a root filesystem tarball (plain, gzip or zstd)
//! becomes a one-layer image, as `docker import` makes it: history "Imported from -" (or the
//! `-m` message), created now, and `--change` applying Dockerfile-style config instructions.
//!
//! The layer is stored uncompressed, as docker keeps imported layers, so its digest is its
//! diff_id. It is checked (no entry may escape the root) while it streams into the store; a
//! bad tarball leaves nothing behind.

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use strata_image::manifest::descriptor;
use strata_image::{Reference, media};
use strata_store::{Ingest, LayerInfo};

use crate::commands::Global;
use crate::store;

/// Import the contents from a tarball to create a filesystem image
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tarball, or - for STDIN
    #[arg(value_name = "file|-")]
    pub source: String,

    /// Name for the image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,

    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER,
    /// VOLUME, WORKDIR, STOPSIGNAL)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,

    /// Set commit message for imported image
    #[arg(short, long, value_name = "MESSAGE")]
    pub message: Option<String>,

    /// Set platform (only this host's platform is supported)
    #[arg(long)]
    pub platform: Option<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let reference = match &args.reference {
        Some(r) => Some(Reference::parse(r).with_context(|| format!("invalid reference {r:?}"))?),
        None => None,
    };
    let (os, arch) = strata_image::manifest::host_platform();
    if let Some(p) = &args.platform
        && p != &format!("{os}/{arch}")
    {
        bail!("unsupported platform {p:?}: strata imports for this host's platform, {os}/{arch}");
    }
    let mut image_config = Map::new();
    for change in &args.changes {
        apply_change(&mut image_config, change)
            .with_context(|| format!("invalid --change {change:?}"))?;
    }
    let reader: Box<dyn Read> = if args.source == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.source).with_context(|| format!("cannot open {}", args.source))?)
    };

    let store = store::open(global)?;
    // One pass: decompress, copy into the ingest, and check/measure the tar on the way.
    let plain = strata_layer::decompressed(reader)
        .with_context(|| format!("cannot read {}", args.source))?;
    let mut tee = TeeReader {
        inner: plain,
        ingest: store.ingest()?,
    };
    let scan = store::scan_layer(&mut tee, &args.source)?;
    let (layer_digest, layer_size) = tee.ingest.commit(None)?;
    debug_assert_eq!(layer_digest, scan.diff_id);
    store.set_layer_info(&LayerInfo {
        diff_id: scan.diff_id,
        size: scan.size,
    })?;

    let created = strata_image::config::format_time(chrono::Utc::now());
    let comment = args
        .message
        .clone()
        .unwrap_or_else(|| "Imported from -".to_string());
    let config = json!({
        "architecture": arch,
        "comment": comment,
        "config": image_config,
        "created": created,
        "history": [{"created": created, "comment": comment}],
        "os": os,
        "rootfs": {"type": "layers", "diff_ids": [scan.diff_id.to_string()]},
    });
    let config_bytes = strata_image::config::canonical_json(&config);
    let layer = descriptor(media::OCI_LAYER, layer_digest, layer_size);
    let names: Vec<String> = reference.iter().map(ToString::to_string).collect();
    let config_digest = store
        .put_image(&config_bytes, vec![layer], &names)?
        .config_digest;
    println!("{config_digest}");
    Ok(ExitCode::SUCCESS)
}

/// Copies everything read into the ingest.
struct TeeReader<'s, R> {
    inner: R,
    ingest: Ingest<'s>,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ingest.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Applies one `--change` instruction to the `config` object (docker's field names).
fn apply_change(config: &mut Map<String, Value>, change: &str) -> anyhow::Result<()> {
    let change = change.trim();
    let (keyword, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    match keyword.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), command(rest)?);
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), command(rest)?);
        }
        "ENV" => {
            let pairs = key_values(rest, true)?;
            let env = config
                .entry("Env")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(list) = env else {
                bail!("Env is not a list")
            };
            for (key, value) in pairs {
                let prefix = format!("{key}=");
                list.retain(|v| !v.as_str().is_some_and(|s| s.starts_with(&prefix)));
                list.push(Value::String(format!("{key}={value}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest, false)?;
            let labels = config
                .entry("Labels")
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = labels else {
                bail!("Labels is not a map")
            };
            for (key, value) in pairs {
                map.insert(key, Value::String(value));
            }
        }
        "EXPOSE" => {
            let ports = config
                .entry("ExposedPorts")
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = ports else {
                bail!("ExposedPorts is not a map")
            };
            for port in words(rest)? {
                let port = if port.contains('/') {
                    port
                } else {
                    format!("{port}/tcp")
                };
                map.insert(port, json!({}));
            }
        }
        "VOLUME" => {
            let list = if rest.starts_with('[') {
                json_list(rest)?
            } else {
                words(rest)?
            };
            let volumes = config
                .entry("Volumes")
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = volumes else {
                bail!("Volumes is not a map")
            };
            for v in list {
                map.insert(v, json!({}));
            }
        }
        "USER" => {
            config.insert("User".into(), Value::String(single(rest)?));
        }
        "WORKDIR" => {
            config.insert("WorkingDir".into(), Value::String(single(rest)?));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), Value::String(single(rest)?));
        }
        other => bail!(
            "{other} is not supported by import: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR or STOPSIGNAL"
        ),
    }
    Ok(())
}

/// Exec form (`["a","b"]`) or shell form (`a b` → `/bin/sh -c "a b"`).
fn command(rest: &str) -> anyhow::Result<Value> {
    if rest.starts_with('[')
        && let Ok(list) = json_list(rest)
    {
        return Ok(json!(list));
    }
    if rest.is_empty() {
        bail!("missing command");
    }
    Ok(json!(["/bin/sh", "-c", rest]))
}

fn json_list(rest: &str) -> anyhow::Result<Vec<String>> {
    serde_json::from_str(rest).context("not a JSON array of strings")
}

fn single(rest: &str) -> anyhow::Result<String> {
    let mut w = words(rest)?;
    if w.len() != 1 {
        bail!("expects exactly one argument");
    }
    Ok(w.remove(0))
}

/// `k=v k2="v 2"`, or for ENV the legacy `KEY value with spaces`.
fn key_values(rest: &str, legacy_allowed: bool) -> anyhow::Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if legacy_allowed && !first.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let value = value.trim();
        if key.is_empty() || key.contains(['"', '\'']) {
            bail!("invalid variable name {key:?}");
        }
        if value.is_empty() {
            bail!("{key} has no value: use KEY=VALUE or KEY VALUE");
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    let mut out = Vec::new();
    for word in words(rest)? {
        let Some((key, value)) = word.split_once('=') else {
            bail!("{word:?} is not KEY=VALUE");
        };
        if key.is_empty() {
            bail!("{word:?} has an empty key");
        }
        out.push((key.to_string(), value.to_string()));
    }
    if out.is_empty() {
        bail!("missing KEY=VALUE");
    }
    Ok(out)
}

/// Splits on whitespace, honoring single and double quotes and backslash escapes.
fn words(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        bail!("unterminated quote");
    }
    if in_word {
        out.push(current);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_docker_config_fields() {
        let cases: &[(&[&str], Value)] = &[
            (&["CMD [\"sh\"]"], json!({"Cmd": ["sh"]})),
            (
                &["CMD echo hi"],
                json!({"Cmd": ["/bin/sh", "-c", "echo hi"]}),
            ),
            (
                &["ENTRYPOINT [\"/init\", \"-v\"]"],
                json!({"Entrypoint": ["/init", "-v"]}),
            ),
            (
                &["ENV A=1 B=\"two words\"", "ENV A=3"],
                json!({"Env": ["B=two words", "A=3"]}),
            ),
            (
                &["ENV LEGACY some value"],
                json!({"Env": ["LEGACY=some value"]}),
            ),
            (
                &["EXPOSE 80 53/udp"],
                json!({"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}),
            ),
            (
                &["LABEL a=b \"c d\"=e"],
                json!({"Labels": {"a": "b", "c d": "e"}}),
            ),
            (
                &["USER nobody", "WORKDIR /srv", "STOPSIGNAL SIGINT"],
                json!({"User": "nobody", "WorkingDir": "/srv", "StopSignal": "SIGINT"}),
            ),
            (
                &["VOLUME /data /logs"],
                json!({"Volumes": {"/data": {}, "/logs": {}}}),
            ),
            (&["volume [\"/v\"]"], json!({"Volumes": {"/v": {}}})),
        ];
        for (changes, expected) in cases {
            let mut config = Map::new();
            for c in *changes {
                apply_change(&mut config, c).unwrap();
            }
            assert_eq!(&Value::Object(config), expected, "{changes:?}");
        }
    }

    #[test]
    fn bad_changes_are_refused() {
        for bad in [
            "RUN make",
            "USER",
            "USER a b",
            "LABEL novalue",
            "ENV \"x",
            "CMD",
        ] {
            assert!(apply_change(&mut Map::new(), bad).is_err(), "{bad}");
        }
    }
}
