//! `strata pull [--platform os/arch[/variant]] [-q] NAME[:TAG|@DIGEST]`: download an image
//! from a registry into the store, printing docker's progress lines.
//!
//! Also home of what the registry commands share: the client set up from docker's
//! `config.json` and `--insecure-registry`, and the per-layer progress display.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use strata_image::human::human_size_with_precision;
use strata_image::{Digest, Reference};
use strata_registry::{
    BlobStatus, Client, ClientOptions, Event, Platform, PullOptions, RegistryError,
};

use crate::commands::Global;
use crate::store;

/// Download an image from a registry
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pick this platform from a multi-platform image
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    /// Suppress verbose output (print only the image reference)
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

/// Options of every command that talks to a registry.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP and unverified TLS for this registry (host[:port]; also
    /// $STRATA_INSECURE_REGISTRIES, comma-separated); loopback registries are always allowed,
    /// as docker allows them
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

/// A client reading credentials from docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`),
/// insecure registries from `--insecure-registry` and `$STRATA_INSECURE_REGISTRIES`.
pub fn registry_client(args: &RegistryArgs) -> anyhow::Result<Client> {
    let mut options = ClientOptions::from_environment()?;
    options
        .insecure_registries
        .extend(args.insecure_registries.iter().cloned());
    Ok(Client::new(options)?)
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Adds the action a user can take to registry errors that have one.
pub fn with_hint(err: RegistryError) -> anyhow::Error {
    let hint = match &err {
        RegistryError::Unauthorized { registry, .. } | RegistryError::Denied { registry, .. } => {
            Some(format!("hint: log in with `strata login {registry}`"))
        }
        RegistryError::Http { source, .. } if source.is_connect() => Some(
            "hint: check the registry address; plain-HTTP registries other than loopback ones need --insecure-registry"
                .to_string(),
        ),
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::anyhow!("{err}\n{hint}"),
        None => anyhow::Error::new(err),
    }
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.name)
        .with_context(|| format!("invalid reference format {:?}", args.name))?;
    let platform: Platform = args.platform.parse()?;
    let store = Arc::new(store::open(global)?);
    let client = registry_client(&args.registry)?;
    let rt = runtime()?;

    let mode = if args.quiet {
        Mode::Quiet
    } else {
        Mode::detect()
    };
    if !args.quiet {
        let wanted = match reference.digest() {
            Some(digest) => digest.to_string(),
            None => reference.tag().unwrap_or("latest").to_string(),
        };
        println!("{wanted}: Pulling from {}", reference.repository());
    }
    let progress = Progress::new(mode, Direction::Pull);
    let options = PullOptions {
        platform,
        ..PullOptions::default()
    };
    let sink = |event| progress.event(event);
    let result = rt.block_on(strata_registry::pull(
        &client, &store, &reference, &options, &sink,
    ));
    progress.finish();
    let pulled = result.map_err(with_hint)?;
    if !args.quiet {
        println!("Digest: {}", pulled.digest);
        let status = if pulled.updated {
            "Downloaded newer image"
        } else {
            "Image is up to date"
        };
        println!("Status: {status} for {}", reference.familiar());
    }
    println!("{reference}");
    Ok(ExitCode::SUCCESS)
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: one line per layer, redrawn in place, with a progress bar.
    Terminal,
    /// Logs: one line per state change, no byte counts.
    Plain,
    Quiet,
}

impl Mode {
    pub fn detect() -> Mode {
        if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

/// Docker's per-layer progress: `<12 hex>: <status> [progress]`, config blobs hidden.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    direction: Direction,
    /// Terminal columns; docker draws the bar only on terminals wider than 110.
    width: usize,
    state: Mutex<ProgressState>,
}

#[derive(Debug, Default)]
struct ProgressState {
    /// The terminal's lines, in the order layers first appeared.
    lines: Vec<(Digest, String)>,
    /// How many lines the last redraw left above the cursor.
    drawn: usize,
    /// Plain mode: the last line printed per layer.
    printed: HashMap<Digest, String>,
    last_draw: HashMap<Digest, Instant>,
}

/// The terminal's width as comfy-table detects it (it asks the terminal), 80 otherwise.
fn terminal_width() -> usize {
    comfy_table::Table::new().width().map_or(80, usize::from)
}

impl Progress {
    pub fn new(mode: Mode, direction: Direction) -> Progress {
        let width = if mode == Mode::Terminal {
            terminal_width()
        } else {
            80
        };
        Progress {
            mode,
            direction,
            width,
            state: Mutex::new(ProgressState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn event(&self, event: Event) {
        let Event::Blob {
            digest,
            is_config: false,
            status,
        } = event
        else {
            return;
        };
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => self.plain(digest, &status),
            Mode::Terminal => self.terminal(digest, &status),
        }
    }

    fn label(&self, status: &BlobStatus) -> String {
        match (status, self.direction) {
            (BlobStatus::Waiting, Direction::Pull) => "Pulling fs layer".into(),
            (BlobStatus::Waiting | BlobStatus::Preparing, Direction::Push) => "Preparing".into(),
            (BlobStatus::Preparing, Direction::Pull) => "Waiting".into(),
            (BlobStatus::AlreadyExists, _) => "Already exists".into(),
            (BlobStatus::Downloading { .. }, _) => "Downloading".into(),
            (BlobStatus::Verifying, _) => "Verifying Checksum".into(),
            (BlobStatus::PullComplete, _) => "Pull complete".into(),
            (BlobStatus::Pushing { .. }, _) => "Pushing".into(),
            (BlobStatus::Pushed, _) => "Pushed".into(),
            (BlobStatus::Mounted { from }, _) => format!("Mounted from {from}"),
            (BlobStatus::LayerExists, _) => "Layer already exists".into(),
        }
    }

    fn plain(&self, digest: Digest, status: &BlobStatus) {
        // Byte counts are for terminals; logs get each change of state once.
        if matches!(
            status,
            BlobStatus::Downloading { .. } | BlobStatus::Pushing { .. }
        ) {
            return;
        }
        let label = self.label(status);
        {
            let mut state = self.lock();
            if state.printed.get(&digest) == Some(&label) {
                return;
            }
            state.printed.insert(digest, label.clone());
        }
        let mut out = std::io::stdout().lock();
        if *status == BlobStatus::PullComplete {
            let _ = writeln!(out, "{}: Download complete", digest.short());
        }
        let _ = writeln!(out, "{}: {label}", digest.short());
    }

    fn terminal(&self, digest: Digest, status: &BlobStatus) {
        let mut state = self.lock();
        let progress = match status {
            BlobStatus::Downloading { current, total } | BlobStatus::Pushing { current, total } => {
                // Redraw byte counts at most 10 times a second per layer.
                let now = Instant::now();
                let last = state.last_draw.get(&digest).copied();
                if last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
                    && current != total
                {
                    return;
                }
                state.last_draw.insert(digest, now);
                format!(" {}", progress_text(*current, *total, self.width > 110))
            }
            _ => String::new(),
        };
        let line = format!("{}: {}{progress}", digest.short(), self.label(status));
        match state.lines.iter_mut().find(|(d, _)| *d == digest) {
            Some((_, text)) => *text = line,
            None => state.lines.push((digest, line)),
        }
        // Move up over what was drawn, then rewrite every line (cleared, cut to the width so
        // nothing wraps and the cursor arithmetic holds).
        let mut out = String::new();
        if state.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", state.drawn));
        }
        for (_, text) in &state.lines {
            out.push_str("\r\x1b[2K");
            out.extend(text.chars().take(self.width.saturating_sub(1)));
            out.push('\n');
        }
        state.drawn = state.lines.len();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    /// Nothing to do: every redraw ends with a newline, so later output starts on a new line.
    pub fn finish(&self) {}
}

/// Docker's `JSONProgress`: `[=====>      ]  1.234MB/5.678MB` (a 50-column bar, drawn only
/// on wide terminals).
pub fn progress_text(current: u64, total: u64, with_bar: bool) -> String {
    let size = |n: u64| human_size_with_precision(n as f64, 4);
    if total == 0 {
        return format!("{:>8}", size(current));
    }
    let numbers = if current > total {
        format!("{:>8}", size(current))
    } else {
        format!("{:>8}/{}", size(current), size(total))
    };
    if !with_bar {
        return numbers;
    }
    let filled = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    format!(
        "[{}>{}] {numbers}",
        "=".repeat(filled),
        " ".repeat(50 - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_terminals_get_numbers_only() {
        assert_eq!(
            progress_text(1_036_189, 2_072_378, false),
            " 1.036MB/2.072MB"
        );
        assert_eq!(progress_text(7, 0, false), "      7B");
    }

    #[test]
    fn progress_bars_like_docker() {
        assert_eq!(
            progress_text(0, 2_000_000, true),
            "[>                                                  ]       0B/2MB"
        );
        assert_eq!(
            progress_text(1_036_189, 2_072_378, true),
            "[=========================>                         ]  1.036MB/2.072MB"
        );
        assert_eq!(
            progress_text(5, 5, true),
            "[==================================================>]       5B/5B"
        );
    }
}
