//! What to run ([`ProcessSpec`]) and the OCI runtime `config.json` for it ([`runtime_spec`]).
//!
//! Everything here is pure: no file is read, no clock consulted, so the generated spec is the
//! same for the same input and is unit tested field by field. The defaults follow docker's
//! (`moby/oci/defaults.go`): the same namespaces, mounts, masked and read-only paths, default
//! capabilities and device cgroup rules, `RLIMIT_NOFILE` 1048576, and `noNewPrivileges` false.
//! No seccomp profile is applied (docker applies its default profile; strata does not ship one
//! yet).

use std::path::{Component, Path, PathBuf};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroup,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount as OciMount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

/// The user a process runs as (see [`crate::resolve_user`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// The network a process sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// The host's network namespace (docker build's default: there is no bridge).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface.
    None,
}

/// What is mounted at a [`Mount`]'s destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountKind {
    /// A host path bound (recursively) into the container.
    Bind { source: PathBuf, readonly: bool },
    /// A fresh tmpfs, of `size` bytes when given (half the RAM otherwise, the kernel default).
    Tmpfs { size: Option<u64> },
}

/// One extra mount, on top of the standard ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    /// An absolute path inside the container.
    pub destination: PathBuf,
}

/// One process to run in a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in the container's `PATH` by the runtime.
    pub args: Vec<String>,
    /// `KEY=value` entries, in order.
    pub env: Vec<String>,
    /// The working directory, absolute. It should exist: a runtime that creates it would leave
    /// it in the diff.
    pub cwd: PathBuf,
    pub user: User,
    pub hostname: String,
    pub network: Network,
    pub mounts: Vec<Mount>,
    /// Give the process a terminal.
    pub tty: bool,
    /// Keep stdin attached (docker's `-i`); otherwise it reads `/dev/null`.
    pub stdin: bool,
}

impl ProcessSpec {
    /// `args` as root in `/`, on the host network, hostname `strata`, nothing attached.
    pub fn new(args: Vec<String>) -> Self {
        Self {
            args,
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            user: User::default(),
            hostname: "strata".to_owned(),
            network: Network::Host,
            mounts: Vec::new(),
            tty: false,
            stdin: false,
        }
    }
}

/// Host-side files bind-mounted over `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` for
/// one run (written by the executor with [`hosts_file`], [`resolv_conf`], [`hostname_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: PathBuf,
}

impl EtcFiles {
    /// The three files in `dir`, named after their destination.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname: dir.join("hostname"),
        }
    }
}

/// Why a [`ProcessSpec`] cannot become a runtime spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the process has no arguments")]
    NoArgs,
    #[error("the working directory {path} is not absolute")]
    RelativeCwd { path: PathBuf },
    #[error("the mount destination {path} is not absolute")]
    RelativeMountDestination { path: PathBuf },
    #[error("the rootfs {path} is not absolute")]
    RelativeRootfs { path: PathBuf },
    #[error("build the runtime spec: {0}")]
    Build(#[from] OciSpecError),
}

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's masked paths: hidden behind `/dev/null` or an empty read-only tmpfs.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `RLIMIT_NOFILE`, soft and hard (what docker's daemon passes on from systemd's
/// `LimitNOFILE=infinity`).
pub const NOFILE_LIMIT: u64 = 1_048_576;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<OciMount, SpecError> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(strings(options))
        .build()?)
}

fn bind(destination: &Path, source: &Path, readonly: bool) -> Result<OciMount, SpecError> {
    let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
    if readonly {
        options.push("ro".to_owned());
    }
    Ok(MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(options)
        .build()?)
}

/// The standard mounts, in docker's order: /proc, /dev and what lives in it, /sys.
fn standard_mounts() -> Result<Vec<OciMount>, SpecError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
    ])
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup, SpecError> {
    let mut builder = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access);
    if let Some(typ) = typ {
        builder = builder.typ(typ);
    }
    if let Some(major) = major {
        builder = builder.major(major);
    }
    if let Some(minor) = minor {
        builder = builder.minor(minor);
    }
    Ok(builder.build()?)
}

/// Docker's device cgroup: deny everything, allow `mknod` of any node and use of the standard
/// devices (null, zero, full, random, urandom, tty, ptmx, the pts, tun).
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    use LinuxDeviceType::{B, C};
    let mut rules = vec![
        device_rule(false, None, None, None, "rwm")?,
        device_rule(true, Some(C), None, None, "m")?,
        device_rule(true, Some(B), None, None, "m")?,
    ];
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        rules.push(device_rule(true, Some(C), Some(major), minor, "rwm")?);
    }
    Ok(rules)
}

/// Mount order for extra mounts: parents before children, as docker sorts them.
fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// The OCI runtime spec that runs `process` in `rootfs` with the `/etc` files of `etc`.
pub fn runtime_spec(
    process: &ProcessSpec,
    rootfs: &Path,
    etc: &EtcFiles,
) -> Result<Spec, SpecError> {
    if process.args.is_empty() {
        return Err(SpecError::NoArgs);
    }
    if !process.cwd.is_absolute() {
        return Err(SpecError::RelativeCwd {
            path: process.cwd.clone(),
        });
    }
    if !rootfs.is_absolute() {
        return Err(SpecError::RelativeRootfs {
            path: rootfs.to_path_buf(),
        });
    }

    let capabilities: std::collections::HashSet<Capability> =
        DEFAULT_CAPABILITIES.iter().copied().collect();
    let user = UserBuilder::default()
        .uid(process.user.uid)
        .gid(process.user.gid)
        .additional_gids(process.user.additional_gids.clone())
        .build()?;
    let oci_process = ProcessBuilder::default()
        .terminal(process.tty)
        .user(user)
        .args(process.args.clone())
        .env(process.env.clone())
        .cwd(&process.cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(capabilities.clone())
                .effective(capabilities.clone())
                .permitted(capabilities)
                // The builder's defaults are not empty: say "none" explicitly.
                .inheritable(std::collections::HashSet::new())
                .ambient(std::collections::HashSet::new())
                .build()?,
        )
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(NOFILE_LIMIT)
                .hard(NOFILE_LIMIT)
                .build()?,
        ])
        .no_new_privileges(false)
        .build()?;

    let mut mounts = standard_mounts()?;
    mounts.push(bind(Path::new("/etc/hosts"), &etc.hosts, true)?);
    mounts.push(bind(Path::new("/etc/resolv.conf"), &etc.resolv_conf, true)?);
    mounts.push(bind(Path::new("/etc/hostname"), &etc.hostname, true)?);
    let mut extra: Vec<&Mount> = process.mounts.iter().collect();
    extra.sort_by_key(|m| depth(&m.destination));
    for m in extra {
        if !m.destination.is_absolute() {
            return Err(SpecError::RelativeMountDestination {
                path: m.destination.clone(),
            });
        }
        mounts.push(match &m.kind {
            MountKind::Bind { source, readonly } => bind(&m.destination, source, *readonly)?,
            MountKind::Tmpfs { size } => {
                let mut options = strings(&["nosuid", "nodev", "mode=1777"]);
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                MountBuilder::default()
                    .destination(&m.destination)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(options)
                    .build()?
            }
        });
    }

    let mut namespaces = vec![
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
    ];
    if process.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(strings(&MASKED_PATHS))
        .readonly_paths(strings(&READONLY_PATHS))
        .resources(
            LinuxResourcesBuilder::default()
                .devices(device_rules()?)
                .build()?,
        )
        .build()?;

    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()?,
        )
        .hostname(process.hostname.clone())
        .process(oci_process)
        .mounts(mounts)
        .linux(linux)
        .build()?)
}

/// `/etc/hosts` for a run: localhost (IPv4 and IPv6) with the hostname on the IPv4 line, as
/// BuildKit writes it for a build step.
pub fn hosts_file(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// `/etc/hostname` for a run.
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// Docker's fallback resolvers when the host offers none usable.
const DEFAULT_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/resolv.conf` for a run, from the host's (`None` when it is missing).
///
/// On the host network the host's file works as is, loopback resolvers included (a local
/// caching resolver is reachable). In a network namespace of its own a loopback resolver would
/// be the container's own loopback, where nothing listens: those lines are dropped, as docker
/// does, and docker's default resolvers are used when nothing is left.
pub fn resolv_conf(host: Option<&str>, network: Network) -> String {
    let host = host.unwrap_or("");
    let is_loopback_nameserver = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words.next().is_some_and(|addr| {
                addr.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
            })
    };
    let mut lines: Vec<&str> = host.lines().collect();
    if network == Network::None {
        lines.retain(|line| !is_loopback_nameserver(line));
    }
    let has_nameserver = lines
        .iter()
        .any(|line| line.split_whitespace().next() == Some("nameserver"));
    let mut out: String = lines.iter().map(|line| format!("{line}\n")).collect();
    if !has_nameserver {
        for server in DEFAULT_NAMESERVERS {
            out.push_str(&format!("nameserver {server}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
