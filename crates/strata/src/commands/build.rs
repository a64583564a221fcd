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
    /// or type=local,dest=DIR (the root filesystem)
    #[arg(
        short = 'o',
        long = "output",
        value_name = "type=TYPE,dest=PATH[,compression=gzip|zstd][,compression-level=N]"
    )]
    pub output: Option<String>,

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
    let output = args
        .output
        .as_deref()
        .map(solve::export::Output::parse)
        .transpose()?;
    let context = args.context.clone();
    if !context.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            context.display().to_string()
        );
    }
    let (dockerfile_text, dockerfile_name, dockerfile_path) = read_dockerfile(&args)?;
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
    let renderer = Arc::new(Renderer::new(mode));
    let sink_renderer = renderer.clone();
    let sink: ProgressSink = Arc::new(move |event| sink_renderer.event(event));

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
    renderer.finish();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(output) = &output {
        let refs: Vec<strata_image::Reference> = tags
            .iter()
            .filter_map(|t| strata_image::Reference::parse(t).ok())
            .collect();
        solve::export::export(&store, &outcome.manifest_digest, &refs, output)
            .context("cannot write --output")?;
    }
    let id = outcome.config_digest.to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match mode {
        Mode::Quiet => println!("{id}"),
        _ => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "writing image {id} done");
            for tag in &outcome.tags {
                let _ = writeln!(err, "naming to {tag} done");
            }
            let _ = writeln!(
                err,
                "{} steps: {} cached, {} executed",
                outcome.cached_steps + outcome.executed_steps,
                outcome.cached_steps,
                outcome.executed_steps
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// Renders progress events on stderr.
struct Renderer {
    mode: Mode,
    state: Mutex<RenderState>,
}

#[derive(Default)]
struct RenderState {
    names: HashMap<usize, String>,
    started: HashMap<usize, std::time::Instant>,
    cached: HashMap<usize, bool>,
    bars: HashMap<usize, indicatif::ProgressBar>,
    multi: Option<indicatif::MultiProgress>,
    build_started: Option<std::time::Instant>,
}

impl Renderer {
    fn new(mode: Mode) -> Self {
        let state = RenderState {
            multi: (mode == Mode::Tty).then(indicatif::MultiProgress::new),
            build_started: Some(std::time::Instant::now()),
            ..Default::default()
        };
        Self {
            mode,
            state: Mutex::new(state),
        }
    }

    fn event(&self, event: Event) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => plain(&mut state, event),
            Mode::Tty => tty(&mut state, event),
        }
    }

    fn finish(&self) {
        if let Ok(mut state) = self.state.lock() {
            for (_, bar) in state.bars.drain() {
                bar.abandon();
            }
            if self.mode == Mode::Tty
                && let Some(started) = state.build_started
            {
                eprintln!(
                    "Building {:.1}s (finished)",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
}

fn plain(state: &mut RenderState, event: Event) {
    let mut err = std::io::stderr().lock();
    match event {
        Event::Started { vertex, name } => {
            let _ = writeln!(err, "\n#{vertex} {name}");
            state.started.insert(vertex, std::time::Instant::now());
        }
        Event::Cached { vertex } => {
            state.cached.insert(vertex, true);
            let _ = writeln!(err, "#{vertex} CACHED");
        }
        Event::Log { vertex, line, .. } => {
            let t = state
                .started
                .get(&vertex)
                .map(|s| s.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            let _ = writeln!(err, "#{vertex} {t:.3} {line}");
        }
        Event::Done { vertex, elapsed } => {
            if !state.cached.contains_key(&vertex) {
                let _ = writeln!(err, "#{vertex} DONE {:.1}s", elapsed.as_secs_f64());
            }
        }
        Event::Failed {
            vertex,
            elapsed,
            message,
        } => {
            let _ = writeln!(err, "#{vertex} ERROR: {message}");
            let _ = writeln!(err, "#{vertex} {:.1}s", elapsed.as_secs_f64());
        }
    }
}

fn tty(state: &mut RenderState, event: Event) {
    let Some(multi) = state.multi.clone() else {
        return;
    };
    let style = indicatif::ProgressStyle::with_template(" => {msg} {elapsed:>6.dim}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    match event {
        Event::Started { vertex, name } => {
            let bar = multi.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(style);
            bar.set_message(name.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            state.names.insert(vertex, name);
            state.bars.insert(vertex, bar);
        }
        Event::Cached { vertex } => {
            state.cached.insert(vertex, true);
        }
        Event::Log { vertex, line, .. } => {
            if let (Some(bar), Some(name)) = (state.bars.get(&vertex), state.names.get(&vertex)) {
                let shown: String = line.chars().take(100).collect();
                bar.set_message(format!("{name}\n    {shown}"));
            }
        }
        Event::Done { vertex, elapsed } => {
            if let Some(bar) = state.bars.remove(&vertex) {
                let name = state.names.get(&vertex).cloned().unwrap_or_default();
                let status = if state.cached.contains_key(&vertex) {
                    "CACHED ".to_string()
                } else {
                    String::new()
                };
                bar.set_style(
                    indicatif::ProgressStyle::with_template(" => {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(format!("{status}{name} {:.1}s", elapsed.as_secs_f64()));
            }
        }
        Event::Failed {
            vertex,
            elapsed,
            message,
        } => {
            if let Some(bar) = state.bars.remove(&vertex) {
                let name = state.names.get(&vertex).cloned().unwrap_or_default();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(" => {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(format!(
                    "ERROR {name} {:.1}s: {message}",
                    elapsed.as_secs_f64()
                ));
            }
        }
    }
}
