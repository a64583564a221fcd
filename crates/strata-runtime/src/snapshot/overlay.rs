//! The overlayfs snapshotter.
//!
//! Mounted through the new mount API: `fsopen("overlay")`, one `fsconfig(lowerdir+)` per lower,
//! `upperdir`/`workdir` and the options through `fsconfig`, then `fsconfig(CMD_CREATE)`,
//! `fsmount` and `move_mount`. Passing lowers one by one avoids the classic `mount(2)` limit:
//! its option string is cut at the page size, which allows only ~37 lowers with absolute store
//! paths, while `lowerdir+` reaches overlayfs's own stack limit of 500.
//!
//! On kernels without `fsopen` (before 5.2) or without `lowerdir+` (before 6.8) the classic
//! `mount(2)` is used, with containerd's trick when the options would not fit a page: the mount
//! runs in a helper thread that has its own working directory (`unshare(CLONE_FS)`), chdir'd to
//! the lowers' common parent, so the lowers can be named by short relative paths.
//!
//! The options keep the upper directory a plain diff: `index=off` (no hard-link index),
//! `redirect_dir=off` (renaming a lower directory copies it instead of leaving a redirect xattr)
//! and `metacopy=off` (a chmod copies the whole file instead of leaving a metadata-only stub).
//! `userxattr` is deliberately not used: it is for unprivileged mounts in a user namespace and
//! would make overlayfs read `user.overlay.*`, while the store's layers mark opaque directories
//! with `trusted.overlay.opaque`.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use super::{ActiveSnapshot, MergedLowers, SnapshotError, Snapshotter, UpperDir, check_dir};
use crate::fsutil::{IoContext, clear_dir, is_opaque, lstat, same_node, sorted_entries};

/// Overlayfs's limit on stacked lower layers (`OVL_MAX_STACK`).
pub const MAX_LOWERS: usize = 500;

/// The options that keep the upper directory a plain diff (see the module docs).
const PLAIN_DIFF_OPTIONS: [(&str, &str); 3] = [
    ("index", "off"),
    ("redirect_dir", "off"),
    ("metacopy", "off"),
];

/// Which mount interface to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountApi {
    /// The new mount API, falling back to classic `mount(2)` when the kernel lacks it.
    #[default]
    Auto,
    /// Only the new mount API.
    New,
    /// Only classic `mount(2)` (with containerd's relative-path trick for long option strings).
    Classic,
}

/// Mounts overlayfs views. See the module docs.
#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    /// Two empty directories: the lower of a `FROM scratch` view, and the second lower of a
    /// read-only view of one layer (overlayfs needs two lowers when there is no upper, and
    /// refuses the same directory twice).
    empty: [PathBuf; 2],
    api: MountApi,
}

impl OverlaySnapshotter {
    /// A snapshotter keeping its small state (an empty directory) under `state_dir`.
    pub fn new(state_dir: &Path) -> Result<Self, SnapshotError> {
        let empty = [state_dir.join("empty"), state_dir.join("empty-bottom")];
        for dir in &empty {
            std::fs::create_dir_all(dir).at("create directory", dir)?;
            check_dir("empty lower", dir, true)?;
        }
        Ok(Self {
            empty,
            api: MountApi::Auto,
        })
    }

    /// Choose the mount interface (tests exercise both).
    pub fn with_mount_api(mut self, api: MountApi) -> Self {
        self.api = api;
        self
    }

    fn effective_lowers(&self, lowers: &[&Path], writable: bool) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = lowers.iter().map(|p| p.to_path_buf()).collect();
        let needed = if writable { 1 } else { 2 };
        for empty in &self.empty {
            if out.len() < needed {
                out.push(empty.clone());
            }
        }
        out
    }

    fn mount(
        &self,
        lowers: &[PathBuf],
        upper: Option<&UpperDir>,
        target: &Path,
    ) -> Result<(), SnapshotError> {
        match self.api {
            MountApi::New => mount_new_api(lowers, upper, target).map_err(|f| f.into_error(target)),
            MountApi::Classic => mount_classic(lowers, upper, target),
            MountApi::Auto => match mount_new_api(lowers, upper, target) {
                Ok(()) => Ok(()),
                Err(failure) if failure.api_missing() => mount_classic(lowers, upper, target),
                Err(failure) => Err(failure.into_error(target)),
            },
        }
    }

    fn release(&self, active: &mut ActiveSnapshot) -> Result<(), SnapshotError> {
        if active.mounted {
            unmount(&active.target)?;
            active.disarm();
        }
        if let Some(upper) = &active.upper {
            // Overlayfs leaves `work/work` (and `work/index`) behind: scratch, never content.
            clear_dir(&upper.work)?;
        }
        Ok(())
    }
}

/// Unmount, lazily when the mount is still busy (a process that has not quite exited).
fn unmount(target: &Path) -> Result<(), SnapshotError> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(|e| {
            SnapshotError::Unmount {
                target: target.to_path_buf(),
                source: e.into(),
            }
        }),
        Err(e) => Err(SnapshotError::Unmount {
            target: target.to_path_buf(),
            source: e.into(),
        }),
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn prepare(
        &self,
        lowers: &[&Path],
        upper: Option<&UpperDir>,
        target: &Path,
    ) -> Result<ActiveSnapshot, SnapshotError> {
        if lowers.len() > MAX_LOWERS {
            return Err(SnapshotError::TooManyLowers {
                count: lowers.len(),
                max: MAX_LOWERS,
            });
        }
        for lower in lowers {
            check_dir("lower", lower, false)?;
        }
        check_dir("target", target, true)?;
        if let Some(upper) = upper {
            check_dir("upper", &upper.upper, true)?;
            check_dir("work", &upper.work, true)?;
        }
        let effective = self.effective_lowers(lowers, upper.is_some());
        self.mount(&effective, upper, target)?;
        Ok(ActiveSnapshot {
            target: target.to_path_buf(),
            lowers: lowers.iter().map(|p| p.to_path_buf()).collect(),
            upper: upper.cloned(),
            mounted: true,
            made_by: self.name(),
        })
    }

    /// Unmounts, then drops from the upper directory the directories overlayfs copied up
    /// without a change left in them (a parent of a mount point the runtime created and the
    /// executor removed again, say), so the layer holds only real changes.
    fn commit(&self, mut active: ActiveSnapshot) -> Result<(), SnapshotError> {
        active.check_made_by(self.name())?;
        let Some(upper) = active.upper.clone() else {
            return Err(SnapshotError::ReadOnly {
                target: active.target.clone(),
            });
        };
        self.release(&mut active)?;
        let lowers = MergedLowers::new(active.lowers.clone());
        for name in sorted_entries(&upper.upper)? {
            prune_unchanged_dirs(&upper.upper, &PathBuf::from(name), &lowers)?;
        }
        Ok(())
    }

    fn remove(&self, mut active: ActiveSnapshot) -> Result<(), SnapshotError> {
        active.check_made_by(self.name())?;
        self.release(&mut active)?;
        if let Some(upper) = &active.upper {
            clear_dir(&upper.upper)?;
        }
        Ok(())
    }
}

/// Remove `upper/rel` and the directories under it that are empty, not opaque and identical
/// to the directory the lowers show at the same path. Returns whether `upper/rel` is gone.
fn prune_unchanged_dirs(
    upper: &Path,
    rel: &Path,
    lowers: &MergedLowers,
) -> Result<bool, SnapshotError> {
    let path = upper.join(rel);
    let Some(meta) = lstat(&path)? else {
        return Ok(true);
    };
    if !meta.is_dir() || is_opaque(&path)? {
        return Ok(false);
    }
    // Children first: the mtime comparison below is on the directory as it is now, and removing
    // an entry from the upper directory after unmounting does not touch it through overlayfs.
    let mut all_gone = true;
    for name in sorted_entries(&path)? {
        all_gone &= prune_unchanged_dirs(upper, &rel.join(name), lowers)?;
    }
    if !all_gone {
        return Ok(false);
    }
    let Some(lower) = lowers.lookup(rel)? else {
        return Ok(false);
    };
    if !lower.meta.is_dir() || !same_node(&path, &meta, &lower.path, &lower.meta)? {
        return Ok(false);
    }
    std::fs::remove_dir(&path).at("remove unchanged directory", &path)?;
    Ok(true)
}

/// A failed step of the new mount API, with what the kernel logged on the context.
struct NewApiFailure {
    step: &'static str,
    errno: Errno,
    kernel_messages: Vec<String>,
}

impl NewApiFailure {
    /// The kernel lacks the API (ENOSYS) or `lowerdir+` (EINVAL on its first use).
    fn api_missing(&self) -> bool {
        self.errno == Errno::NOSYS || (self.step == "lowerdir+" && self.errno == Errno::INVAL)
    }

    fn into_error(self, target: &Path) -> SnapshotError {
        SnapshotError::Mount {
            target: target.to_path_buf(),
            step: self.step,
            kernel_messages: self.kernel_messages,
            source: self.errno.into(),
        }
    }
}

/// Drain the filesystem context's message log (`e …`, `w …`, `i …` lines).
fn kernel_messages(fs_fd: &OwnedFd) -> Vec<String> {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(len) = rustix::io::read(fs_fd, &mut buf) {
        if len == 0 {
            break;
        }
        messages.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        if messages.len() >= 8 {
            break;
        }
    }
    messages
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper: Option<&UpperDir>,
    target: &Path,
) -> Result<(), NewApiFailure> {
    fn fail(step: &'static str, fd: Option<&OwnedFd>, errno: Errno) -> NewApiFailure {
        NewApiFailure {
            step,
            errno,
            kernel_messages: fd.map(kernel_messages).unwrap_or_default(),
        }
    }
    let fs_fd = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| fail("fsopen", None, e))?;
    for lower in lowers {
        rustix::mount::fsconfig_set_string(fs_fd.as_fd(), "lowerdir+", lower.as_path())
            .map_err(|e| fail("lowerdir+", Some(&fs_fd), e))?;
    }
    if let Some(upper) = upper {
        rustix::mount::fsconfig_set_string(fs_fd.as_fd(), "upperdir", upper.upper.as_path())
            .map_err(|e| fail("upperdir", Some(&fs_fd), e))?;
        rustix::mount::fsconfig_set_string(fs_fd.as_fd(), "workdir", upper.work.as_path())
            .map_err(|e| fail("workdir", Some(&fs_fd), e))?;
    }
    for (key, value) in PLAIN_DIFF_OPTIONS {
        rustix::mount::fsconfig_set_string(fs_fd.as_fd(), key, value)
            .map_err(|e| fail("set options", Some(&fs_fd), e))?;
    }
    rustix::mount::fsconfig_create(fs_fd.as_fd()).map_err(|e| fail("create", Some(&fs_fd), e))?;
    let mount_fd = rustix::mount::fsmount(
        fs_fd.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(|e| fail("fsmount", Some(&fs_fd), e))?;
    // Until it is attached, the mount lives only in `mount_fd`: an error here (or any early
    // return) drops the fd, which releases the mount, so nothing is left to unmount.
    rustix::mount::move_mount(
        mount_fd.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", None, e))
}

/// Escape a path for overlayfs's comma- and colon-separated classic options.
fn escape_option_path(path: &Path) -> OsString {
    let mut out = Vec::new();
    for &byte in path.as_os_str().as_bytes() {
        if matches!(byte, b'\\' | b':' | b',') {
            out.push(b'\\');
        }
        out.push(byte);
    }
    std::os::unix::ffi::OsStringExt::from_vec(out)
}

fn classic_options(lowers: &[PathBuf], upper: Option<&UpperDir>) -> Vec<u8> {
    let mut options = b"lowerdir=".to_vec();
    for (index, lower) in lowers.iter().enumerate() {
        if index > 0 {
            options.push(b':');
        }
        options.extend_from_slice(escape_option_path(lower).as_bytes());
    }
    if let Some(upper) = upper {
        options.extend_from_slice(b",upperdir=");
        options.extend_from_slice(escape_option_path(&upper.upper).as_bytes());
        options.extend_from_slice(b",workdir=");
        options.extend_from_slice(escape_option_path(&upper.work).as_bytes());
    }
    for (key, value) in PLAIN_DIFF_OPTIONS {
        options.extend_from_slice(format!(",{key}={value}").as_bytes());
    }
    options
}

/// The longest common ancestor directory of absolute `paths`.
fn common_parent(paths: &[&Path]) -> PathBuf {
    let mut common: Vec<_> = match paths.first() {
        Some(first) => first.components().collect(),
        None => return PathBuf::from("/"),
    };
    for path in &paths[1..] {
        let shared = common
            .iter()
            .zip(path.components())
            .take_while(|(a, b)| **a == *b)
            .count();
        common.truncate(shared);
    }
    // Back up one level so that a path equal to the common prefix is still relative (`name`).
    if paths.iter().any(|p| p.components().count() == common.len()) {
        common.pop();
    }
    common.iter().collect()
}

fn mount_classic(
    lowers: &[PathBuf],
    upper: Option<&UpperDir>,
    target: &Path,
) -> Result<(), SnapshotError> {
    let page_size = rustix::param::page_size();
    let options = classic_options(lowers, upper);
    let mount_error = |errno: Errno| SnapshotError::Mount {
        target: target.to_path_buf(),
        step: "mount(2)",
        kernel_messages: Vec::new(),
        source: errno.into(),
    };
    if options.len() < page_size {
        let data = std::ffi::CString::new(options).map_err(|_| mount_error(Errno::INVAL))?;
        return rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), &*data)
            .map_err(mount_error);
    }
    // containerd's trick: relative lowers from the common parent, in a thread whose working
    // directory is its own so the process's cwd never changes.
    let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    if let Some(upper) = upper {
        all.push(&upper.upper);
        all.push(&upper.work);
    }
    let parent = common_parent(&all);
    let relative = |p: &Path| {
        p.strip_prefix(&parent)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let rel_lowers: Vec<PathBuf> = lowers.iter().map(|p| relative(p)).collect();
    let rel_upper = upper.map(|u| UpperDir::new(relative(&u.upper), relative(&u.work)));
    let options = classic_options(&rel_lowers, rel_upper.as_ref());
    if options.len() >= page_size {
        return Err(mount_error(Errno::TOOBIG));
    }
    let data = std::ffi::CString::new(options).map_err(|_| mount_error(Errno::INVAL))?;
    let target = std::path::absolute(target).at("resolve", target)?;
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(), Errno> {
                // SAFETY: CLONE_FS only gives this thread its own cwd/root/umask; no file
                // descriptor table is unshared, so no other thread's fds are affected.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS)? };
                rustix::process::chdir(&parent)?;
                rustix::mount::mount("overlay", &target, "overlay", MountFlags::empty(), &*data)
            })
            .join()
    });
    match result {
        Ok(inner) => inner.map_err(mount_error),
        Err(_) => Err(mount_error(Errno::INVAL)),
    }
}

/// Whether overlayfs views can be mounted here: mounts a throwaway writable view under
/// `scratch_dir` (which must be on the filesystem the store's snapshots live on).
pub fn overlay_supported(scratch_dir: &Path) -> bool {
    let probe = || -> Result<bool, SnapshotError> {
        let base = scratch_dir.join(format!("overlay-probe-{}", std::process::id()));
        let dirs = ["lower", "upper", "work", "merged"].map(|d| base.join(d));
        for dir in &dirs {
            std::fs::create_dir_all(dir).at("create directory", dir)?;
        }
        let outcome = (|| {
            let snapshotter = OverlaySnapshotter::new(&base)?;
            let upper = UpperDir::new(&dirs[1], &dirs[2]);
            let active = snapshotter.prepare(&[&dirs[0]], Some(&upper), &dirs[3])?;
            let probe_file = dirs[3].join("probe");
            std::fs::write(&probe_file, b"ok").at("write", &probe_file)?;
            snapshotter.commit(active)?;
            Ok(dirs[1].join("probe").is_file())
        })();
        let _ = std::fs::remove_dir_all(&base);
        outcome
    };
    matches!(probe(), Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_parent_backs_up_when_a_path_is_the_prefix() {
        let a = Path::new("/s/snapshots/1/fs");
        let b = Path::new("/s/snapshots/2/fs");
        assert_eq!(common_parent(&[a, b]), PathBuf::from("/s/snapshots"));
        let c = Path::new("/s/snapshots");
        assert_eq!(common_parent(&[a, c]), PathBuf::from("/s"));
    }

    #[test]
    fn classic_options_escape_separators() {
        let lowers = vec![PathBuf::from("/a:b"), PathBuf::from("/c,d")];
        let opts = classic_options(&lowers, None);
        assert_eq!(
            String::from_utf8(opts).unwrap(),
            "lowerdir=/a\\:b:/c\\,d,index=off,redirect_dir=off,metacopy=off"
        );
    }
}
