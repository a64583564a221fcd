//! `strata inspect IMAGE...`: docker image inspect's JSON (API 1.44+ shape, without the
//! daemon-only GraphDriver), with `--format` templates.

use std::process::ExitCode;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::commands::Global;
use crate::output;
use crate::store;

/// Display detailed information on one or more images
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Format output using a template such as '{{.Id}}' or '{{json .Config}}'
    #[arg(short, long, value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    docker_version: String,
    author: String,
    config: Config,
    architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
    os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    os_version: String,
    size: u64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
}

/// docker's `container.Config` as image inspect prints it: every field docker always prints,
/// then the optional ones only when the image sets them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config {
    hostname: Value,
    domainname: Value,
    user: Value,
    attach_stdin: Value,
    attach_stdout: Value,
    attach_stderr: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    exposed_ports: Value,
    tty: Value,
    open_stdin: Value,
    stdin_once: Value,
    env: Value,
    cmd: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    healthcheck: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    args_escaped: Value,
    image: Value,
    volumes: Value,
    working_dir: Value,
    entrypoint: Value,
    on_build: Value,
    labels: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    stop_signal: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    shell: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    kind: String,
    layers: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    /// strata does not record when a tag was set; docker prints Go's zero time in that case.
    last_tag_time: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let store = store::open(global)?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for query in &args.images {
        match store::resolve(&store, query).and_then(|image| inspect(&store, &image)) {
            Ok(value) => found.push(value),
            Err(e) => errors.push(e),
        }
    }
    match &args.format {
        None => println!("{}", output::go_json_pretty(&found)),
        Some(format) => {
            for inspect in &found {
                let value = serde_json::to_value(inspect)?;
                println!("{}", output::render_template(format, &value, &|_| None)?);
            }
        }
    }
    // Like docker: print what was found, then fail for what was not.
    if let Some(last) = errors.pop() {
        for e in errors {
            eprintln!("Error: {e:#}");
        }
        return Err(last);
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(store: &strata_store::Store, image: &strata_store::Image) -> anyhow::Result<Inspect> {
    let raw = store::config_json(image)?;
    let sizes = store::layer_sizes(store, image)?;
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let empty = Map::new();
    let c = raw
        .get("config")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let get = |key: &str, default: Value| c.get(key).cloned().unwrap_or(default);
    let opt = |key: &str| c.get(key).cloned().unwrap_or(Value::Null);
    let config = Config {
        hostname: get("Hostname", "".into()),
        domainname: get("Domainname", "".into()),
        user: get("User", "".into()),
        attach_stdin: get("AttachStdin", false.into()),
        attach_stdout: get("AttachStdout", false.into()),
        attach_stderr: get("AttachStderr", false.into()),
        exposed_ports: opt("ExposedPorts"),
        tty: get("Tty", false.into()),
        open_stdin: get("OpenStdin", false.into()),
        stdin_once: get("StdinOnce", false.into()),
        env: opt("Env"),
        cmd: opt("Cmd"),
        healthcheck: opt("Healthcheck"),
        args_escaped: c
            .get("ArgsEscaped")
            .filter(|v| v.as_bool() == Some(true))
            .cloned()
            .unwrap_or(Value::Null),
        image: get("Image", "".into()),
        volumes: opt("Volumes"),
        working_dir: get("WorkingDir", "".into()),
        entrypoint: opt("Entrypoint"),
        on_build: opt("OnBuild"),
        labels: opt("Labels"),
        stop_signal: c
            .get("StopSignal")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .cloned()
            .unwrap_or(Value::Null),
        shell: opt("Shell"),
    };
    let entries = store.images()?;
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    for e in entries {
        let Some(name) = e.name else { continue };
        let same = e.digest == image.manifest_digest
            || store
                .image(&e.digest)
                .is_ok_and(|i| i.config_digest == image.config_digest);
        if !same {
            continue;
        }
        if name.contains('@') {
            repo_digests.push(store::familiar(&name));
        } else {
            repo_tags.push(store::familiar(&name));
        }
    }
    repo_tags.sort();
    repo_tags.dedup();
    repo_digests.sort();
    repo_digests.dedup();
    let inspect = Inspect {
        id: image.config_digest.to_string(),
        repo_tags,
        repo_digests,
        parent: String::new(),
        comment: text(&raw, "comment"),
        created: text(&raw, "created"),
        docker_version: text(&raw, "docker_version"),
        author: text(&raw, "author"),
        config,
        architecture: text(&raw, "architecture"),
        variant: text(&raw, "variant"),
        os: text(&raw, "os"),
        os_version: text(&raw, "os.version"),
        size: sizes.iter().map(|(_, s)| s).sum(),
        root_fs: RootFs {
            kind: raw
                .get("rootfs")
                .map(|r| text(r, "type"))
                .unwrap_or_else(|| "layers".into()),
            layers: sizes.iter().map(|(d, _)| d.to_string()).collect(),
        },
        metadata: Metadata {
            last_tag_time: "0001-01-01T00:00:00Z".to_string(),
        },
    };
    Ok(inspect)
}
