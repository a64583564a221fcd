//! Test helpers: a tar builder that writes any name (including hostile ones) and tree snapshots.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Builds tars entry by entry with raw names, which `tar::Header::set_path` would refuse.
pub struct TarBuilder {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        TarBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

pub struct Entry<'a> {
    pub name: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub link: &'a str,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub device: (u32, u32),
    pub pax: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Entry<'a> {
    pub fn new(name: &'a str, kind: tar::EntryType) -> Self {
        Entry {
            name,
            kind,
            data: b"",
            link: "",
            mode: if kind.is_dir() { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            device: (0, 0),
            pax: Vec::new(),
        }
    }
}

impl TarBuilder {
    pub fn entry(&mut self, e: Entry<'_>) -> &mut Self {
        let mut pax = e.pax.clone();
        if e.name.len() > 100 {
            pax.push(("path", e.name.as_bytes()));
        }
        if e.link.len() > 100 {
            pax.push(("linkpath", e.link.as_bytes()));
        }
        if !pax.is_empty() {
            self.builder.append_pax_extensions(pax).unwrap();
        }
        let mut header = tar::Header::new_ustar();
        {
            let raw = header.as_ustar_mut().unwrap();
            let n = e.name.len().min(100);
            raw.name[..n].copy_from_slice(&e.name.as_bytes()[..n]);
            let l = e.link.len().min(100);
            raw.linkname[..l].copy_from_slice(&e.link.as_bytes()[..l]);
        }
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_uid(e.uid);
        header.set_gid(e.gid);
        header.set_mtime(e.mtime);
        header.set_size(e.data.len() as u64);
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            header.set_device_major(e.device.0).unwrap();
            header.set_device_minor(e.device.1).unwrap();
        }
        header.set_cksum();
        self.builder.append(&header, e.data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut e = Entry::new(name, tar::EntryType::Regular);
        e.data = data;
        self.entry(e)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(Entry::new(name, tar::EntryType::Directory))
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut e = Entry::new(name, tar::EntryType::Symlink);
        e.link = target;
        e.mode = 0o777;
        self.entry(e)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut e = Entry::new(name, tar::EntryType::Link);
        e.link = target;
        self.entry(e)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

/// Everything observable about a tree, keyed by relative path (the root is "").
pub type Snapshot = BTreeMap<PathBuf, String>;

pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, true);
    out
}

/// Like [`snapshot`] without mtimes of directories (which a test's own mkdir changes).
pub fn snapshot_without_dir_times(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, false);
    out
}

fn walk(root: &Path, path: &Path, out: &mut Snapshot, dir_times: bool) {
    let md = std::fs::symlink_metadata(path).unwrap();
    let rel = path.strip_prefix(root).unwrap().to_path_buf();
    let ft = md.file_type();
    let mut desc = format!(
        "mode={:o} uid={} gid={} nlink={}",
        md.mode(),
        md.uid(),
        md.gid(),
        if ft.is_dir() { 0 } else { md.nlink() }
    );
    if !ft.is_dir() || dir_times {
        desc.push_str(&format!(" mtime={}.{}", md.mtime(), md.mtime_nsec()));
    }
    if ft.is_file() {
        let data = std::fs::read(path).unwrap();
        desc.push_str(&format!(
            " size={} sha256={:x}",
            data.len(),
            Sha256::digest(&data)
        ));
    } else if ft.is_symlink() {
        desc.push_str(&format!(
            " -> {}",
            std::fs::read_link(path).unwrap().display()
        ));
    } else if !ft.is_dir() {
        desc.push_str(&format!(" rdev={}", md.rdev()));
    }
    for (k, v) in xattrs(path) {
        desc.push_str(&format!(" {k}={}", String::from_utf8_lossy(&v)));
    }
    out.insert(rel, desc);
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for child in names {
            walk(root, &child, out, dir_times);
        }
    }
}

pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut list = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut list[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap().to_string();
        let mut value = vec![0u8; 4096];
        let m = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
        value.truncate(m);
        out.push((name, value));
    }
    out.sort();
    out
}

/// A sandbox: `target/` to extract into and `outside/` with a file that must never change.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("target")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), b"do not touch").unwrap();
        Sandbox { dir }
    }
    pub fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }
    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    /// The sandbox without `target/`, to prove nothing outside the target changed.
    pub fn outside_state(&self) -> Snapshot {
        snapshot(self.dir.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with("target") && p.as_os_str() != "")
            .collect()
    }
}

/// Lists a tar with tar-rs: (name, type, mode, uid, gid, mtime, size, link, pax keys).
pub fn list_tar(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut pax = Vec::new();
        if let Some(ext) = entry.pax_extensions().unwrap() {
            for r in ext {
                let r = r.unwrap();
                pax.push(format!(
                    "{}={}",
                    r.key().unwrap(),
                    String::from_utf8_lossy(r.value_bytes())
                ));
            }
        }
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            _ => "other",
        };
        let mut line = format!(
            "{} {} {:o} {}:{}",
            String::from_utf8_lossy(&entry.path_bytes()),
            kind,
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap()
        );
        if kind == "file" {
            line.push_str(&format!(" size={}", entry.size()));
        }
        if let Some(link) = entry.link_name_bytes() {
            line.push_str(&format!(" -> {}", String::from_utf8_lossy(&link)));
        }
        if kind == "char" || kind == "block" {
            line.push_str(&format!(
                " {},{}",
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap()
            ));
        }
        for p in pax {
            line.push_str(&format!(" {p}"));
        }
        out.push(line);
    }
    out
}

/// Asserts two snapshots are equal, reporting only the paths that differ.
pub fn assert_same(left: &Snapshot, right: &Snapshot, context: &str) {
    let mut diffs = Vec::new();
    for (path, l) in left {
        match right.get(path) {
            Some(r) if r == l => {}
            Some(r) => diffs.push(format!("{}:\n  left:  {l}\n  right: {r}", path.display())),
            None => diffs.push(format!("{}: only left: {l}", path.display())),
        }
    }
    for (path, r) in right {
        if !left.contains_key(path) {
            diffs.push(format!("{}: only right: {r}", path.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "{context}: {} differences:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
}
