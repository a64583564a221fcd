//! Helpers shared by the integration tests: reading a directory tree into a comparable model,
//! computing what a stack of overlay-diff layers should show, writing layers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One node of a tree, as the comparisons care about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
    Whiteout,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub opaque: bool,
}

pub type Tree = BTreeMap<String, Node>;

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// Every entry under `root` (not `root` itself), by relative path.
pub fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut Tree) {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let child_rel = rel.join(&name);
        let path = root.join(&child_rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File(fs::read(&path).unwrap())
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&path).unwrap())
        } else if ft.is_char_device() && meta.rdev() == 0 {
            Kind::Whiteout
        } else {
            Kind::Other
        };
        let is_dir = kind == Kind::Dir;
        out.insert(
            child_rel.to_string_lossy().into_owned(),
            Node {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    meta.mode() & 0o7777
                },
                uid: meta.uid(),
                gid: meta.gid(),
                opaque: is_dir && is_opaque(&path),
            },
        );
        if is_dir {
            walk(root, &child_rel, out);
        }
    }
}

fn remove_subtree(tree: &mut Tree, path: &str) {
    let prefix = format!("{path}/");
    tree.retain(|k, _| k != path && !k.starts_with(&prefix));
}

/// What overlayfs shows for layer trees given top-first (the result holds no whiteouts and no
/// opaque marks).
pub fn merged(layers_top_first: &[Tree]) -> Tree {
    let mut view = Tree::new();
    for layer in layers_top_first.iter().rev() {
        for (path, node) in layer {
            // An entry whose parent this layer replaced with a non-directory cannot exist.
            match &node.kind {
                Kind::Whiteout => remove_subtree(&mut view, path),
                Kind::Dir => {
                    let was_dir = view.get(path).is_some_and(|n| n.kind == Kind::Dir);
                    if node.opaque || !was_dir {
                        remove_subtree(&mut view, path);
                    }
                    view.insert(
                        path.clone(),
                        Node {
                            opaque: false,
                            ..node.clone()
                        },
                    );
                }
                _ => {
                    remove_subtree(&mut view, path);
                    view.insert(path.clone(), node.clone());
                }
            }
        }
    }
    view
}

/// Write a file, creating parents.
pub fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// Put a whiteout at `rel`.
pub fn whiteout(root: &Path, rel: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
}

/// Make `rel` an opaque directory.
pub fn opaque_dir(root: &Path, rel: &str) {
    let path = root.join(rel);
    fs::create_dir_all(&path).unwrap();
    rustix::fs::lsetxattr(
        &path,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    std::env::var_os("STRATA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/strata-fixtures"))
}

/// Unpack the busybox fixture's single layer into `dir` with GNU tar.
pub fn unpack_busybox(dir: &Path) {
    let layout = fixtures().join("oci/busybox_1.35");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(dir)
        .arg("--numeric-owner")
        .status()
        .unwrap();
    assert!(status.success(), "tar failed on {}", layer.display());
}
