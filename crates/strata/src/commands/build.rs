//! `strata build [OPTIONS] PATH`: build an image from a Dockerfile, with docker's flags.
//!
//! The engine (strata-build) does the work and emits progress events; this module turns flags
//! into build options and renders the events: `--progress=plain` prints BuildKit's plain log
//! (`#N [stage 2/5] RUN ...`, every output line, `#N DONE 0.3s` / `#N CACHED`), `tty` a live
//! view with one line per step and its running timer, `quiet` nothing but the image id.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use strata_build::progress::{Event, ProgressSink};
use strata_build::solve::{self, BuildOptions, Secret};
use strata_dockerfile::BuildArgs;
use strata_runtime::{Executor, Network, RuncExecutor, Snapshotter};

use crate::commands::Global;
use crate::store;

mod view;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The build context directory
    #[arg(value_name = "PATH")]
    pub context: PathBuf,

    /// Name and optionally a tag in the "name:tag" format (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,

    /// Name of the Dockerfile (default: PATH/Dockerfile; "-" reads it from stdin)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// Set a build-time variable (the value is taken from the environment when omitted)
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,

    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,

    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,

    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pub pull: bool,

    /// Set metadata for an image (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Networking mode for RUN instructions: host (default) or none
    #[arg(long, default_value = "host", value_parser = ["host", "none", "default"])]
    pub network: String,

    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,

    /// Suppress the build output and print the image ID on success
    #[arg(short, long)]
    pub quiet: bool,

    /// Type of progress output: auto, tty, plain or quiet
    #[arg(long, default_value = "auto", value_parser = ["auto", "tty", "plain", "quiet"])]
    pub progress: String,

    /// Secret to expose to RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub secrets: Vec<String>,

    /// Target platform (only the host's linux/amd64 is supported)
    #[arg(long)]
    pub platform: Option<String>,

    /// Number of stages built in parallel (default: number of cores)
    #[arg(long)]
    pub jobs: Option<usize>,

    /// Run the build checks only and report the findings
    #[arg(long)]
    pub check: bool,

    /// Also write the result: type=docker|oci,dest=FILE (image archive), type=tar,dest=FILE
    /// or type=local,dest=DIR (the root filesystem), type=registry[,name=REF] (push; gzip
    /// layers at compression-level, default 6)
    #[arg(
        short = 'o',
        long = "output",
        value_name = "type=TYPE,dest=PATH[,compression=gzip|zstd][,compression-level=N]"
    )]
    pub output: Option<String>,

    /// Shorthand for --output=type=registry: push the tags after the build
    #[arg(long)]
    pub push: bool,

    /// OCI runtime for RUN: runc, crun, or auto (crun when a probe run works on this host,
    /// about 3x cheaper per step; runc otherwise)
    #[arg(long, default_value = "auto", value_parser = ["runc", "crun", "auto"])]
    pub runtime: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(platform) = &args.platform
        && platform != "linux/amd64"
        && platform != "linux/x86_64"
    {
        bail!("platform {platform:?} is not supported: strata builds for the host's linux/amd64");
    }
    if args.pull {
        bail!(
            "--pull is not supported yet\nhint: strata pull the base images, then build without --pull"
        );
    }
    let pushed_output = args
        .output
        .as_deref()
        .map(RegistryOutput::parse)
        .transpose()?
        .flatten();
    let output = match pushed_output {
        Some(_) => None,
        None => args
            .output
            .as_deref()
            .map(solve::export::Output::parse)
            .transpose()?,
    };
    let registry = pushed_output.or_else(|| args.push.then(RegistryOutput::default));
    let context = args.context.clone();
    if !context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            context.display().to_string()
        );
    }
    let read_started = std::time::Instant::now();
    let (dockerfile_text, dockerfile_name, dockerfile_path) = read_dockerfile(&args)?;
    let read_time = read_started.elapsed();
    let build_args = parse_build_args(&args.build_args);

    if args.check {
        return check(&dockerfile_text, &dockerfile_name, &build_args);
    }

    let store = Arc::new(store::open(global)?);
    let mut tags = Vec::new();
    for tag in &args.tags {
        match store::normalize(tag) {
            Some(full) => tags.push(full),
            None => bail!("invalid tag {tag:?}: invalid reference format"),
        }
    }
    let mut labels = Vec::new();
    for label in &args.labels {
        let (k, v) = label.split_once('=').unwrap_or((label.as_str(), ""));
        labels.push((k.to_string(), v.to_string()));
    }
    let secrets = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let source_date_epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .map(str::to_string)
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .map(|v| {
            v.parse::<i64>()
                .with_context(|| format!("invalid SOURCE_DATE_EPOCH {v:?}"))
        })
        .transpose()?;
    let context_abs = std::fs::canonicalize(&context)
        .with_context(|| format!("cannot read {}", context.display()))?;
    let stat_cache = store
        .root()
        .join("statcache")
        .join(strata_image::Digest::of(context_abs.to_string_lossy().as_bytes()).hex());

    let mut options = BuildOptions::new(context_abs, dockerfile_text);
    options.dockerfile_name = dockerfile_name;
    options.dockerfile_path = dockerfile_path;
    options.build_args = build_args;
    options.target = args.target.clone();
    options.tags = tags.clone();
    options.labels = labels;
    options.no_cache = args.no_cache;
    options.network = if args.network == "none" {
        Network::None
    } else {
        Network::Host
    };
    options.jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    options.source_date_epoch = source_date_epoch;
    options.secrets = secrets;
    options.stat_cache = Some(stat_cache);
    options.pull = args.pull;
    options.fetcher = Some(Arc::new(RegistryFetcher {
        client: std::sync::OnceLock::new(),
        store: store.clone(),
    }));

    let mode = if args.quiet {
        Mode::Quiet
    } else {
        match args.progress.as_str() {
            "plain" => Mode::Plain,
            "quiet" => Mode::Quiet,
            "tty" => Mode::Tty,
            _ if std::io::stderr().is_terminal() => Mode::Tty,
            _ => Mode::Plain,
        }
    };
    let renderer = Renderer::new(mode);
    // BuildKit's first vertex: the Dockerfile, which the binary read; the engine's vertices
    // are numbered after it.
    let vertex = renderer.next_vertex();
    renderer.event(Event::Started {
        vertex,
        name: format!(
            "[internal] load build definition from {}",
            options.dockerfile_name
        ),
    });
    renderer.event(Event::Status {
        vertex,
        name: format!(
            "transferring dockerfile: {}",
            crate::output::size4(options.dockerfile.len() as u64)
        ),
        elapsed: None,
    });
    renderer.event(Event::Done {
        vertex,
        elapsed: read_time,
    });
    let offset = vertex;
    let sink_renderer = renderer.clone();
    let sink: ProgressSink = Arc::new(move |event| sink_renderer.event(renumbered(event, offset)));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let state = store.root().join("state");
    let result = runtime.block_on(async {
        let executor: Arc<dyn Executor> = Arc::new(
            RuncExecutor::from_name(&args.runtime, &state.join("runtime"))
                .await
                .context("cannot set up the OCI runtime")?,
        );
        let snapshotter = snapshotter(&state.join("snapshotter"))?;
        solve::build(store.clone(), executor, snapshotter, options, sink)
            .await
            .map_err(anyhow::Error::from)
    });
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            renderer.finish();
            eprint!("{}", renderer.failure_text(&error_chain(&e), offset));
            return Ok(ExitCode::from(1));
        }
    };
    let id = outcome.config_digest.to_string();
    let exported = export_vertices(
        &renderer,
        &store,
        &outcome,
        &tags,
        output.as_ref(),
        registry.as_ref().map(|r| (r, &runtime)),
    );
    renderer.finish();
    exported?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match mode {
        Mode::Quiet => println!("{id}"),
        Mode::Plain => {}
        Mode::Tty => {
            let size = image_size(&store, &outcome.manifest_digest)
                .map(crate::output::size)
                .unwrap_or_else(|e| format!("unknown ({e:#})"));
            let tags: Vec<String> = outcome.tags.iter().map(|t| short_name(t)).collect();
            eprint!("{}", view::summary(&id, &tags, &size));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// BuildKit's last steps, shown as vertices after the engine's: `exporting to image` (the
/// image is already in the store: writing its config and naming it are what is left to see),
/// then, with `--output`, the export itself with its timings.
fn export_vertices(
    renderer: &Renderer,
    store: &Arc<strata_store::Store>,
    outcome: &solve::BuildOutcome,
    tags: &[String],
    output: Option<&solve::export::Output>,
    registry: Option<(&RegistryOutput, &tokio::runtime::Runtime)>,
) -> anyhow::Result<()> {
    let vertex = renderer.next_vertex();
    let started = std::time::Instant::now();
    renderer.event(Event::Started {
        vertex,
        name: "exporting to image".into(),
    });
    renderer.event(Event::Status {
        vertex,
        name: "exporting layers".into(),
        elapsed: None,
    });
    renderer.event(Event::Status {
        vertex,
        name: format!("writing image {}", outcome.config_digest),
        elapsed: None,
    });
    for tag in &outcome.tags {
        renderer.event(Event::Status {
            vertex,
            name: format!("naming to {tag}"),
            elapsed: None,
        });
    }
    if let Some((registry, runtime)) = registry
        && let Err(e) = push_tags(renderer, vertex, store, outcome, registry, runtime)
    {
        renderer.event(Event::Failed {
            vertex,
            elapsed: started.elapsed(),
            message: format!("{e:#}"),
        });
        return Err(e);
    }
    renderer.event(Event::Done {
        vertex,
        elapsed: started.elapsed(),
    });
    let Some(output) = output else {
        return Ok(());
    };
    let vertex = renderer.next_vertex();
    let started = std::time::Instant::now();
    renderer.event(Event::Started {
        vertex,
        name: solve::export::vertex_name(output).into(),
    });
    let refs: Vec<strata_image::Reference> = tags
        .iter()
        .filter_map(|t| strata_image::Reference::parse(t).ok())
        .collect();
    match solve::export::export(store, &outcome.manifest_digest, &refs, output) {
        Ok(report) => {
            for (name, elapsed) in report.statuses {
                renderer.event(Event::Status {
                    vertex,
                    name,
                    elapsed,
                });
            }
            renderer.event(Event::Done {
                vertex,
                elapsed: started.elapsed(),
            });
            Ok(())
        }
        Err(e) => {
            renderer.event(Event::Failed {
                vertex,
                elapsed: started.elapsed(),
                message: e.to_string(),
            });
            Err(anyhow::Error::from(e).context("cannot write --output"))
        }
    }
}

/// `--push` / `-o type=registry[,name=REF][,compression=gzip][,compression-level=N]`, as
/// buildx spells it: push the image after the build (to `name`, else to every `-t` tag), its
/// uncompressed layers gzip-compressed at `compression-level` (the store remembers each
/// compressed variant, so `strata push` or the next build's push does not compress again).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegistryOutput {
    /// Where to push; empty: the `-t` tags.
    name: Option<String>,
    /// gzip level.
    level: u32,
}

impl Default for RegistryOutput {
    fn default() -> Self {
        RegistryOutput {
            name: None,
            level: strata_registry::DEFAULT_COMPRESSION_LEVEL,
        }
    }
}

impl RegistryOutput {
    /// `Some` for `type=registry` (and buildx's `type=image,push=true`), `None` for the
    /// outputs [`solve::export::Output`] handles.
    fn parse(spec: &str) -> anyhow::Result<Option<RegistryOutput>> {
        let pairs: Vec<(&str, Option<&str>)> = spec
            .split(',')
            .map(|part| match part.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (part, None),
            })
            .collect();
        let value = |key: &str| pairs.iter().find(|(k, _)| *k == key).and_then(|(_, v)| *v);
        let registry = match value("type") {
            Some("registry") => true,
            Some("image") => value("push") == Some("true"),
            _ => false,
        };
        if !registry {
            return Ok(None);
        }
        let mut out = RegistryOutput::default();
        for (key, v) in &pairs {
            match (*key, *v) {
                ("type" | "push", _) => {}
                ("name", Some(name)) => out.name = Some(name.to_string()),
                ("compression", Some("gzip")) => {}
                ("compression", Some(other)) => bail!(
                    "invalid --output {spec:?}: strata pushes layers as gzip (compression={other} \
                     is for type=oci archives)"
                ),
                ("compression-level", Some(level)) => {
                    out.level = level.parse().ok().filter(|l| *l <= 9).with_context(|| {
                        format!(
                            "invalid --output {spec:?}: compression-level {level:?} is not in 0..=9"
                        )
                    })?;
                }
                _ => bail!("invalid --output {spec:?}: unknown key {key:?} for type=registry"),
            }
        }
        Ok(Some(out))
    }
}

/// Pushes the built image as `registry` says, reporting BuildKit's statuses (`pushing layers`,
/// `pushing manifest for NAME@DIGEST`) on the export vertex.
fn push_tags(
    renderer: &Renderer,
    vertex: usize,
    store: &Arc<strata_store::Store>,
    outcome: &solve::BuildOutcome,
    registry: &RegistryOutput,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let names: Vec<String> = match &registry.name {
        Some(name) => vec![name.clone()],
        None => outcome.tags.clone(),
    };
    if names.is_empty() {
        bail!("nothing to push: name the image with -t NAME:TAG or -o type=registry,name=NAME:TAG");
    }
    let image = store.image(&outcome.manifest_digest)?;
    let client = strata_registry::Client::new(strata_registry::ClientOptions::from_environment()?)?;
    let options = strata_registry::PushOptions {
        compression_level: registry.level,
        ..strata_registry::PushOptions::default()
    };
    for name in names {
        let target = strata_image::Reference::parse(&name)
            .with_context(|| format!("invalid reference format {name:?}"))?;
        let started = std::time::Instant::now();
        let pushed = runtime
            .block_on(strata_registry::push(
                &client,
                store,
                &image,
                &target,
                &options,
                &strata_registry::events::ignore,
            ))
            .with_context(|| format!("cannot push {target}"))?;
        renderer.event(Event::Status {
            vertex,
            name: "pushing layers".into(),
            elapsed: Some(started.elapsed()),
        });
        renderer.event(Event::Status {
            vertex,
            name: format!("pushing manifest for {target}@{}", pushed.digest),
            elapsed: None,
        });
    }
    Ok(())
}

/// `docker.io/library/app:1` → `app:1`, as `docker images` shows names.
fn short_name(full: &str) -> String {
    strata_image::Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// The image's size as `strata images` shows it: the sum of its layers' unpacked sizes. A
/// layer the build just wrote is measured from its tar headers only (seeking over the file
/// data, so a large layer costs a few reads, not a pass over its bytes) and remembered.
fn image_size(
    store: &strata_store::Store,
    manifest_digest: &strata_image::Digest,
) -> anyhow::Result<u64> {
    let image = store.image(manifest_digest)?;
    let diff_ids = image.config.diff_ids()?;
    let mut total = 0u64;
    let mut measure_by_scan = false;
    for (layer, diff_id) in image.manifest.layers().iter().zip(&diff_ids) {
        if let Some(info) = store.layer_info(diff_id)? {
            total += info.size;
            continue;
        }
        let blob = strata_image::Digest::try_from(layer.digest())?;
        if blob != *diff_id {
            // A compressed base layer: measured (and checked) by the full scan below.
            measure_by_scan = true;
            break;
        }
        let path = store.blob_path(&blob);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let size = uncompressed_layer_size(file)
            .with_context(|| format!("layer {blob}: truncated or corrupt tar"))?;
        store.set_layer_info(&strata_store::LayerInfo {
            diff_id: *diff_id,
            size,
        })?;
        total += size;
    }
    if measure_by_scan {
        total = store::layer_sizes(store, &image)?
            .iter()
            .map(|(_, size)| size)
            .sum();
    }
    Ok(total)
}

/// docker's size of an uncompressed layer tar: regular file sizes plus symlink target lengths
/// (see `store::scan_layer`, which also hashes; the build has just computed the digest).
fn uncompressed_layer_size(file: std::fs::File) -> std::io::Result<u64> {
    let mut archive = tar::Archive::new(file);
    let mut size = 0u64;
    for entry in archive.entries_with_seek()? {
        size += store::docker_entry_size(&entry?);
    }
    Ok(size)
}

/// Pulls missing base images (and all of them with `--pull`) through the registry client.
#[derive(Debug)]
struct RegistryFetcher {
    /// Made on first use: most builds find their base images in the store and never need it.
    client: std::sync::OnceLock<strata_registry::Client>,
    store: Arc<strata_store::Store>,
}

impl solve::ImageFetcher for RegistryFetcher {
    fn fetch<'a>(&'a self, reference: &'a str) -> solve::FetchFuture<'a> {
        Box::pin(async move {
            let parsed = strata_image::Reference::parse(reference)?;
            let client = match self.client.get() {
                Some(client) => client,
                None => {
                    let made = strata_registry::Client::new(
                        strata_registry::ClientOptions::from_environment()?,
                    )?;
                    self.client.get_or_init(|| made)
                }
            };
            strata_registry::pull(
                client,
                &self.store,
                &parsed,
                &strata_registry::PullOptions::default(),
                &strata_registry::events::ignore,
            )
            .await?;
            Ok(())
        })
    }
}

/// The overlay snapshotter when overlayfs works under the store (the probe mount is made
/// once per kernel and remembered: unmounting costs tens of milliseconds), else copying.
fn snapshotter(dir: &std::path::Path) -> anyhow::Result<Arc<dyn Snapshotter>> {
    let marker = dir.join("overlay-supported");
    let kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(kernel.as_str()) {
        return Ok(Arc::new(
            strata_runtime::OverlaySnapshotter::new(dir).context("cannot set up snapshots")?,
        ));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let detected = strata_runtime::snapshot::detect(dir).context("cannot set up snapshots")?;
    if detected.name() == "overlay" {
        let _ = std::fs::write(&marker, &kernel);
    }
    Ok(Arc::from(detected))
}

fn read_dockerfile(args: &Args) -> anyhow::Result<(String, String, Option<PathBuf>)> {
    match args.file.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the Dockerfile from stdin")?;
            Ok((text, "Dockerfile".into(), None))
        }
        Some(path) => {
            let p = PathBuf::from(path);
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read Dockerfile {}", p.display()))?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Dockerfile".into());
            Ok((text, name, Some(p)))
        }
        None => {
            let p = args.context.join("Dockerfile");
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read Dockerfile {}", p.display()))?;
            Ok((text, "Dockerfile".into(), Some(p)))
        }
    }
}

/// `--build-arg NAME=VALUE`, or `NAME` to take the value from the environment (skipped when
/// unset, as docker does).
fn parse_build_args(values: &[String]) -> BuildArgs {
    let mut args = BuildArgs::new();
    for value in values {
        match value.split_once('=') {
            Some((k, v)) => args.set(k, v),
            None => {
                if let Ok(v) = std::env::var(value) {
                    args.set(value.clone(), v);
                }
            }
        }
    }
    args
}

/// `id=ID,src=FILE` (also `source=`), `id=ID,env=VAR`; a bare `id=ID` reads the environment
/// variable of that name, as buildx does.
fn parse_secret(spec: &str) -> anyhow::Result<Secret> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("invalid secret {spec:?}: expected key=value pairs"))?;
        fields.insert(k, v);
    }
    let id = fields
        .get("id")
        .with_context(|| format!("invalid secret {spec:?}: id is required"))?
        .to_string();
    let value = if let Some(src) = fields.get("src").or_else(|| fields.get("source")) {
        std::fs::read(src).with_context(|| format!("cannot read secret {id} from {src}"))?
    } else {
        let var = fields.get("env").copied().unwrap_or(id.as_str());
        std::env::var(var)
            .with_context(|| format!("secret {id}: environment variable {var} is not set"))?
            .into_bytes()
    };
    Ok(Secret { id, value })
}

fn check(text: &str, name: &str, build_args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let dockerfile = match strata_dockerfile::parse(text) {
        Ok(d) => d,
        Err(e) => {
            eprint!("{}", e.render(name, text));
            return Ok(ExitCode::from(1));
        }
    };
    let warnings = strata_dockerfile::lint::check(&dockerfile, build_args);
    if warnings.is_empty() {
        println!("Check complete, no warnings found.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Check complete, {} warning{} have been found!",
        warnings.len(),
        if warnings.len() == 1 { "" } else { "s" }
    );
    for w in &warnings {
        println!();
        print!("{}", w.render(name, text));
    }
    Ok(ExitCode::from(1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Tty,
    Quiet,
}

/// Renders progress events on stderr through the pure views of [`view`]: the plain log is
/// written as events arrive; the live view is redrawn in place by a ticker thread (10 times a
/// second, so a running step's timer moves) and once more, complete, by [`Renderer::finish`].
struct Renderer {
    mode: Mode,
    started: std::time::Instant,
    state: Mutex<RenderState>,
    stop: std::sync::atomic::AtomicBool,
    ticker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct RenderState {
    plain: view::PlainView,
    tty: view::TtyView,
    /// Live-view lines on screen, redrawn by the next frame.
    drawn: usize,
    /// The highest vertex number seen, so the binary's own steps (the export) follow it.
    last_vertex: usize,
    /// Names, starts and output tails of the steps, for a failure's box.
    record: view::StepRecord,
}

impl Renderer {
    fn new(mode: Mode) -> Arc<Self> {
        let renderer = Arc::new(Self {
            mode,
            started: std::time::Instant::now(),
            state: Mutex::new(RenderState::default()),
            stop: std::sync::atomic::AtomicBool::new(false),
            ticker: Mutex::new(None),
        });
        if mode == Mode::Tty {
            let ticking = renderer.clone();
            let handle = std::thread::spawn(move || {
                while !ticking.stop.load(std::sync::atomic::Ordering::Relaxed) {
                    ticking.draw(false);
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            if let Ok(mut ticker) = renderer.ticker.lock() {
                *ticker = Some(handle);
            }
        }
        renderer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RenderState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn event(&self, event: Event) {
        let mut state = self.lock();
        let at = self.started.elapsed();
        if let Event::Started { vertex, .. } = &event {
            state.last_vertex = state.last_vertex.max(*vertex);
        }
        state.record.event(at, &event);
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let text = state.plain.event(at, &event);
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            Mode::Tty => state.tty.event(at, &event),
        }
    }

    /// How the failed build ends (see [`view::StepRecord::failure_text`]).
    fn failure_text(&self, error: &str, engine_offset: usize) -> String {
        self.lock().record.failure_text(error, engine_offset)
    }

    /// A vertex number after every one the engine used.
    fn next_vertex(&self) -> usize {
        let mut state = self.lock();
        state.last_vertex += 1;
        state.last_vertex
    }

    /// Redraws the live view: moves up over the previous frame, prints the lines that left the
    /// frame for good, then the frame, and clears whatever the previous frame left below.
    fn draw(&self, finished: bool) {
        let mut state = self.lock();
        let (width, height) = terminal_size();
        let now = self.started.elapsed();
        let frame = state.tty.frame(now, width, height, finished);
        let mut out = String::new();
        if state.drawn > 0 {
            out.push_str(&format!("\r\x1b[{}A", state.drawn));
        }
        for line in frame.retired.iter().chain(&frame.live) {
            out.push_str("\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("\x1b[J");
        state.drawn = frame.live.len();
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }

    /// Stops the ticker and leaves the complete last frame on screen.
    fn finish(&self) {
        if self.mode != Mode::Tty {
            return;
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let handle = self.ticker.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.draw(true);
    }
}

/// `event` with its vertex number moved up by `offset` (the vertices the binary shows
/// before the engine's).
fn renumbered(event: Event, offset: usize) -> Event {
    match event {
        Event::Started { vertex, name } => Event::Started {
            vertex: vertex + offset,
            name,
        },
        Event::Cached { vertex } => Event::Cached {
            vertex: vertex + offset,
        },
        Event::Log {
            vertex,
            stream,
            line,
        } => Event::Log {
            vertex: vertex + offset,
            stream,
            line,
        },
        Event::Status {
            vertex,
            name,
            elapsed,
        } => Event::Status {
            vertex: vertex + offset,
            name,
            elapsed,
        },
        Event::Done { vertex, elapsed } => Event::Done {
            vertex: vertex + offset,
            elapsed,
        },
        Event::Failed {
            vertex,
            elapsed,
            message,
        } => Event::Failed {
            vertex: vertex + offset,
            elapsed,
            message,
        },
    }
}

/// The terminal's columns and rows (stderr's), 80x24 when it cannot tell.
fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass and reads nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 && size.ws_row > 0 {
        (usize::from(size.ws_col), usize::from(size.ws_row))
    } else {
        (80, 24)
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message already
/// says (a step's rendered error carries its cause's text under the Dockerfile snippet).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let error =
            anyhow::anyhow!("\"/x\": not found").context("Dockerfile:2\nERROR: \"/x\": not found");
        assert_eq!(
            error_chain(&error),
            "Dockerfile:2\nERROR: \"/x\": not found"
        );
        let error = anyhow::anyhow!("\"/x\": not found").context("cannot set up the OCI runtime");
        assert_eq!(
            error_chain(&error),
            "cannot set up the OCI runtime: \"/x\": not found"
        );
    }

    #[test]
    fn registry_outputs_parse_like_buildx() {
        let level = |n| RegistryOutput {
            name: None,
            level: n,
        };
        let ok: &[(&str, Option<RegistryOutput>)] = &[
            ("type=registry", Some(RegistryOutput::default())),
            ("type=registry,compression-level=1", Some(level(1))),
            (
                "type=registry,compression=gzip,compression-level=9",
                Some(level(9)),
            ),
            (
                "type=registry,name=127.0.0.1:5000/app:1",
                Some(RegistryOutput {
                    name: Some("127.0.0.1:5000/app:1".into()),
                    ..RegistryOutput::default()
                }),
            ),
            ("type=image,push=true", Some(RegistryOutput::default())),
            ("type=image", None),
            ("type=oci,dest=o.tar,compression=zstd", None),
            ("type=local,dest=out", None),
        ];
        for (spec, expected) in ok {
            assert_eq!(&RegistryOutput::parse(spec).unwrap(), expected, "{spec}");
        }
        for bad in [
            "type=registry,compression=zstd",
            "type=registry,compression-level=10",
            "type=registry,compression-level=fast",
            "type=registry,dest=x",
        ] {
            assert!(RegistryOutput::parse(bad).is_err(), "{bad}");
        }
    }
}
