//! What strata remembers about blobs' life in registries, kept beside the store under
//! `ROOT/registry/` (docker keeps the same facts in its "distribution metadata"):
//!
//! - `sources/<hex>`: the repositories (`registry/repository`) a blob was pulled from or
//!   pushed to, so a push to another repository of the same registry can mount it instead of
//!   uploading it again;
//! - `compressed/<diff_id hex>`: the gzip blob strata made from an uncompressed layer on a
//!   previous push, so the next push does not compress it again.
//!
//! One small JSON file per blob, replaced by atomic rename: concurrent strata processes never
//! corrupt each other's records, and at worst one of two simultaneous updates is lost, which
//! only costs a later upload or compression. Records are hints: a missing or unreadable one
//! is treated as absent, and a compressed variant is used only if its blob is still stored.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use strata_image::Digest;
use strata_store::Store;

use crate::error::{RegistryError, Result};
use crate::registry::Repo;

/// The most repositories remembered per blob (the most recent ones win).
const MAX_SOURCES: usize = 16;

/// Access to `ROOT/registry/` of a store.
#[derive(Debug, Clone)]
pub struct Metadata {
    dir: PathBuf,
}

impl Metadata {
    pub fn new(store: &Store) -> Metadata {
        Metadata {
            dir: store.root().join("registry"),
        }
    }

    fn path(&self, kind: &str, digest: &Digest) -> PathBuf {
        self.dir.join(kind).join(digest.hex())
    }

    /// The repositories `digest` is known to exist in, most recent first.
    pub fn sources(&self, digest: &Digest) -> Vec<Repo> {
        read_json::<Vec<String>>(&self.path("sources", digest))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                s.split_once('/')
                    .map(|(registry, repository)| Repo::new(registry, repository))
            })
            .collect()
    }

    /// Records that `digest` exists in `repo`.
    pub fn add_source(&self, digest: &Digest, repo: &Repo) -> Result<()> {
        let path = self.path("sources", digest);
        let entry = repo.to_string();
        let mut list = read_json::<Vec<String>>(&path).unwrap_or_default();
        if list.first() == Some(&entry) {
            return Ok(());
        }
        list.retain(|s| s != &entry);
        list.insert(0, entry);
        list.truncate(MAX_SOURCES);
        write_json(&path, &list)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RegistryError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = serde_json::to_vec(value).map_err(|e| RegistryError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("record"),
        std::process::id(),
        std::thread::current().id()
    ));
    let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(&bytes).map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_most_recent_first_without_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let meta = Metadata::new(&store);
        let d = Digest::of(b"layer");
        assert!(meta.sources(&d).is_empty());
        meta.add_source(&d, &Repo::new("localhost:5000", "library/busybox"))
            .expect("add");
        meta.add_source(&d, &Repo::new("localhost:5000", "team/app"))
            .expect("add");
        meta.add_source(&d, &Repo::new("localhost:5000", "library/busybox"))
            .expect("add");
        assert_eq!(
            meta.sources(&d),
            vec![
                Repo::new("localhost:5000", "library/busybox"),
                Repo::new("localhost:5000", "team/app")
            ]
        );
    }
}
