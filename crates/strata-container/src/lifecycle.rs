//! Running containers: the owner loop (`strata run`, `start -a`, and the `-d` supervisor all run
//! [`Containers::run_owned`]), detaching under a supervisor, and `stop`, `kill`, `wait`.
//!
//! The owner holds the container's lock while it runs (see [`crate::containers`]), mounts the
//! rootfs, runs the process through the OCI runtime with a container id equal to the
//! container's id (so other processes can signal it), forwards the signals it receives, starts
//! the port proxy once the container's init exists, and records the exit.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use std::io::IsTerminal;

use strata_runtime::{ExecError, OutputSink, ProcessSpec, Stdio, User};

use crate::containers::{Container, Containers};
use crate::error::{ContainerError, IoContext, Result};
use crate::logs::{LogWriter, Stream};
use crate::proxy;
use crate::record::{Status, parse_signal, runtime_env};
use crate::rootfs;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The container's exit code, or docker's codes for a process that could not be started
    /// (125 strata/runtime failure, 126 not executable, 127 not found).
    pub exit_code: i32,
    /// The runtime's message when the process could not be started.
    pub error: Option<String>,
}

/// Where a container's output goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// This process's own stdout and stderr (and terminal, if it has one).
    Inherit,
    /// The container's log (a detached container's supervisor).
    Log(LogWriter),
}

/// The signals an owner forwards to the container.
const FORWARDED: [i32; 6] = [1, 2, 3, 10, 12, 15];

/// docker's exit codes for a process that could not be started, from the runtime's message.
pub fn start_failure_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") || m.contains("exec format error") {
        126
    } else {
        125
    }
}

impl Containers<'_> {
    /// Runs the container in this process until it exits, with this process's standard streams
    /// (a detached container's supervisor has its output file as stdout and stderr).
    pub async fn run_owned(&self, container: &mut Container, output: Output) -> Result<Outcome> {
        let lock = match self.try_lock(container)? {
            Some(lock) => lock,
            None => {
                // Held by a running owner (refuse) or briefly by a reader (wait for it).
                self.refresh(container)?;
                if container.is_running() {
                    return Err(ContainerError::AlreadyRunning {
                        id: container.id().to_owned(),
                    });
                }
                self.lock(container)?
            }
        };
        self.refresh(container)?;
        if container.state.status == Status::Running {
            return Err(ContainerError::AlreadyRunning {
                id: container.id().to_owned(),
            });
        }
        let config = container.config.clone();
        // What fails before the process starts (a taken port, an unknown user, the mount)
        // ends this start like a runtime failure: recorded, with docker's 125.
        let prepared = self.prepare(container, &config);
        let (spec, listeners) = match prepared {
            Ok(ready) => ready,
            Err(e) => {
                let _ = rootfs::unmount(&container.rootfs());
                let outcome = Outcome {
                    exit_code: 125,
                    error: Some(e.to_string()),
                };
                self.mark_exited(container, outcome.exit_code, outcome.error.clone())?;
                return Ok(outcome);
            }
        };
        let rootfs = container.rootfs();
        self.mark_running(container)?;
        let outcome = self
            .drive(&config.id, &spec, &rootfs, listeners, output)
            .await;
        let unmounted = rootfs::unmount(&rootfs);
        let outcome = match outcome {
            Ok(status) => Outcome {
                exit_code: status,
                error: None,
            },
            Err(ContainerError::Exec(ExecError::Runtime { message, .. })) => Outcome {
                exit_code: start_failure_code(&message),
                error: Some(message),
            },
            Err(e) => Outcome {
                exit_code: 125,
                error: Some(e.to_string()),
            },
        };
        self.mark_exited(container, outcome.exit_code, outcome.error.clone())?;
        drop(lock);
        unmounted?;
        Ok(outcome)
    }

    /// Binds the published ports, mounts the rootfs and resolves the process to run.
    fn prepare(
        &self,
        container: &Container,
        config: &crate::record::ContainerConfig,
    ) -> Result<(ProcessSpec, Option<proxy::Listeners>)> {
        let listeners = match config.network {
            strata_runtime::Network::None if !config.ports.is_empty() => {
                Some(proxy::bind(&config.ports)?)
            }
            _ => None,
        };
        self.mount(container)?;
        let user = if config.user.is_empty() {
            User::default()
        } else {
            strata_runtime::resolve_user(&container.rootfs(), &config.user)?
        };
        let spec = ProcessSpec {
            args: config.args(),
            env: runtime_env(config, user.uid),
            cwd: PathBuf::from(&config.working_dir),
            user,
            hostname: config.hostname.clone(),
            network: config.network,
            mounts: config.mounts.clone(),
            tty: config.tty,
            stdin: config.interactive,
        };
        Ok((spec, listeners))
    }

    /// Runs the process, forwarding signals and starting the port proxy.
    async fn drive(
        &self,
        id: &str,
        spec: &ProcessSpec,
        rootfs: &std::path::Path,
        mut listeners: Option<proxy::Listeners>,
        output: Output,
    ) -> Result<i32> {
        let executor = self.executor()?;
        let (tx, mut signals) = tokio::sync::mpsc::unbounded_channel::<i32>();
        for signal in FORWARDED {
            let tx = tx.clone();
            let mut stream =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(signal))
                    .at("install a handler for signal", format!("{signal}"))?;
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    if tx.send(signal).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // The caller's terminal is passed through to the runtime when there is one; otherwise
        // (a pipe, a log file) the executor makes a pty and copies its output to our stdout.
        let mut stdio = Stdio::inherit();
        if let Output::Log(log) = output {
            for (stream, sink) in [
                (Stream::Stdout, &mut stdio.stdout),
                (Stream::Stderr, &mut stdio.stderr),
            ] {
                let log = log.clone();
                *sink = OutputSink::Lines(Box::new(move |line| log.write(stream, line)));
            }
        } else if spec.tty && !std::io::stdout().is_terminal() {
            let out = rustix::io::dup(std::io::stdout()).at("duplicate", "stdout")?;
            stdio.stdout = OutputSink::Writer(Box::new(tokio::fs::File::from_std(
                std::fs::File::from(out),
            )));
        }
        let run = executor.run_with_id(id, spec, rootfs, stdio);
        tokio::pin!(run);
        let mut probe = tokio::time::interval(Duration::from_millis(20));
        let mut _forwarders = None;
        loop {
            tokio::select! {
                result = &mut run => return Ok(result?.code()),
                Some(signal) = signals.recv() => {
                    // The container may not exist yet or be gone already: nothing to forward to.
                    let _ = executor.kill(id, &signal.to_string()).await;
                }
                _ = probe.tick(), if listeners.is_some() => {
                    if let Ok(Some(state)) = executor.state(id).await
                        && let Some(pid) = state.pid.filter(|p| *p > 0)
                        && let Some(bound) = listeners.take()
                    {
                        _forwarders = Some(bound.forward_to(pid)?);
                    }
                }
            }
        }
    }

    /// Starts the container under a supervisor: `supervisor` is the command that re-executes
    /// strata's hidden supervise subcommand for this container (which runs it with
    /// [`Output::Log`]). It runs in a new session, its own messages appended to
    /// `supervisor.log` in the container's directory. Returns once the container runs (or has
    /// already ended: check the state).
    pub async fn start_detached(
        &self,
        container: &mut Container,
        mut supervisor: Command,
    ) -> Result<()> {
        use std::os::unix::process::CommandExt;
        if container.is_running() {
            return Err(ContainerError::AlreadyRunning {
                id: container.id().to_owned(),
            });
        }
        // The supervisor's own messages; the container's output goes to its log.
        let log_path = container.dir.join("supervisor.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .at("open", &log_path)?;
        let log2 = log.try_clone().at("duplicate", &log_path)?;
        supervisor
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2);
        // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            supervisor.pre_exec(|| {
                rustix::process::setsid()?;
                Ok(())
            });
        }
        let before = (container.state.started_at, container.state.finished_at);
        let mut child = supervisor
            .spawn()
            .at("start the supervisor of", container.dir.clone())?;
        let executor = self.executor()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.refresh(container) {
                Ok(()) => {}
                // `--rm`: the supervisor already removed the container it ran.
                Err(ContainerError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            // This start ran (or failed before running) once either time moved.
            let started = (container.state.started_at, container.state.finished_at) != before;
            match container.state.status {
                Status::Exited if started => return Ok(()),
                Status::Running => {
                    // "stopped" may be a process that could not be executed: wait for the
                    // owner's record then.
                    if let Some(state) = executor.state(container.id()).await?
                        && state.status == "running"
                        && state.pid.is_some_and(executed)
                    {
                        return Ok(());
                    }
                }
                _ => {}
            }
            if let Ok(Some(_)) = child.try_wait()
                && !started
            {
                return Err(ContainerError::SupervisorFailed {
                    id: container.id().to_owned(),
                    log: log_path,
                });
            }
            if Instant::now() > deadline {
                // Still starting: the supervisor owns it; report it as started.
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (name or number) to a running container.
    pub async fn kill(&self, container: &Container, signal: &str) -> Result<()> {
        let number = parse_signal(signal)?;
        if !container.is_running() {
            return Err(ContainerError::NotRunning {
                id: container.id().to_owned(),
            });
        }
        self.executor()?
            .kill(container.id(), &number.to_string())
            .await?;
        Ok(())
    }

    /// docker's stop: the image's `StopSignal` (SIGTERM by default), then SIGKILL after
    /// `timeout`. Stopping a stopped container does nothing.
    pub async fn stop(&self, container: &mut Container, timeout: Duration) -> Result<()> {
        self.refresh(container)?;
        if !container.is_running() {
            return Ok(());
        }
        let signal = parse_signal(container.config.stop_signal.as_deref().unwrap_or("TERM"))?;
        let executor = self.executor()?;
        let deadline = Instant::now() + timeout;
        let mut sent = false;
        while Instant::now() < deadline {
            if !sent {
                // Fails while the runtime is still creating the container: retry.
                sent = executor
                    .kill(container.id(), &signal.to_string())
                    .await
                    .is_ok();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.refresh(container)?;
            if !container.is_running() {
                return Ok(());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while container.is_running() && Instant::now() < deadline {
            let _ = executor.kill(container.id(), "9").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.refresh(container)?;
        }
        Ok(())
    }

    /// Waits until the container has exited and returns its exit code.
    pub async fn wait(&self, container: &mut Container) -> Result<i32> {
        loop {
            self.refresh(container)?;
            if container.state.status == Status::Exited {
                return Ok(container.state.exit_code.unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether process `pid` (a container's init) has executed the container's program: until
/// then it is the runtime's own init (`runc init`, run from a copy of the runtime binary),
/// and a program that cannot be executed fails while still being that.
fn executed(pid: i32) -> bool {
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => !exe.to_string_lossy().contains("runc"),
        // Gone already: it ran (or failed); the owner's record tells which.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_failures_map_to_docker_codes() {
        let cases = [
            (
                "unable to start container process: exec: \"nope\": executable file not found in $PATH",
                127,
            ),
            (
                "unable to start container process: exec: \"/nope\": stat /nope: no such file or directory",
                127,
            ),
            (
                "unable to start container process: exec: \"/etc\": permission denied",
                126,
            ),
            ("cgroup setup failed", 125),
        ];
        for (message, code) in cases {
            assert_eq!(start_failure_code(message), code, "{message}");
        }
    }
}
