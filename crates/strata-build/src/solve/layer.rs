//! Layers and snapshots during a build.
//!
//! Every layer of a stage's filesystem is a committed store snapshot keyed by its chain id, in
//! the overlay-diff format, so a step mounts its parent chain as overlay lowers without
//! copying anything. Base image layers are unpacked into snapshots the first time a build uses
//! them. A step that changes the filesystem runs on a writable view whose upper directory is a
//! prepared snapshot; afterwards the upper directory *is* the diff: it is written as an
//! uncompressed layer tar straight into the store (digested while streaming) and the prepared
//! snapshot is committed under the new chain id, ready to be the next step's lower. A step
//! whose upper directory is empty produces no layer (BuildKit marks such history entries
//! `empty_layer`).

use crate::solve::BuildError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use strata_image::Digest;
use strata_runtime::{ActiveSnapshot, Snapshotter, UpperDir};
use strata_store::{PreparedSnapshot, Store};

/// One layer of a stage's filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The chain id of the layers up to and including this one.
    pub chain_id: Digest,
    /// The blob in the store (compressed for pulled images, the tar itself for built layers).
    pub blob: Digest,
    /// The blob's size.
    pub blob_size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// The chain id of `diff_id` on top of `parent` (strata-image's OCI formula).
pub use strata_image::chain_id_on as chain_id;

/// Makes sure every layer of `layers` (bottom first) is unpacked as a snapshot.
pub fn ensure_snapshots(store: &Store, layers: &[Layer]) -> Result<(), BuildError> {
    let blobs: Vec<(Digest, Digest)> = layers.iter().map(|l| (l.blob, l.diff_id)).collect();
    store.ensure_snapshots(&blobs)?;
    Ok(())
}

/// Makes sure the top layer of `layers` (a diff rebased onto the chain below it, as a
/// `COPY --link` layer is) has a snapshot under its chain id. A diff's snapshot directory does
/// not depend on what is below it, so when `own_chain` (the diff's snapshot on another chain)
/// exists, its tree is recreated with every non-directory hard-linked (committed snapshots are
/// never written to); otherwise the blob is unpacked.
pub fn rebase_snapshot(
    store: &Store,
    own_chain: &Digest,
    layers: &[Layer],
) -> Result<(), BuildError> {
    let Some((top, below)) = layers.split_last() else {
        return Ok(());
    };
    if store.snapshot(&top.chain_id)?.is_some() {
        return Ok(());
    }
    let Some(source) = store.snapshot(own_chain)? else {
        return ensure_snapshots(store, layers);
    };
    ensure_snapshots(store, below)?;
    let prepared = store.prepare_snapshot()?;
    clone_tree(&source.dir, &prepared.dir)
        .map_err(|(path, source)| BuildError::Io { path, source })?;
    let parent = below.last().map(|l| l.chain_id);
    store.commit_snapshot(prepared, top.chain_id, top.diff_id, parent)?;
    Ok(())
}

/// Recreates the directories of `from` in the empty directory `to` (owner, mode, xattrs
/// including overlayfs's opaque marker, times) and hard-links everything else. Iterative: a
/// tree can be deeper than a stack.
fn clone_tree(from: &Path, to: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    struct Frame {
        path: PathBuf,
        src: rustix::fd::OwnedFd,
        dst: rustix::fd::OwnedFd,
        names: std::vec::IntoIter<std::ffi::OsString>,
        stat: rustix::fs::Stat,
    }
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = |path: &Path| {
        rustix::fs::open(path, dir_flags, Mode::empty()).map_err(|e| (path.to_path_buf(), e.into()))
    };
    let frame = |path: PathBuf, src: rustix::fd::OwnedFd, dst: rustix::fd::OwnedFd| {
        let err = |e: rustix::io::Errno| (path.clone(), std::io::Error::from(e));
        let stat = rustix::fs::fstat(&src).map_err(err)?;
        let mut names = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&src).map_err(err)?;
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                use std::os::unix::ffi::OsStrExt;
                names.push(std::ffi::OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok::<_, (PathBuf, std::io::Error)>(Frame {
            path,
            src,
            dst,
            names: names.into_iter(),
            stat,
        })
    };
    let mut stack = vec![frame(from.to_path_buf(), open(from)?, open(to)?)?];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            let Some(done) = stack.pop() else { break };
            finish_dir(&done.src, &done.dst, &done.stat).map_err(|e| (done.path.clone(), e))?;
            continue;
        };
        let path = top.path.join(&name);
        let err = |e: rustix::io::Errno| (path.clone(), std::io::Error::from(e));
        let stat = rustix::fs::statat(&top.src, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(err)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            rustix::fs::linkat(&top.src, &name, &top.dst, &name, AtFlags::empty()).map_err(err)?;
            continue;
        }
        rustix::fs::mkdirat(&top.dst, &name, Mode::from_raw_mode(0o700)).map_err(err)?;
        let src = rustix::fs::openat(&top.src, &name, dir_flags, Mode::empty()).map_err(err)?;
        let dst = rustix::fs::openat(&top.dst, &name, dir_flags, Mode::empty()).map_err(err)?;
        stack.push(frame(path, src, dst)?);
    }
    Ok(())
}

/// Gives the directory `dst` the owner, mode, xattrs and times of `src` (once its entries are
/// in, which change its mtime).
fn finish_dir(
    src: &rustix::fd::OwnedFd,
    dst: &rustix::fd::OwnedFd,
    stat: &rustix::fs::Stat,
) -> std::io::Result<()> {
    use rustix::fs::{Gid, Mode, Timespec, Timestamps, Uid};
    rustix::fs::fchown(
        dst,
        Some(Uid::from_raw(stat.st_uid)),
        Some(Gid::from_raw(stat.st_gid)),
    )?;
    rustix::fs::fchmod(dst, Mode::from_raw_mode(stat.st_mode & 0o7777))?;
    let mut names = vec![0u8; 64 * 1024];
    let n = match rustix::fs::flistxattr(src, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => 0,
        Err(e) => return Err(e.into()),
    };
    let mut value = vec![0u8; 64 * 1024];
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(name);
        let len = rustix::fs::fgetxattr(src, name, &mut value[..])?;
        rustix::fs::fsetxattr(dst, name, &value[..len], rustix::fs::XattrFlags::empty())?;
    }
    let ts = |sec: i64, nsec: i64| Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::futimens(
        dst,
        &Timestamps {
            last_access: ts(stat.st_atime, stat.st_atime_nsec as i64),
            last_modification: ts(stat.st_mtime, stat.st_mtime_nsec as i64),
        },
    )?;
    Ok(())
}

/// The snapshot directories of `layers`, top first (overlay's lowerdir order).
pub fn lower_dirs(store: &Store, layers: &[Layer]) -> Result<Vec<PathBuf>, BuildError> {
    let chain: Vec<Digest> = layers.iter().map(|l| l.chain_id).collect();
    match store.lower_dirs(&chain)? {
        Some(dirs) => Ok(dirs),
        None => {
            ensure_snapshots(store, layers)?;
            store.lower_dirs(&chain)?.ok_or(BuildError::SnapshotMissing)
        }
    }
}

/// A mount directory that is removed when dropped (it is empty again once the view ends).
#[derive(Debug)]
pub struct MountDir {
    path: PathBuf,
}

impl MountDir {
    /// A fresh empty directory under `<store>/mounts`.
    pub fn new(store: &Store) -> Result<Self, BuildError> {
        let base = store.root().join("mounts");
        std::fs::create_dir_all(&base).map_err(|source| BuildError::Io {
            path: base.clone(),
            source,
        })?;
        let mut n = std::process::id() as u64 * 1_000_000 + u64::from(rand_u32() % 1_000_000);
        loop {
            let path = base.join(format!("m{n}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(source) => return Err(BuildError::Io { path, source }),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MountDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

/// A writable view of a chain of layers for one step.
#[derive(Debug)]
pub struct WritableView {
    // Field order is drop order: unmount, then drop the upper directory, then the mount point.
    active: Option<ActiveSnapshot>,
    prepared: PreparedSnapshot,
    mount: MountDir,
}

impl WritableView {
    /// Mounts `layers` (bottom first) with a fresh upper directory.
    pub fn prepare(
        store: &Store,
        snapshotter: &dyn Snapshotter,
        layers: &[Layer],
    ) -> Result<Self, BuildError> {
        let lowers = lower_dirs(store, layers)?;
        let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        let prepared = store.prepare_snapshot()?;
        let mount = MountDir::new(store)?;
        let upper = UpperDir::new(&prepared.dir, &prepared.work_dir);
        let active = snapshotter.prepare(&lower_refs, Some(&upper), mount.path())?;
        Ok(Self {
            active: Some(active),
            prepared,
            mount,
        })
    }

    /// The root of the view.
    pub fn root(&self) -> &Path {
        self.mount.path()
    }

    /// Ends the view and turns its changes into a layer on top of `parent` (the chain id of the
    /// last layer below, if any): `None` when nothing changed.
    pub fn commit(
        self,
        store: &Store,
        snapshotter: &dyn Snapshotter,
        parent: Option<&Digest>,
        source_date_epoch: Option<i64>,
    ) -> Result<Option<Layer>, BuildError> {
        self.commit_with(store, snapshotter, parent, source_date_epoch, |_| Ok(()))
    }

    /// [`WritableView::commit`], with `finish` run on the upper directory once the view is
    /// unmounted and before the directory becomes the layer: for changes made in the upper
    /// directory itself, such as files hard-linked from another snapshot (overlayfs cannot link
    /// across its mount, and the upper directory must not change while it is mounted).
    pub fn commit_with(
        mut self,
        store: &Store,
        snapshotter: &dyn Snapshotter,
        parent: Option<&Digest>,
        source_date_epoch: Option<i64>,
        finish: impl FnOnce(&Path) -> Result<(), BuildError>,
    ) -> Result<Option<Layer>, BuildError> {
        if let Some(active) = self.active.take() {
            snapshotter.commit(active)?;
        }
        let upper = self.prepared.dir.clone();
        finish(&upper)?;
        let empty = std::fs::read_dir(&upper)
            .map_err(|source| BuildError::Io {
                path: upper.clone(),
                source,
            })?
            .next()
            .is_none();
        if empty {
            return Ok(None);
        }
        let ingest = store.ingest()?;
        let opts = strata_layer::WriteOptions {
            source_date_epoch,
            exclude: None,
        };
        // The layer is stored uncompressed, so the ingest's digest of it is the diff_id: the
        // tar is digested once, by the ingest, on a second thread while this one walks the
        // upper directory and reads the files.
        let ingest = pipelined(ingest, |out| {
            strata_layer::write_overlay_diff_unhashed(&upper, out, &opts)
        })?;
        let (diff_id, blob_size) = ingest.commit(None)?;
        let chain = chain_id(parent, &diff_id);
        store.commit_snapshot(self.prepared, chain, diff_id, parent.copied())?;
        Ok(Some(Layer {
            diff_id,
            chain_id: chain,
            blob: diff_id,
            blob_size,
            media_type: strata_image::media::OCI_LAYER.to_string(),
        }))
    }

    /// Ends the view and discards its changes.
    pub fn discard(mut self, snapshotter: &dyn Snapshotter) {
        if let Some(active) = self.active.take() {
            let _ = snapshotter.remove(active);
        }
    }
}

/// Runs `produce` with a writer whose bytes are written to `sink` by a second thread, in
/// chunks, so producing (walking, reading) and consuming (digesting, writing) overlap. Returns
/// the sink once everything is written; a sink failure is reported rather than the producer's
/// "broken pipe".
fn pipelined<S, E>(
    sink: S,
    produce: impl FnOnce(ChunkSender) -> Result<u64, E>,
) -> Result<S, BuildError>
where
    S: std::io::Write + Send,
    BuildError: From<E>,
{
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let consumer = scope.spawn(move || -> std::io::Result<S> {
            let mut sink = sink;
            for chunk in rx {
                sink.write_all(&chunk)?;
            }
            sink.flush()?;
            Ok(sink)
        });
        let produced = produce(ChunkSender {
            tx,
            buf: Vec::with_capacity(CHUNK),
        });
        let consumed = consumer.join().map_err(|_| BuildError::Io {
            path: "<layer writer thread>".into(),
            source: std::io::Error::other("the layer writer thread panicked"),
        })?;
        match (produced, consumed) {
            (_, Err(source)) => Err(BuildError::Io {
                path: "<layer blob>".into(),
                source,
            }),
            (Err(e), Ok(_)) => Err(e.into()),
            (Ok(_), Ok(sink)) => Ok(sink),
        }
    })
}

const CHUNK: usize = 1 << 20;

/// The producing end of [`pipelined`]: buffers writes into chunks sent to the consumer.
struct ChunkSender {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// A read-only view of a chain of layers (a `COPY --from` source).
#[derive(Debug)]
pub struct ReadView {
    mount: MountDir,
    active: Option<ActiveSnapshot>,
    snapshotter: std::sync::Arc<dyn Snapshotter>,
}

impl ReadView {
    /// Mounts `layers` (bottom first) read-only.
    pub fn prepare(
        store: &Store,
        snapshotter: std::sync::Arc<dyn Snapshotter>,
        layers: &[Layer],
    ) -> Result<Self, BuildError> {
        let lowers = lower_dirs(store, layers)?;
        let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        let mount = MountDir::new(store)?;
        let active = snapshotter.prepare(&lower_refs, None, mount.path())?;
        Ok(Self {
            mount,
            active: Some(active),
            snapshotter,
        })
    }

    /// The root of the view.
    pub fn root(&self) -> &Path {
        self.mount.path()
    }
}

impl Drop for ReadView {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            let _ = self.snapshotter.remove(active);
        }
    }
}
