//! The `Snapshotter` contract, checked against every implementation: the overlay snapshotter
//! through the new mount API and through classic mount(2), and the copy snapshotter.
//!
//! The central property: the upper directory a commit leaves, stacked over the lowers, shows
//! exactly what the view showed before the commit, and holds nothing that was not changed.
//! Runs as root (mounts, whiteouts, trusted xattrs).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Kind, Tree, merged, opaque_dir, tree, whiteout, write};
use strata_runtime::snapshot::{MountApi, SnapshotError};
use strata_runtime::{CopySnapshotter, OverlaySnapshotter, Snapshotter, UpperDir};

/// A scratch area: lowers, an upper, a work dir and a target.
struct Area {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Area {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for sub in ["upper", "work", "target", "state"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        Self { _dir: dir, root }
    }
    fn lower(&self, n: usize) -> PathBuf {
        let path = self.root.join(format!("lowers/{n}"));
        fs::create_dir_all(&path).unwrap();
        path
    }
    fn upper(&self) -> UpperDir {
        UpperDir::new(self.root.join("upper"), self.root.join("work"))
    }
    fn target(&self) -> PathBuf {
        self.root.join("target")
    }
    fn upper_tree(&self) -> Tree {
        tree(&self.root.join("upper"))
    }
}

type Make = fn(&Area) -> Box<dyn Snapshotter>;

fn overlay_new(area: &Area) -> Box<dyn Snapshotter> {
    Box::new(
        OverlaySnapshotter::new(&area.root.join("state"))
            .unwrap()
            .with_mount_api(MountApi::New),
    )
}

fn overlay_classic(area: &Area) -> Box<dyn Snapshotter> {
    Box::new(
        OverlaySnapshotter::new(&area.root.join("state"))
            .unwrap()
            .with_mount_api(MountApi::Classic),
    )
}

fn copy(_: &Area) -> Box<dyn Snapshotter> {
    Box::new(CopySnapshotter::new())
}

fn refs(paths: &[PathBuf]) -> Vec<&Path> {
    paths.iter().map(PathBuf::as_path).collect()
}

/// Commit must leave an upper that, over the lowers, reproduces the view.
fn assert_diff_reproduces_view(lowers: &[PathBuf], area: &Area, view_before: &Tree) {
    let mut layers = vec![area.upper_tree()];
    layers.extend(lowers.iter().map(|l| tree(l)));
    let reproduced = merged(&layers);
    assert_eq!(&reproduced, view_before);
}

fn scratch_view_records_writes(make: Make) {
    let area = Area::new();
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&[], Some(&area.upper()), &area.target())
        .unwrap();
    assert!(tree(active.root()).is_empty());
    write(active.root(), "app/hello.txt", "hi");
    let view = tree(active.root());
    snapshotter.commit(active).unwrap();
    let upper = area.upper_tree();
    assert_eq!(upper.keys().collect::<Vec<_>>(), ["app", "app/hello.txt"]);
    assert_eq!(upper["app/hello.txt"].kind, Kind::File(b"hi".to_vec()));
    assert_diff_reproduces_view(&[], &area, &view);
    assert!(tree(&area.target()).is_empty(), "target left empty");
}

fn lowers_stack_top_first(make: Make) {
    let area = Area::new();
    let (top, bottom) = (area.lower(2), area.lower(1));
    write(&bottom, "f", "bottom");
    write(&bottom, "only-bottom", "b");
    write(&bottom, "gone", "b");
    write(&bottom, "opq/old", "b");
    write(&bottom, "merged/from-bottom", "b");
    write(&top, "f", "top");
    whiteout(&top, "gone");
    opaque_dir(&top, "opq");
    write(&top, "opq/new", "t");
    write(&top, "merged/from-top", "t");
    let lowers = vec![top.clone(), bottom.clone()];
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap();
    let view = tree(active.root());
    let names: Vec<&str> = view.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "f",
            "merged",
            "merged/from-bottom",
            "merged/from-top",
            "only-bottom",
            "opq",
            "opq/new"
        ]
    );
    assert_eq!(view["f"].kind, Kind::File(b"top".to_vec()));
    assert_eq!(view, merged(&[tree(&top), tree(&bottom)]));
    snapshotter.commit(active).unwrap();
    assert!(
        area.upper_tree().is_empty(),
        "nothing changed, nothing in the upper"
    );
}

fn changes_become_an_overlay_diff(make: Make) {
    let area = Area::new();
    let base = area.lower(1);
    write(&base, "etc/config", "v1");
    write(&base, "etc/untouched", "same");
    write(&base, "usr/share/doc/a", "a");
    write(&base, "usr/share/doc/b", "b");
    write(&base, "usr/share/other", "o");
    write(&base, "var/lib/state/x", "x");
    write(&base, "var/lib/keep", "k");
    write(&base, "bin/tool", "#!/bin/sh");
    write(&base, "untouched-dir/file", "u");
    let lowers = vec![base.clone()];
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap();
    let root = active.root().to_path_buf();
    fs::write(root.join("etc/config"), "v2").unwrap();
    fs::remove_dir_all(root.join("usr/share/doc")).unwrap();
    fs::remove_file(root.join("var/lib/state/x")).unwrap();
    fs::remove_dir_all(root.join("var/lib/state")).unwrap();
    fs::create_dir(root.join("var/lib/state")).unwrap();
    write(&root, "var/lib/state/y", "y");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("/etc/config", root.join("etc/link")).unwrap();
    fs::hard_link(root.join("var/lib/state/y"), root.join("var/lib/state/y2")).unwrap();
    write(&root, "new/deep/file", "n");
    let view = tree(&root);
    snapshotter.commit(active).unwrap();

    let upper = area.upper_tree();
    assert_eq!(upper["etc/config"].kind, Kind::File(b"v2".to_vec()));
    assert_eq!(upper["usr/share/doc"].kind, Kind::Whiteout);
    assert_eq!(upper["bin/tool"].mode, 0o755);
    assert_eq!(
        upper["etc/link"].kind,
        Kind::Symlink(PathBuf::from("/etc/config"))
    );
    assert!(
        !upper.contains_key("var/lib/state/x"),
        "hidden by the replaced dir"
    );
    assert!(
        upper["var/lib/state"].opaque,
        "a removed and recreated dir is opaque"
    );
    for untouched in [
        "etc/untouched",
        "var/lib/keep",
        "untouched-dir",
        "untouched-dir/file",
    ] {
        assert!(
            !upper.contains_key(untouched),
            "{untouched} is not a change: {:?}",
            upper.keys()
        );
    }
    use std::os::unix::fs::MetadataExt;
    let upper_root = area.root.join("upper");
    let y = fs::metadata(upper_root.join("var/lib/state/y")).unwrap();
    let y2 = fs::metadata(upper_root.join("var/lib/state/y2")).unwrap();
    assert_eq!(y.ino(), y2.ino(), "hard links stay hard links");
    assert_diff_reproduces_view(&lowers, &area, &view);
}

fn read_only_view(make: Make) {
    let area = Area::new();
    let base = area.lower(1);
    write(&base, "src/main.go", "package main");
    let lowers = vec![base.clone()];
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), None, &area.target())
        .unwrap();
    assert_eq!(tree(active.root()), tree(&base));
    let err = snapshotter.commit(active).unwrap_err();
    assert!(matches!(err, SnapshotError::ReadOnly { .. }), "{err}");
    assert!(tree(&area.target()).is_empty());
}

fn remove_discards_changes(make: Make) {
    let area = Area::new();
    let base = area.lower(1);
    write(&base, "a", "a");
    let lowers = vec![base.clone()];
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap();
    write(active.root(), "b", "b");
    fs::remove_file(active.root().join("a")).unwrap();
    snapshotter.remove(active).unwrap();
    assert!(area.upper_tree().is_empty());
    assert!(tree(&area.target()).is_empty());
    assert_eq!(tree(&base).len(), 1, "lowers are never touched");
}

fn one_hundred_twenty_lowers(make: Make) {
    let area = Area::new();
    let lowers: Vec<PathBuf> = (0..120)
        .rev()
        .map(|n| {
            let lower = area.lower(n);
            write(&lower, &format!("layers/{n:03}"), &n.to_string());
            write(&lower, "layers/common", &n.to_string());
            lower
        })
        .collect();
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap();
    let view = tree(active.root());
    assert_eq!(view.len(), 1 + 120 + 1);
    assert_eq!(view["layers/common"].kind, Kind::File(b"119".to_vec()));
    assert_eq!(view["layers/000"].kind, Kind::File(b"0".to_vec()));
    write(active.root(), "layers/written", "w");
    snapshotter.commit(active).unwrap();
    let upper = area.upper_tree();
    assert_eq!(
        upper.keys().collect::<Vec<_>>(),
        ["layers", "layers/written"]
    );
}

fn refuses_a_non_empty_target(make: Make) {
    let area = Area::new();
    write(&area.target(), "stale", "x");
    let snapshotter = make(&area);
    let err = snapshotter
        .prepare(&[], Some(&area.upper()), &area.target())
        .unwrap_err();
    assert!(
        matches!(err, SnapshotError::NotEmpty { role: "target", .. }),
        "{err}"
    );
}

fn scratch_read_only_view_is_empty(make: Make) {
    let area = Area::new();
    let snapshotter = make(&area);
    let active = snapshotter.prepare(&[], None, &area.target()).unwrap();
    assert!(tree(active.root()).is_empty());
    snapshotter.remove(active).unwrap();
}

fn metadata_survives_the_view_and_the_diff(make: Make) {
    use std::os::unix::fs::{MetadataExt, chown};
    let area = Area::new();
    let base = area.lower(1);
    write(&base, "bin/suid", "x");
    fs::set_permissions(base.join("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    chown(base.join("bin/suid"), Some(1000), Some(1000)).unwrap();
    rustix::fs::lsetxattr(
        base.join("bin/suid"),
        "user.test",
        b"value",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::os::unix::fs::symlink("suid", base.join("bin/link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        base.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let lowers = vec![base.clone()];
    let snapshotter = make(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap();
    let root = active.root().to_path_buf();
    assert_eq!(tree(&root), tree(&base));
    let mut value = [0u8; 16];
    let len = rustix::fs::lgetxattr(root.join("bin/suid"), "user.test", &mut value[..]).unwrap();
    assert_eq!(&value[..len], b"value");
    // A metadata-only change: the whole file is copied up, metadata and xattr included.
    chown(root.join("bin/suid"), Some(1001), Some(1001)).unwrap();
    fs::set_permissions(root.join("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    let view = tree(&root);
    snapshotter.commit(active).unwrap();
    let upper_file = area.root.join("upper/bin/suid");
    let meta = fs::symlink_metadata(&upper_file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (1001, 0o4755));
    assert_eq!(
        fs::read(&upper_file).unwrap(),
        b"x",
        "no metacopy stub: the data is there"
    );
    let len = rustix::fs::lgetxattr(&upper_file, "user.test", &mut value[..]).unwrap();
    assert_eq!(&value[..len], b"value");
    assert!(!area.upper_tree().contains_key("fifo"));
    assert_diff_reproduces_view(&lowers, &area, &view);
}

macro_rules! conformance {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            #[test]
            fn scratch_view_records_writes() {
                super::scratch_view_records_writes($make)
            }
            #[test]
            fn lowers_stack_top_first() {
                super::lowers_stack_top_first($make)
            }
            #[test]
            fn changes_become_an_overlay_diff() {
                super::changes_become_an_overlay_diff($make)
            }
            #[test]
            fn read_only_view() {
                super::read_only_view($make)
            }
            #[test]
            fn remove_discards_changes() {
                super::remove_discards_changes($make)
            }
            #[test]
            fn one_hundred_twenty_lowers() {
                super::one_hundred_twenty_lowers($make)
            }
            #[test]
            fn scratch_read_only_view_is_empty() {
                super::scratch_read_only_view_is_empty($make)
            }
            #[test]
            fn metadata_survives_the_view_and_the_diff() {
                super::metadata_survives_the_view_and_the_diff($make)
            }
            #[test]
            fn refuses_a_non_empty_target() {
                super::refuses_a_non_empty_target($make)
            }
        }
    };
}

conformance!(overlay_new_mount_api, overlay_new);
conformance!(overlay_classic_mount, overlay_classic);
conformance!(copy_snapshotter, copy);

// Overlay-only behaviour.

#[test]
fn overlay_view_without_upper_is_read_only() {
    let area = Area::new();
    let base = area.lower(1);
    write(&base, "a", "a");
    let snapshotter = overlay_new(&area);
    let active = snapshotter.prepare(&[&base], None, &area.target()).unwrap();
    let err = fs::write(active.root().join("b"), "b").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    snapshotter.remove(active).unwrap();
}

#[test]
fn overlay_takes_five_hundred_lowers_and_refuses_more() {
    let area = Area::new();
    let lowers: Vec<PathBuf> = (0..501).map(|n| area.lower(n)).collect();
    write(&lowers[0], "top", "t");
    let snapshotter = overlay_new(&area);
    let active = snapshotter
        .prepare(&refs(&lowers[..500]), Some(&area.upper()), &area.target())
        .unwrap();
    assert!(active.root().join("top").exists());
    snapshotter.remove(active).unwrap();
    let err = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::TooManyLowers {
                count: 501,
                max: 500
            }
        ),
        "{err}"
    );
}

fn is_mount_point(path: &Path) -> bool {
    let path = fs::canonicalize(path).unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

#[test]
fn overlay_view_dropped_without_commit_is_unmounted() {
    let area = Area::new();
    let snapshotter = overlay_new(&area);
    let active = snapshotter
        .prepare(&[], Some(&area.upper()), &area.target())
        .unwrap();
    assert!(is_mount_point(&area.target()));
    drop(active);
    assert!(!is_mount_point(&area.target()));
}

#[test]
fn overlay_commit_drops_directories_copied_up_without_change() {
    let area = Area::new();
    let base = area.lower(1);
    write(&base, "etc/passwd", "root:x:0:0::/:/bin/sh");
    write(&base, "tmp/.keep", "");
    let snapshotter = overlay_new(&area);
    let active = snapshotter
        .prepare(&[&base], Some(&area.upper()), &area.target())
        .unwrap();
    let etc = active.root().join("etc");
    let before = fs::symlink_metadata(&etc).unwrap();
    // What a runtime does for a missing mount point, and what the executor undoes.
    fs::write(etc.join("hosts"), "").unwrap();
    fs::remove_file(etc.join("hosts")).unwrap();
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: std::os::unix::fs::MetadataExt::mtime(&before),
            tv_nsec: std::os::unix::fs::MetadataExt::mtime_nsec(&before) as _,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, &etc, &times, rustix::fs::AtFlags::empty()).unwrap();
    write(active.root(), "tmp/real-change", "x");
    snapshotter.commit(active).unwrap();
    let upper = area.upper_tree();
    assert_eq!(upper.keys().collect::<Vec<_>>(), ["tmp", "tmp/real-change"]);
}

#[test]
fn overlay_is_supported_and_detected_here() {
    let area = Area::new();
    assert!(strata_runtime::overlay_supported(&area.root));
    let detected = strata_runtime::snapshot::detect(&area.root.join("state")).unwrap();
    assert_eq!(detected.name(), "overlay");
    assert!(
        fs::read_dir(&area.root).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("overlay-probe")
        }),
        "the probe cleans up after itself"
    );
}

#[test]
fn overlay_classic_mount_fits_long_stacks_through_relative_paths() {
    // 300 absolute lowerdirs do not fit mount(2)'s one-page option string; relative to their
    // common parent they do.
    let area = Area::new();
    let lowers: Vec<PathBuf> = (0..300).map(|n| area.lower(n)).collect();
    let options_len: usize = lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        options_len > 4096,
        "the stack must overflow a page: {options_len}"
    );
    write(&lowers[0], "top", "t");
    write(&lowers[299], "bottom", "b");
    let snapshotter = overlay_classic(&area);
    let active = snapshotter
        .prepare(&refs(&lowers), Some(&area.upper()), &area.target())
        .unwrap();
    assert!(active.root().join("top").exists() && active.root().join("bottom").exists());
    write(active.root(), "new", "n");
    snapshotter.commit(active).unwrap();
    assert_eq!(area.upper_tree().keys().collect::<Vec<_>>(), ["new"]);
}
