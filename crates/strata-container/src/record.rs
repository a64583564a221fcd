//! What a container is (its [`ContainerConfig`], fixed at create) and where it is in its life
//! (its [`State`], rewritten atomically at every transition), and the pure rules that turn an
//! image config plus `run` flags into them, as docker applies them.
//!
//! Nothing here touches the filesystem or the clock: callers pass `now`.

use std::net::IpAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_image::Digest;
use strata_image::human::{human_duration, human_duration_ago};
use strata_runtime::{Mount, MountKind, Network};

use crate::error::{ContainerError, Result};

/// docker's default `PATH`, set when the image config has none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `create`/`run` was asked for, beyond the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// `--name`; a random `adjective_surname` when absent.
    pub name: Option<String>,
    /// `CMD...` after the image.
    pub command: Vec<String>,
    /// `--entrypoint` (`""` clears the image's entrypoint).
    pub entrypoint: Option<String>,
    /// `-e`/`--env-file` entries, `KEY=value`, in order (later wins).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    pub network: Network,
    /// `-v`.
    pub mounts: Vec<Mount>,
    /// `-p`.
    pub ports: Vec<PortMapping>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `--rm`.
    pub auto_remove: bool,
}

/// One `-p [IP:]HOST:CONTAINER[/tcp]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// The address listened on; all addresses when absent.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMapping {
    /// Parses docker's `-p` syntax (TCP only: the userspace proxy forwards streams).
    pub fn parse(spec: &str) -> Result<PortMapping> {
        let invalid = |reason| ContainerError::InvalidOption {
            what: "port mapping",
            value: spec.to_owned(),
            reason,
        };
        let (ports, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
        if proto != "tcp" {
            return Err(invalid("only tcp ports can be published"));
        }
        let port = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("ports are numbers from 1 to 65535"))
        };
        let (host, container) = ports
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected HOST_PORT:CONTAINER_PORT"))?;
        let (ip, host_port) = match host.rsplit_once(':') {
            Some((ip, p)) => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                let ip: IpAddr = ip.parse().map_err(|_| invalid("invalid IP address"))?;
                (Some(ip), p)
            }
            None => (None, host),
        };
        Ok(PortMapping {
            host_ip: ip,
            host_port: port(host_port)?,
            container_port: port(container)?,
        })
    }

    /// The PORTS column entry: `0.0.0.0:8080->80/tcp`.
    pub fn display(&self) -> String {
        let ip = self
            .host_ip
            .map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string());
        format!("{ip}:{}->{}/tcp", self.host_port, self.container_port)
    }
}

/// Parses `-v HOST:CONTAINER[:ro|rw]` (bind mounts only: strata has no named volumes).
pub fn parse_volume(spec: &str) -> Result<Mount> {
    let invalid = |reason| ContainerError::InvalidOption {
        what: "volume",
        value: spec.to_owned(),
        reason,
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, readonly) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        [_, _, _] => return Err(invalid("the mode must be ro or rw")),
        _ => return Err(invalid("expected HOST_PATH:CONTAINER_PATH[:ro]")),
    };
    if !host.starts_with('/') {
        return Err(invalid(
            "the host path must be absolute (named volumes are not supported)",
        ));
    }
    if !container.starts_with('/') {
        return Err(invalid("the container path must be absolute"));
    }
    Ok(Mount {
        kind: MountKind::Bind {
            source: PathBuf::from(host),
            readonly,
        },
        destination: PathBuf::from(container),
    })
}

/// A container, as created. Never changes afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// The image as the user named it (docker's IMAGE column).
    pub image: String,
    /// The image's config digest (its IMAGE ID).
    pub image_id: Digest,
    /// The manifest the container was created from (kept as a GC root).
    pub manifest: Digest,
    /// The image's layers, bottom first.
    pub chain_ids: Vec<Digest>,
    pub created: DateTime<Utc>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// `-u` or the image's `User`; resolved in the rootfs at start. Empty: root.
    pub user: String,
    pub hostname: String,
    pub network: Network,
    pub mounts: Vec<Mount>,
    pub ports: Vec<PortMapping>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    /// The image's `StopSignal`.
    pub stop_signal: Option<String>,
}

impl ContainerConfig {
    /// argv: entrypoint then cmd.
    pub fn args(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The COMMAND column: docker quotes the space-joined argv as a Go string literal and cuts
    /// it at 20 characters.
    pub fn command_column(&self, truncate: bool) -> String {
        let quoted = go_quote(&self.args().join(" "));
        if truncate {
            ellipsis(&quoted, 20)
        } else {
            quoted
        }
    }
}

/// The image-config half of what a container runs, as docker reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: Option<String>,
}

impl ImageDefaults {
    /// The fields `run` uses from an image config.
    pub fn of(config: &strata_image::ImageConfig) -> Self {
        let Some(c) = config.oci.config() else {
            return Self::default();
        };
        Self {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            user: c.user().clone().unwrap_or_default(),
            stop_signal: c.stop_signal().clone(),
        }
    }
}

/// What the container runs: docker's merge of the image config and the `run` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// docker's rules: `--entrypoint` replaces the image's entrypoint and resets its `Cmd`; a
/// command after the image replaces `Cmd`; `-e` overrides image variables by name (keeping
/// their position) and appends new ones; `PATH` defaults to docker's; `-w` must be absolute.
/// (`HOSTNAME`, `TERM` and `HOME` are added at start, by [`runtime_env`], and not committed.)
pub fn resolve(image: &ImageDefaults, options: &CreateOptions) -> Result<Resolved> {
    let (entrypoint, cmd) = match &options.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), options.command.clone()),
        Some(e) => (vec![e.clone()], options.command.clone()),
        None if options.command.is_empty() => (image.entrypoint.clone(), image.cmd.clone()),
        None => (image.entrypoint.clone(), options.command.clone()),
    };
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(ContainerError::NoCommand);
    }
    let mut env = image.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    for entry in &options.env {
        set_env(&mut env, entry.clone());
    }
    let working_dir = match &options.workdir {
        Some(w) if !w.starts_with('/') => {
            return Err(ContainerError::InvalidOption {
                what: "working directory",
                value: w.clone(),
                reason: "it needs to be an absolute path",
            });
        }
        Some(w) => w.clone(),
        None if image.working_dir.is_empty() => "/".to_owned(),
        None => image.working_dir.clone(),
    };
    Ok(Resolved {
        entrypoint,
        cmd,
        env,
        working_dir,
        user: options.user.clone().unwrap_or_else(|| image.user.clone()),
    })
}

/// The environment a container's process gets: its own, plus `HOSTNAME`, `TERM=xterm` with a
/// terminal, and `HOME` (`/root` for root, `/` otherwise) unless set.
pub fn runtime_env(config: &ContainerConfig, uid: u32) -> Vec<String> {
    let mut env = config.env.clone();
    let mut defaults = vec![format!("HOSTNAME={}", config.hostname)];
    if config.tty {
        defaults.push("TERM=xterm".to_owned());
    }
    for entry in defaults {
        set_env(&mut env, entry);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(if uid == 0 { "HOME=/root" } else { "HOME=/" }.to_owned());
    }
    env
}

/// Replaces the variable `entry` names (in place) or appends it.
fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
    let prefix = format!("{key}=");
    match env
        .iter_mut()
        .find(|e| e.starts_with(&prefix) || **e == key)
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// Parses an `--env-file`: one `KEY=value` per line, `#` comments and blank lines skipped, a
/// bare `KEY` taken from `lookup` (dropped when unset), as docker does. Values are literal.
pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.extend(env_entry(line, &lookup));
    }
    out
}

/// One `-e` argument: `KEY=value`, or `KEY` taken from `lookup` (dropped when unset).
pub fn env_entry(arg: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    if arg.contains('=') {
        return Some(arg.to_owned());
    }
    lookup(arg).map(|value| format!("{arg}={value}"))
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// The mutable half of a container (`state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The process that owns the running container (`strata run` itself, or the `-d`
    /// supervisor), with its start time in clock ticks since boot, so a reused pid is told apart.
    pub owner_pid: Option<i32>,
    pub owner_start: Option<u64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    /// Why the last start failed (the runtime's message), if it did.
    pub error: Option<String>,
}

impl State {
    pub fn created() -> Self {
        Self {
            status: Status::Created,
            owner_pid: None,
            owner_start: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            error: None,
        }
    }

    /// docker's STATUS column: `Created`, `Up 2 seconds`, `Exited (0) 3 seconds ago`.
    pub fn status_column(&self, now: DateTime<Utc>) -> String {
        match self.status {
            Status::Created => "Created".to_owned(),
            Status::Running => {
                let since = self.started_at.unwrap_or(now);
                let up = (now - since).to_std().unwrap_or_default();
                format!("Up {}", human_duration(up))
            }
            Status::Exited => {
                let code = self.exit_code.unwrap_or(0);
                match self.finished_at {
                    Some(at) => format!("Exited ({code}) {}", human_duration_ago(at, now)),
                    None => format!("Exited ({code})"),
                }
            }
        }
    }
}

/// A Go `strconv.Quote` of `s` (the escapes a shell command realistically needs).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_owned();
    }
    chars[..max - 1].iter().collect::<String>() + "…"
}

/// A signal by name (`TERM`, `SIGTERM`) or number, as its number.
pub fn parse_signal(signal: &str) -> Result<i32> {
    const SIGNALS: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    if let Ok(n) = signal.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    } else {
        let upper = signal.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some((_, n)) = SIGNALS.iter().find(|(s, _)| *s == name) {
            return Ok(*n);
        }
    }
    Err(ContainerError::UnknownSignal {
        signal: signal.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            working_dir: "/app".into(),
            user: "nobody".into(),
            stop_signal: None,
        }
    }

    #[test]
    fn entrypoint_and_cmd_as_docker_merges_them() {
        struct Case {
            entrypoint: Option<&'static str>,
            command: &'static [&'static str],
            want_entrypoint: &'static [&'static str],
            want_cmd: &'static [&'static str],
        }
        let cases = [
            Case {
                entrypoint: None,
                command: &[],
                want_entrypoint: &["/entry"],
                want_cmd: &["--serve"],
            },
            Case {
                entrypoint: None,
                command: &["--debug"],
                want_entrypoint: &["/entry"],
                want_cmd: &["--debug"],
            },
            // --entrypoint resets the image's Cmd.
            Case {
                entrypoint: Some("/bin/sh"),
                command: &[],
                want_entrypoint: &["/bin/sh"],
                want_cmd: &[],
            },
            Case {
                entrypoint: Some("/bin/sh"),
                command: &["-c", "true"],
                want_entrypoint: &["/bin/sh"],
                want_cmd: &["-c", "true"],
            },
            Case {
                entrypoint: Some(""),
                command: &["echo"],
                want_entrypoint: &[],
                want_cmd: &["echo"],
            },
        ];
        for case in cases {
            let options = CreateOptions {
                entrypoint: case.entrypoint.map(str::to_owned),
                command: case.command.iter().map(|s| s.to_string()).collect(),
                ..CreateOptions::default()
            };
            let r = resolve(&image(), &options).unwrap();
            assert_eq!(r.entrypoint, case.want_entrypoint, "{:?}", case.entrypoint);
            assert_eq!(r.cmd, case.want_cmd, "{:?}", case.entrypoint);
        }
    }

    #[test]
    fn no_command_at_all_is_an_error() {
        let options = CreateOptions {
            entrypoint: Some(String::new()),
            ..CreateOptions::default()
        };
        assert!(matches!(
            resolve(&image(), &options),
            Err(ContainerError::NoCommand)
        ));
    }

    #[test]
    fn env_overrides_in_place_and_appends() {
        let options = CreateOptions {
            env: vec!["A=2".into(), "B=3".into()],
            tty: true,
            ..CreateOptions::default()
        };
        let r = resolve(&image(), &options).unwrap();
        assert_eq!(r.env, ["PATH=/bin", "A=2", "B=3"]);
        let bare = ImageDefaults::default();
        let options = CreateOptions {
            command: vec!["x".into()],
            ..CreateOptions::default()
        };
        let r = resolve(&bare, &options).unwrap();
        assert_eq!(r.env, [DEFAULT_PATH]);
        assert_eq!(r.working_dir, "/");
        assert_eq!(r.user, "");
    }

    #[test]
    fn workdir_and_user_flags_win() {
        let options = CreateOptions {
            workdir: Some("/tmp".into()),
            user: Some("0:0".into()),
            ..CreateOptions::default()
        };
        let r = resolve(&image(), &options).unwrap();
        assert_eq!((r.working_dir.as_str(), r.user.as_str()), ("/tmp", "0:0"));
        let relative = CreateOptions {
            workdir: Some("tmp".into()),
            ..CreateOptions::default()
        };
        assert!(resolve(&image(), &relative).is_err());
    }

    #[test]
    fn env_files_and_bare_names() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_owned());
        let text = "# comment\n\nA=1\n  B= two words \nHOME\nUNSET\n";
        assert_eq!(
            parse_env_file(text, lookup),
            ["A=1", "B= two words ", "HOME=/root"]
        );
    }

    #[test]
    fn port_mappings() {
        let ok: &[(&str, Option<&str>, u16, u16)] = &[
            ("8080:80", None, 8080, 80),
            ("127.0.0.1:8080:80", Some("127.0.0.1"), 8080, 80),
            ("8080:80/tcp", None, 8080, 80),
            ("[::1]:8080:80", Some("::1"), 8080, 80),
        ];
        for (spec, ip, host, container) in ok {
            let m = PortMapping::parse(spec).unwrap();
            assert_eq!(m.host_ip, ip.map(|i| i.parse().unwrap()), "{spec}");
            assert_eq!((m.host_port, m.container_port), (*host, *container));
        }
        for bad in ["80", "a:80", "8080:80/udp", "0:80", "1.2.3:80:80"] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PortMapping::parse("8080:80").unwrap().display(),
            "0.0.0.0:8080->80/tcp"
        );
    }

    #[test]
    fn volumes() {
        let m = parse_volume("/src:/dst:ro").unwrap();
        assert_eq!(m.destination, PathBuf::from("/dst"));
        assert_eq!(
            m.kind,
            MountKind::Bind {
                source: "/src".into(),
                readonly: true
            }
        );
        for bad in ["named:/dst", "/src:dst", "/src:/dst:rx", "/src"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_column_like_docker_ps() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut state = State::created();
        assert_eq!(state.status_column(now), "Created");
        state.status = Status::Running;
        state.started_at = Some(now - chrono::Duration::seconds(2));
        assert_eq!(state.status_column(now), "Up 2 seconds");
        state.status = Status::Exited;
        state.exit_code = Some(3);
        state.finished_at = Some(now - chrono::Duration::seconds(3));
        assert_eq!(state.status_column(now), "Exited (3) 3 seconds ago");
    }

    #[test]
    fn command_column_quotes_and_truncates() {
        let config = ContainerConfig {
            id: String::new(),
            name: String::new(),
            image: String::new(),
            image_id: Digest::of(b""),
            manifest: Digest::of(b""),
            chain_ids: vec![],
            created: Utc::now(),
            entrypoint: vec![],
            cmd: vec!["sh".into(), "-c".into(), "echo \"hi\" && sleep 1000".into()],
            env: vec![],
            working_dir: "/".into(),
            user: String::new(),
            hostname: String::new(),
            network: Network::Host,
            mounts: vec![],
            ports: vec![],
            tty: false,
            interactive: false,
            auto_remove: false,
            stop_signal: None,
        };
        assert_eq!(config.command_column(true), "\"sh -c echo \\\"hi\\\" …");
        assert_eq!(config.command_column(false).chars().count(), 33);
    }

    #[test]
    fn signals() {
        for (s, n) in [("TERM", 15), ("SIGKILL", 9), ("9", 9), ("int", 2)] {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        for bad in ["NOPE", "0", "99", ""] {
            assert!(parse_signal(bad).is_err(), "{bad:?}");
        }
    }
}
