//! The container records in a store: `containers/<id>/` holding `config.json` (fixed at create),
//! `state.json` (rewritten atomically at each transition), `upper`/`work` (the container's
//! overlay changes), `rootfs` (the mount point), `log` (a detached container's output) and
//! `lock`.
//!
//! **Ownership and crash safety.** The process running a container (`strata run` itself, or
//! the `-d` supervisor) holds an exclusive `flock` on its `lock` file for as long as the
//! container runs, and writes `running` only while holding it. A `running` record whose lock is
//! free therefore belongs to a dead owner (a SIGKILLed supervisor, say): every reader
//! reconciles such a record, killing and deleting whatever the runtime still has, unmounting the
//! rootfs and recording the container as exited with 137. Unlike a pid check this cannot be
//! fooled by pid reuse; the owner's pid and start time are still recorded for `inspect`.
//!
//! Each container registers its image's manifest and snapshots as store GC roots
//! (`roots/container-<id>`), so image pruning never removes what a container runs on.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use strata_runtime::{RuncExecutor, RuntimeKind};
use strata_store::{Roots, Store};

use crate::error::{ContainerError, IoContext, Result};
use crate::names;
use crate::record::{ContainerConfig, CreateOptions, ImageDefaults, State, Status, resolve};
use crate::rootfs;

/// A container: its config and its (reconciled) state.
#[derive(Debug, Clone)]
pub struct Container {
    pub config: ContainerConfig,
    pub state: State,
    /// `containers/<id>`.
    pub dir: PathBuf,
}

impl Container {
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The first 12 hex digits, as docker shows ids.
    pub fn short_id(&self) -> &str {
        &self.config.id[..12]
    }

    pub fn is_running(&self) -> bool {
        self.state.status == Status::Running
    }

    pub fn upper_dir(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The output of a detached container.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }
}

/// An exclusive hold on a container (see the module docs); released when dropped.
#[derive(Debug)]
pub struct ContainerLock {
    _file: File,
}

/// The containers of one store.
#[derive(Debug)]
pub struct Containers<'s> {
    store: &'s Store,
    dir: PathBuf,
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers see the old or
/// the new content, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).at("create", &tmp)?;
    file.write_all(bytes).at("write", &tmp)?;
    file.sync_all().at("sync", &tmp)?;
    fs::rename(&tmp, path).at("rename into place", path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let bytes = fs::read(path).at("read", path)?;
    serde_json::from_slice(&bytes).map_err(|source| ContainerError::Json {
        what,
        path: path.to_owned(),
        source,
    })
}

fn write_json<T: serde::Serialize>(path: &Path, what: &'static str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| ContainerError::Json {
        what,
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

impl<'s> Containers<'s> {
    /// The containers of `store` (creating `containers/` if needed).
    pub fn open(store: &'s Store) -> Result<Self> {
        let dir = store.root().join("containers");
        fs::create_dir_all(&dir).at("create directory", &dir)?;
        Ok(Self { store, dir })
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// The OCI runtime the containers run under (its state lives in `containers/.runtime`).
    pub fn executor(&self) -> Result<RuncExecutor> {
        Ok(RuncExecutor::new(
            RuntimeKind::Runc,
            &self.dir.join(".runtime"),
        )?)
    }

    /// Serializes name allocation between processes.
    fn names_lock(&self) -> Result<File> {
        let path = self.dir.join(".names.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("open", &path)?;
        file.lock().at("lock", &path)?;
        Ok(file)
    }

    /// Creates a container from `image_query` (a reference, or an image id or prefix): the
    /// image's snapshots are unpacked if needed, the record written, the image rooted.
    pub fn create(&self, image_query: &str, options: &CreateOptions) -> Result<Container> {
        let image = self.store.resolve(image_query)?;
        let image_config =
            strata_image::ImageConfig::from_slice(&image.config_bytes).map_err(|source| {
                ContainerError::ImageConfig {
                    image: image.config_digest,
                    source,
                }
            })?;
        let defaults = ImageDefaults::of(&image_config);
        let id = names::new_id()?;
        let hostname = id[..12].to_owned();
        let resolved = resolve(&defaults, options)?;
        let (_, chain_ids) = rootfs::image_layers(&image)?;
        let requested = options
            .name
            .as_deref()
            .map(names::validate_name)
            .transpose()?;

        let _names = self.names_lock()?;
        let existing = self.list_records()?;
        let name = match requested {
            Some(name) => {
                if let Some(other) = existing.iter().find(|c| c.name == name) {
                    return Err(ContainerError::NameInUse {
                        name,
                        id: other.id.clone(),
                    });
                }
                name
            }
            None => {
                let mut attempt = 0;
                loop {
                    let candidate = names::random_name(attempt)?;
                    if !existing.iter().any(|c| c.name == candidate) {
                        break candidate;
                    }
                    attempt += 1;
                }
            }
        };
        let config = ContainerConfig {
            id: id.clone(),
            name,
            image: image_query.to_owned(),
            image_id: image.config_digest,
            manifest: image.manifest_digest,
            chain_ids: chain_ids.clone(),
            created: Utc::now(),
            entrypoint: resolved.entrypoint,
            cmd: resolved.cmd,
            env: resolved.env,
            working_dir: resolved.working_dir,
            user: resolved.user,
            hostname,
            network: options.network,
            mounts: options.mounts.clone(),
            ports: options.ports.clone(),
            tty: options.tty,
            interactive: options.interactive,
            auto_remove: options.auto_remove,
            stop_signal: defaults.stop_signal,
        };
        // Root the image before unpacking its layers, so a concurrent GC keeps them.
        self.store.set_roots(
            &roots_name(&id),
            &Roots {
                manifests: vec![image.manifest_digest],
                blobs: Vec::new(),
                chain_ids,
            },
        )?;
        let dir = self.dir.join(&id);
        let staging = self.dir.join(format!(".creating-{id}"));
        for sub in ["upper", "work", "rootfs"] {
            let path = staging.join(sub);
            fs::create_dir_all(&path).at("create directory", &path)?;
        }
        write_json(&staging.join("config.json"), "container config", &config)?;
        write_json(
            &staging.join("state.json"),
            "container state",
            &State::created(),
        )?;
        // The container exists (and its name is taken) from this rename on.
        fs::rename(&staging, &dir).at("create container directory", &dir)?;
        drop(_names);
        rootfs::ensure_snapshots(self.store, &image)?;
        Ok(Container {
            config,
            state: State::created(),
            dir,
        })
    }

    fn list_records(&self) -> Result<Vec<ContainerConfig>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).at("read directory", &self.dir)? {
            let entry = entry.at("read directory", &self.dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let path = entry.path().join("config.json");
            match read_json::<ContainerConfig>(&path, "container config") {
                Ok(config) => out.push(config),
                // Removed while we listed it.
                Err(ContainerError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn load(&self, config: ContainerConfig) -> Result<Container> {
        let dir = self.dir.join(&config.id);
        let state = read_json(&dir.join("state.json"), "container state")?;
        let mut container = Container { config, state, dir };
        self.reconcile(&mut container)?;
        Ok(container)
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for config in self.list_records()? {
            out.push(self.load(config)?);
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.config.created));
        Ok(out)
    }

    /// A container by full id, unique id prefix, or name (docker's lookup order).
    pub fn get(&self, query: &str) -> Result<Container> {
        let records = self.list_records()?;
        let query_name = query.strip_prefix('/').unwrap_or(query);
        if let Some(c) = records.iter().find(|c| c.id == query) {
            return self.load(c.clone());
        }
        if let Some(c) = records.iter().find(|c| c.name == query_name) {
            return self.load(c.clone());
        }
        let matches: Vec<&ContainerConfig> = if query.is_empty() {
            Vec::new()
        } else {
            records.iter().filter(|c| c.id.starts_with(query)).collect()
        };
        match matches.as_slice() {
            [one] => self.load((*one).clone()),
            [] => Err(ContainerError::NotFound {
                query: query.to_owned(),
            }),
            many => Err(ContainerError::Ambiguous {
                query: query.to_owned(),
                matches: many.iter().map(|c| c.id[..12].to_owned()).collect(),
            }),
        }
    }

    /// Re-reads a container's state.
    pub fn refresh(&self, container: &mut Container) -> Result<()> {
        container.state = read_json(&container.dir.join("state.json"), "container state")?;
        self.reconcile(container)
    }

    pub(crate) fn write_state(&self, container: &mut Container, state: State) -> Result<()> {
        write_json(&container.dir.join("state.json"), "container state", &state)?;
        container.state = state;
        Ok(())
    }

    fn open_lock(container: &Container) -> Result<File> {
        let path = container.lock_path();
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("open", &path)
    }

    /// Takes the container's lock, waiting for its holder (a short-lived one: `cp`, `commit`,
    /// a reconciling reader; or the owner of a running container until it ends).
    pub(crate) fn lock(&self, container: &Container) -> Result<ContainerLock> {
        let file = Self::open_lock(container)?;
        file.lock().at("lock", container.lock_path())?;
        Ok(ContainerLock { _file: file })
    }

    /// Takes the container's lock if nobody holds it.
    pub(crate) fn try_lock(&self, container: &Container) -> Result<Option<ContainerLock>> {
        let file = Self::open_lock(container)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ContainerLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e).at("lock", container.lock_path()),
        }
    }

    /// A `running` record whose owner is gone becomes `exited` (see the module docs).
    fn reconcile(&self, container: &mut Container) -> Result<()> {
        if container.state.status != Status::Running {
            return Ok(());
        }
        let Some(_lock) = self.try_lock(container)? else {
            return Ok(()); // the owner is alive
        };
        // Re-read under the lock: the owner may have finished cleanly in between.
        container.state = read_json(&container.dir.join("state.json"), "container state")?;
        if container.state.status != Status::Running {
            return Ok(());
        }
        self.kill_orphan(container.id());
        rootfs::unmount(&container.rootfs())?;
        let mut state = container.state.clone();
        state.status = Status::Exited;
        state.exit_code = Some(137);
        state.finished_at = Some(Utc::now());
        state.owner_pid = None;
        state.owner_start = None;
        state.error = Some("the process that ran the container was killed".to_owned());
        self.write_state(container, state)
    }

    /// Kills and deletes what the runtime may still run for a container whose owner died.
    fn kill_orphan(&self, id: &str) {
        let runtime = self.dir.join(".runtime");
        let _ = std::process::Command::new(RuntimeKind::Runc.name())
            .arg("--root")
            .arg(runtime.join(RuntimeKind::Runc.name()))
            .args(["delete", "--force", id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = fs::remove_dir_all(runtime.join("bundles").join(id));
    }

    /// Removes a stopped container: its rootfs mount, directory and GC roots.
    pub fn remove(&self, container: &Container) -> Result<()> {
        let lock = self.lock(container)?;
        let state: State = read_json(&container.dir.join("state.json"), "container state")?;
        if state.status == Status::Running {
            return Err(ContainerError::Running {
                id: container.id().to_owned(),
            });
        }
        rootfs::unmount(&container.rootfs())?;
        if rootfs::is_mounted(&container.rootfs()) {
            return Err(ContainerError::StillMounted {
                id: container.id().to_owned(),
                target: container.rootfs(),
            });
        }
        // Rename first so a crash mid-removal leaves no half container behind in listings.
        let doomed = self.dir.join(format!(".removing-{}", container.id()));
        fs::rename(&container.dir, &doomed).at("remove", &container.dir)?;
        drop(lock);
        match fs::remove_dir_all(&doomed) {
            // `container prune` may be removing the same leftover.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).at("remove", &doomed);
            }
            _ => {}
        }
        self.store.remove_roots(&roots_name(container.id()))?;
        Ok(())
    }

    /// Removes what crashed `create`s and `rm`s left behind: `.removing-*` directories (their
    /// container was already gone) and `.creating-*` ones older than an hour (a create in
    /// progress takes seconds). Returns how many were removed.
    pub fn remove_leftovers(&self) -> Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).at("read directory", &self.dir)? {
            let entry = entry.at("read directory", &self.dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = if name.starts_with(".removing-") {
                true
            } else if name.starts_with(".creating-") {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600))
            } else {
                false
            };
            if stale {
                let path = entry.path();
                rootfs::unmount(&path.join("rootfs"))?;
                // Another process may be finishing the same removal.
                match fs::remove_dir_all(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).at("remove", &path),
                }
            }
        }
        Ok(removed)
    }

    /// Records a started container under its owner's lock.
    pub(crate) fn mark_running(&self, container: &mut Container) -> Result<()> {
        let pid = std::process::id() as i32;
        let state = State {
            status: Status::Running,
            owner_pid: Some(pid),
            owner_start: process_start_time(pid),
            started_at: Some(Utc::now()),
            finished_at: None,
            exit_code: None,
            error: None,
        };
        self.write_state(container, state)
    }

    /// Records a container's end.
    pub(crate) fn mark_exited(
        &self,
        container: &mut Container,
        exit_code: i32,
        error: Option<String>,
    ) -> Result<()> {
        let mut state = container.state.clone();
        state.status = Status::Exited;
        state.exit_code = Some(exit_code);
        state.finished_at = Some(Utc::now());
        state.owner_pid = None;
        state.owner_start = None;
        state.error = error;
        self.write_state(container, state)
    }

    /// The image snapshots of a container, top-first (unpacked again if GC'd meanwhile).
    pub(crate) fn lowers(&self, container: &Container) -> Result<Vec<PathBuf>> {
        if let Some(dirs) = self.store.lower_dirs(&container.config.chain_ids)? {
            return Ok(dirs);
        }
        let image = self.store.image(&container.config.manifest)?;
        rootfs::ensure_snapshots(self.store, &image)
    }

    /// Mounts the container's rootfs (an empty lower stands in for an image without layers).
    pub(crate) fn mount(&self, container: &Container) -> Result<()> {
        let mut lowers = self.lowers(container)?;
        if lowers.is_empty() {
            let empty = container.dir.join("empty");
            fs::create_dir_all(&empty).at("create directory", &empty)?;
            lowers.push(empty);
        }
        rootfs::mount(
            container.id(),
            &lowers,
            &container.upper_dir(),
            &container.work_dir(),
            &container.rootfs(),
        )
    }

    /// Runs `f` on the container's root filesystem: the live one when it runs, otherwise a
    /// temporary mount held under the container's lock.
    pub fn with_rootfs<T>(
        &self,
        container: &Container,
        f: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        loop {
            if let Some(lock) = self.try_lock(container)? {
                let state: State = read_json(&container.dir.join("state.json"), "container state")?;
                if state.status == Status::Running {
                    // The owner died: reconcile (needs the lock), then retry.
                    drop(lock);
                    let mut fresh = container.clone();
                    self.refresh(&mut fresh)?;
                    continue;
                }
                self.mount(container)?;
                let result = f(&container.rootfs());
                let unmounted = rootfs::unmount(&container.rootfs());
                drop(lock);
                let value = result?;
                unmounted?;
                return Ok(value);
            }
            // Held by the running owner (its rootfs is mounted and stays so while it runs), or
            // briefly by another reader with a temporary mount of its own: wait for that one.
            let state: State = read_json(&container.dir.join("state.json"), "container state")?;
            if state.status == Status::Running && rootfs::is_mounted(&container.rootfs()) {
                return f(&container.rootfs());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn roots_name(id: &str) -> String {
    format!("container-{id}")
}
