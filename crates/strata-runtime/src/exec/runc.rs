//! [`RuncExecutor`]: a container per run, through a runc-compatible runtime binary.
//!
//! Each run writes a bundle (`config.json` from [`runtime_spec`], plus the `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` it binds) under the executor's state directory and
//! calls `<runtime> --root <state> run --bundle <bundle> <id>` in the foreground: the runtime
//! passes our pipes to the container process directly, exits with its exit code, and deletes
//! the container itself. The runtime's own errors go to a JSON log file in the bundle, which
//! tells "the runtime failed" apart from "the process exited non-zero".
//!
//! A run with a terminal, unless the caller passes its own terminal through: runc gets a pty
//! made by the executor as its controlling terminal and proxies between it and the container's
//! pty (runc ignores `--console-socket` in the foreground); crun hands the container's pty
//! master over a `--console-socket` and the executor reads it directly, because crun 1.8.1's
//! own proxy sometimes exits before copying the last output (1 run in 8 at load ≈15 here).
//!
//! `crun` on a hybrid cgroup host (v1 controllers plus a cgroup2 mount at
//! `/sys/fs/cgroup/unified` holding a controller) refuses to start ("cgroups in hybrid mode not
//! supported"). There it runs in a private mount namespace of its own in which that cgroup2
//! mount is lazily unmounted: `unshare(CLONE_NEWNS)`, `/` made recursively private (so the
//! unmount does not propagate back to the host), `umount2(MNT_DETACH)`, then exec, all between
//! fork and exec. crun then sees a plain cgroup v1 host.

use std::ffi::CStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::mountpoints::{self, ActiveRootfs, MountPoints};
use super::output::pump;
use super::pty::{ConsoleSocket, MasterReader, Pty};
use super::{ExecError, Executor, ExitStatus, OutputSink, RunFuture, StdinSource, Stdio, tiny_elf};
use crate::fsutil::IoContext;
use crate::spec::{
    EtcFiles, Network, ProcessSpec, hostname_file, hosts_file, resolv_conf, runtime_spec,
};

/// The runc-compatible runtimes strata knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// runc: works everywhere strata runs, ≈35 ms per container here.
    Runc,
    /// crun: ≈11 ms per container, needs the cgroup2 trick on hybrid hosts.
    Crun,
}

impl RuntimeKind {
    /// The name, also the binary looked up in `PATH`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
        }
    }

    /// `runc` or `crun`.
    pub fn from_name(name: &str) -> Result<Self, ExecError> {
        match name {
            "runc" => Ok(Self::Runc),
            "crun" => Ok(Self::Crun),
            _ => Err(ExecError::UnknownRuntime {
                name: name.to_owned(),
            }),
        }
    }
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const UNIFIED_MOUNT: &CStr = c"/sys/fs/cgroup/unified";

/// A hybrid cgroup host: `/sys/fs/cgroup` is not cgroup2 itself, but has a cgroup2 mount at
/// `unified`.
fn hybrid_cgroups() -> bool {
    let magic = |path: &CStr| rustix::fs::statfs(path).map(|s| s.f_type).ok();
    magic(c"/sys/fs/cgroup") != Some(CGROUP2_SUPER_MAGIC)
        && magic(UNIFIED_MOUNT) == Some(CGROUP2_SUPER_MAGIC)
}

/// Runs containers with `runc` or `crun`. See the module docs.
#[derive(Debug, Clone)]
pub struct RuncExecutor {
    kind: RuntimeKind,
    binary: PathBuf,
    /// The runtime's `--root`: its container state.
    root: PathBuf,
    /// Where bundles are written, one directory per run.
    bundles: PathBuf,
    /// Run the binary with the host's cgroup2 mount hidden (crun on a hybrid host).
    hide_cgroup2: bool,
    /// Runs in progress per rootfs, for the mount-point bookkeeping (see `mountpoints`).
    active: Arc<Mutex<ActiveRootfs>>,
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

fn container_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "strata-{}-{}-{nanos:08x}",
        std::process::id(),
        NEXT_RUN.fetch_add(1, Ordering::Relaxed)
    )
}

/// Identifies the crun binary found in `PATH` and the running kernel, so a remembered probe
/// result is discarded when either changes.
fn crun_fingerprint() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = std::env::var_os("PATH")?;
    let binary = std::env::split_paths(&path)
        .map(|dir| dir.join("crun"))
        .find(|candidate| candidate.is_file())?;
    let meta = fs::metadata(&binary).ok()?;
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(format!(
        "{} {} {} {}",
        binary.display(),
        meta.len(),
        meta.mtime(),
        kernel.trim()
    ))
}

impl RuncExecutor {
    /// An executor for `kind` keeping its state (runtime state, bundles) under `state_dir`.
    pub fn new(kind: RuntimeKind, state_dir: &Path) -> Result<Self, ExecError> {
        let state_dir = std::path::absolute(state_dir).at("resolve", state_dir)?;
        let root = state_dir.join(kind.name());
        let bundles = state_dir.join("bundles");
        for dir in [&root, &bundles] {
            fs::create_dir_all(dir).at("create directory", dir)?;
        }
        Ok(Self {
            kind,
            binary: PathBuf::from(kind.name()),
            root,
            bundles,
            hide_cgroup2: kind == RuntimeKind::Crun && hybrid_cgroups(),
            active: Arc::default(),
        })
    }

    /// By name: `runc`, `crun`, or `auto` (crun when [`RuncExecutor::probe`] succeeds with it,
    /// runc otherwise).
    pub async fn from_name(name: &str, state_dir: &Path) -> Result<Self, ExecError> {
        if name == "auto" {
            let crun = Self::new(RuntimeKind::Crun, state_dir)?;
            // A passed probe is remembered for this crun binary on this kernel, so a build
            // does not pay a probe container every time (a no-op rebuild runs nothing at all).
            let stamp = state_dir.join("crun-probe-ok");
            let fingerprint = crun_fingerprint();
            if fingerprint.is_some() && fs::read_to_string(&stamp).ok() == fingerprint {
                return Ok(crun);
            }
            if crun.probe().await.is_ok() {
                if let Some(fingerprint) = fingerprint {
                    // Best effort: without the stamp the next build simply probes again.
                    let _ = fs::write(&stamp, fingerprint);
                }
                return Ok(crun);
            }
            return Self::new(RuntimeKind::Runc, state_dir);
        }
        Self::new(RuntimeKind::from_name(name)?, state_dir)
    }

    /// Use this binary instead of the one found in `PATH`.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// Whether runs go through the private-mount-namespace cgroup2 trick.
    pub fn hides_cgroup2(&self) -> bool {
        self.hide_cgroup2
    }

    /// Run a trivial container (an empty rootfs holding a 132-byte static `exit(0)` program,
    /// in its own network namespace) and check it exits 0.
    pub async fn probe(&self) -> Result<(), ExecError> {
        let dir = self.bundles.join(format!("probe-{}", container_id()));
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).at("create directory", &rootfs)?;
        let result = async {
            let program = rootfs.join("true");
            let bytes = tiny_elf::true_binary().ok_or(ExecError::ProbeUnavailable {
                arch: std::env::consts::ARCH,
            })?;
            fs::write(&program, bytes).at("write", &program)?;
            fs::set_permissions(&program, fs::Permissions::from_mode(0o755))
                .at("chmod", &program)?;
            let mut spec = ProcessSpec::new(vec!["/true".to_owned()]);
            spec.network = Network::None;
            let status = self.run_container(&spec, &rootfs, Stdio::null()).await?;
            if status.success() {
                Ok(())
            } else {
                Err(ExecError::ProbeFailed {
                    runtime: self.kind.name(),
                    status,
                })
            }
        }
        .await;
        let _ = fs::remove_dir_all(&dir);
        result
    }

    /// The runtime binary with `--root`, in the private mount namespace when needed.
    fn std_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.binary);
        command.arg("--root").arg(&self.root);
        if self.hide_cgroup2 {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only raw syscalls run, on static C strings: no
            // allocation, no lock.
            unsafe {
                command.pre_exec(|| {
                    rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)?;
                    rustix::mount::mount_change(
                        c"/",
                        rustix::mount::MountPropagationFlags::REC
                            | rustix::mount::MountPropagationFlags::PRIVATE,
                    )?;
                    match rustix::mount::unmount(UNIFIED_MOUNT, rustix::mount::UnmountFlags::DETACH)
                    {
                        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {
                            Ok(())
                        }
                        Err(errno) => Err(errno.into()),
                    }
                });
            }
        }
        command
    }

    /// [`Executor::run`] with a container id of the caller's choosing, so that other processes
    /// can [`RuncExecutor::kill`] it or ask its [`RuncExecutor::state`] (`strata stop`, `ps`).
    /// Ids are letters, digits, `_`, `+`, `-` and `.`, as runc requires.
    pub async fn run_with_id(
        &self,
        id: &str,
        process: &ProcessSpec,
        rootfs: &Path,
        stdio: Stdio,
    ) -> Result<ExitStatus, ExecError> {
        check_id(id)?;
        self.run_container_as(id.to_owned(), process, rootfs, stdio)
            .await
    }

    /// Send `signal` (a number or a name such as `TERM`) to the init process of container `id`.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), ExecError> {
        check_id(id)?;
        let output = tokio::process::Command::from(self.std_command())
            .args(["kill", id, signal])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| ExecError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(ExecError::Runtime {
                runtime: self.kind.name(),
                id: id.to_owned(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    /// The runtime's view of container `id`, `None` when it does not know it (never started,
    /// or ended and deleted).
    pub async fn state(&self, id: &str) -> Result<Option<ContainerState>, ExecError> {
        check_id(id)?;
        let output = tokio::process::Command::from(self.std_command())
            .args(["state", id])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| ExecError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if !output.status.success() {
            return Ok(None);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&output.stdout).map_err(|_| ExecError::Runtime {
                runtime: self.kind.name(),
                id: id.to_owned(),
                message: format!(
                    "unreadable state: {}",
                    String::from_utf8_lossy(&output.stdout).trim()
                ),
            })?;
        Ok(Some(ContainerState {
            status: value["status"].as_str().unwrap_or_default().to_owned(),
            pid: value["pid"].as_i64().and_then(|p| i32::try_from(p).ok()),
        }))
    }

    async fn run_container(
        &self,
        process: &ProcessSpec,
        rootfs: &Path,
        stdio: Stdio,
    ) -> Result<ExitStatus, ExecError> {
        self.run_container_as(container_id(), process, rootfs, stdio)
            .await
    }

    async fn run_container_as(
        &self,
        id: String,
        process: &ProcessSpec,
        rootfs: &Path,
        mut stdio: Stdio,
    ) -> Result<ExitStatus, ExecError> {
        let rootfs = std::path::absolute(rootfs).at("resolve", rootfs)?;
        let bundle = self.bundles.join(&id);
        let mut guard = RunGuard {
            executor: self,
            id: id.clone(),
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            mount_points: None,
            started: false,
            armed: true,
        };
        let etc_dir = bundle.join("etc");
        fs::create_dir_all(&etc_dir).at("create directory", &etc_dir)?;
        let etc = EtcFiles::in_dir(&etc_dir);
        let host_resolv = match fs::read_to_string("/etc/resolv.conf") {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => Err::<Option<String>, _>(err).at("read", Path::new("/etc/resolv.conf"))?,
        };
        for (path, contents) in [
            (&etc.hosts, hosts_file(&process.hostname)),
            (
                &etc.resolv_conf,
                resolv_conf(host_resolv.as_deref(), process.network),
            ),
            (&etc.hostname, hostname_file(&process.hostname)),
        ] {
            fs::write(path, contents).at("write", path)?;
        }

        let mut spec = runtime_spec(process, &rootfs, &etc)?;
        clamp_rlimits(&mut spec);
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.enter(&rootfs);
            // Registered: from here on the guard must leave, even if `prepare` fails.
            guard.mount_points = Some(MountPoints::default());
            guard.mount_points = Some(mountpoints::prepare(&rootfs, &mut spec)?);
        }
        let config_path = bundle.join("config.json");
        let config = serde_json::to_vec(&spec).map_err(|source| ExecError::WriteConfig {
            path: config_path.clone(),
            source,
        })?;
        fs::write(&config_path, config).at("write", &config_path)?;

        let log_path = bundle.join("runtime.log");
        let mut command = tokio::process::Command::from(self.std_command());
        command
            .arg("--log")
            .arg(&log_path)
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .kill_on_drop(true);
        let stdin_source = if process.stdin {
            std::mem::replace(&mut stdio.stdin, StdinSource::Null)
        } else {
            StdinSource::Null
        };
        let terminal = if !process.tty || matches!(stdio.stdout, OutputSink::Inherit) {
            Terminal::NoneOrPassthrough
        } else if self.kind == RuntimeKind::Crun
            && let Some(console) = ConsoleSocket::bind(&bundle.join("console.sock"))?
        {
            Terminal::ConsoleSocket(console)
        } else {
            Terminal::Pty(Pty::open()?)
        };
        match &terminal {
            Terminal::Pty(pty) => {
                command.stdin(pty.slave()?);
                command.stdout(pty.slave()?);
                command.stderr(pty.slave()?);
                // SAFETY: only raw syscalls between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        rustix::process::setsid()?;
                        rustix::process::ioctl_tiocsctty(std::os::fd::BorrowedFd::borrow_raw(0))?;
                        Ok(())
                    });
                }
            }
            Terminal::ConsoleSocket(console) => {
                command.arg("--console-socket").arg(console.path());
                command.stdin(std::process::Stdio::null());
                command.stdout(std::process::Stdio::null());
                // The runtime's own messages; the process's stderr is on the terminal.
                command.stderr(output_stdio(&stdio.stderr));
            }
            Terminal::NoneOrPassthrough => {
                command.stdin(match &stdin_source {
                    StdinSource::Null => std::process::Stdio::null(),
                    StdinSource::Inherit => std::process::Stdio::inherit(),
                    StdinSource::Bytes(_) | StdinSource::Reader(_) => std::process::Stdio::piped(),
                });
                command.stdout(output_stdio(&stdio.stdout));
                command.stderr(output_stdio(&stdio.stderr));
            }
        }
        command.arg(&id);

        let mut child = command.spawn().map_err(|source| ExecError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        guard.started = true;
        drop(command);
        let stream_error = |stream: &'static str| {
            let id = id.clone();
            move |source| ExecError::Stream { stream, id, source }
        };
        let mut stdout: Option<Box<dyn AsyncRead + Send + Unpin>> = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>);
        let stderr = child.stderr.take();
        let mut stdin: Option<Box<dyn AsyncWrite + Send + Unpin>> = child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>);
        // With an executor-made pty, the executor's own slave descriptor stays open until the
        // runtime has exited: output the runtime copied to the terminal just before exiting
        // must still be readable, and the master only reports the end once the last slave
        // descriptor is closed.
        let mut slave_keeper = None;
        let mut early_exit = None;
        let master = match terminal {
            Terminal::NoneOrPassthrough => None,
            Terminal::Pty(pty) => {
                let (master, slave) = pty.into_parts();
                slave_keeper = Some(slave);
                Some(master)
            }
            Terminal::ConsoleSocket(console) => {
                tokio::select! {
                    received = console.receive() => Some(received.map_err(stream_error("console socket"))?),
                    status = child.wait() => {
                        early_exit = Some(status);
                        None
                    }
                }
            }
        };
        if let Some(master) = master {
            let master = std::fs::File::from(master);
            let writer = master.try_clone().at("duplicate", Path::new("/dev/ptmx"))?;
            stdout = Some(Box::new(MasterReader(tokio::fs::File::from_std(master))));
            if matches!(stdin_source, StdinSource::Bytes(_) | StdinSource::Reader(_)) {
                stdin = Some(Box::new(tokio::fs::File::from_std(writer)));
            }
        }
        let feed_stdin = async move {
            let Some(mut pipe) = stdin else { return Ok(()) };
            let result = match stdin_source {
                StdinSource::Bytes(bytes) => match pipe.write_all(&bytes).await {
                    Ok(()) => pipe.flush().await,
                    Err(err) => Err(err),
                },
                StdinSource::Reader(mut reader) => {
                    tokio::io::copy(&mut reader, &mut pipe).await.map(|_| ())
                }
                StdinSource::Null | StdinSource::Inherit => Ok(()),
            };
            drop(pipe);
            match result {
                // The process stopped reading: not an error of the run.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        };
        let (status, out, err, fed) = tokio::join!(
            async {
                let status = match early_exit {
                    Some(status) => status,
                    None => child.wait().await,
                };
                drop(slave_keeper);
                status
            },
            pump(stdout, &mut stdio.stdout),
            pump(stderr, &mut stdio.stderr),
            feed_stdin,
        );
        let status = status.map_err(stream_error("wait for the runtime"))?;
        out.map_err(stream_error("stdout"))?;
        err.map_err(stream_error("stderr"))?;
        fed.map_err(stream_error("stdin"))?;

        let runtime_error = runtime_log_errors(&log_path);
        guard.finish()?;
        if let Some(message) = runtime_error {
            return Err(ExecError::Runtime {
                runtime: self.kind.name(),
                id,
                message,
            });
        }
        match status.code() {
            Some(code) => Ok(ExitStatus::from_code(code)),
            None => Err(ExecError::RuntimeKilled {
                runtime: self.kind.name(),
                id,
                signal: std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
            }),
        }
    }
}

/// How a run's terminal is provided.
enum Terminal {
    /// No terminal, or the caller's own passed through.
    NoneOrPassthrough,
    /// A pty made here, as the runtime's controlling terminal (runc proxies it).
    Pty(Pty),
    /// The container's pty master handed over by the runtime (crun).
    ConsoleSocket(ConsoleSocket),
}

/// What the runtime reports about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The init process, while there is one.
    pub pid: Option<i32>,
}

fn check_id(id: &str) -> Result<(), ExecError> {
    let valid = !id.is_empty()
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
        && id != "."
        && id != "..";
    if valid {
        Ok(())
    } else {
        Err(ExecError::InvalidContainerId { id: id.to_owned() })
    }
}

/// `CAP_SYS_RESOURCE`, needed to raise a hard rlimit.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process may raise hard rlimits (it lacks the capability inside many CI
/// sandboxes, root or not).
fn may_raise_rlimits() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Lower the spec's rlimits to this process's own hard limits when it may not raise them:
/// the runtime would fail with EPERM setting a limit above them. Docker's daemon does the
/// same implicitly (its containers inherit its limits).
fn clamp_rlimits(spec: &mut oci_spec::runtime::Spec) {
    if may_raise_rlimits() {
        return;
    }
    let Some(process) = spec.process_mut().as_mut() else {
        return;
    };
    let Some(mut rlimits) = process.rlimits().clone() else {
        return;
    };
    for rlimit in &mut rlimits {
        let resource = match rlimit.typ() {
            oci_spec::runtime::PosixRlimitType::RlimitNofile => rustix::process::Resource::Nofile,
            _ => continue,
        };
        let Some(own_hard) = rustix::process::getrlimit(resource).maximum else {
            continue;
        };
        if let Ok(clamped) = oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(rlimit.typ())
            .soft(rlimit.soft().min(own_hard))
            .hard(rlimit.hard().min(own_hard))
            .build()
        {
            *rlimit = clamped;
        }
    }
    process.set_rlimits(Some(rlimits));
}

fn output_stdio(sink: &super::OutputSink) -> std::process::Stdio {
    match sink {
        super::OutputSink::Null => std::process::Stdio::null(),
        super::OutputSink::Inherit => std::process::Stdio::inherit(),
        super::OutputSink::Lines(_) | super::OutputSink::Writer(_) => std::process::Stdio::piped(),
    }
}

/// The error messages in a runtime's JSON log (`{"level":"error","msg":…}` per line).
fn runtime_log_errors(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let messages: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| matches!(entry["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|entry| entry["msg"].as_str().map(str::to_owned))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// Cleans up after a run however it ends: normally through [`RunGuard::finish`], on an error
/// or a cancelled future through `Drop`.
struct RunGuard<'a> {
    executor: &'a RuncExecutor,
    id: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    /// Set once the run is registered with the executor's `active` table.
    mount_points: Option<MountPoints>,
    started: bool,
    armed: bool,
}

impl RunGuard<'_> {
    /// After the runtime exited (it deleted the container itself): remove the mount points it
    /// created and the bundle.
    fn finish(&mut self) -> Result<(), ExecError> {
        self.armed = false;
        let cleaned = self.leave_rootfs();
        let _ = fs::remove_dir_all(&self.bundle);
        cleaned?;
        Ok(())
    }
}

impl RunGuard<'_> {
    /// Unregister the run; when it was the last on its rootfs, remove the mount points all of
    /// them created.
    fn leave_rootfs(&mut self) -> Result<(), crate::fsutil::PathError> {
        let Some(points) = self.mount_points.take() else {
            return Ok(());
        };
        let to_clean = self
            .executor
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .leave(&self.rootfs, points);
        let mut first_error = None;
        for mut points in to_clean {
            if let Err(err) = points.cleanup() {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.started {
            // The `runtime run` process has been SIGKILLed (kill_on_drop), which does not stop
            // the container: kill and delete it. Blocking, but only on this rare path, and the
            // mount points cannot be removed before the container is gone.
            let _ = self
                .executor
                .std_command()
                .arg("delete")
                .arg("--force")
                .arg(&self.id)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = self.leave_rootfs();
        let _ = fs::remove_dir_all(&self.bundle);
    }
}

impl Executor for RuncExecutor {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn run<'a>(&'a self, spec: &'a ProcessSpec, rootfs: &'a Path, stdio: Stdio) -> RunFuture<'a> {
        Box::pin(self.run_container(spec, rootfs, stdio))
    }
}

/// Whether `crun` can run containers here (with the cgroup2 trick when the host needs it),
/// keeping the probe's state under `state_dir`.
pub async fn probe_crun(state_dir: &Path) -> Result<(), ExecError> {
    RuncExecutor::new(RuntimeKind::Crun, state_dir)?
        .probe()
        .await
}
