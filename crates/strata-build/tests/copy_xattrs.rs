//! Extended attributes of context files and directories are part of the COPY cache key, as in
//! BuildKit (whose file sync sends every xattr but `com.apple.*` and whose content hash
//! includes them), and remembering them costs a no-op rebuild nothing: their sums live in the
//! stat cache next to the content digests and are trusted while the entry's stat (ctime
//! included, which `setxattr`/`removexattr` move) is unchanged.
//!
//! Real files with real `user.*` xattrs (the test directory's filesystem must support them);
//! the build tests need root, runc and the busybox fixture. `com.apple.*` cannot be set on
//! Linux (no such namespace), so that filter is tested on the pure sum in `source.rs`; the
//! kernel's `trusted.overlay.*`, filtered the same way, is tested here on real files.

mod common;

use common::{Env, cached, env};
use rustix::fs::XattrFlags;
use std::path::{Path, PathBuf};
use strata_build::context::{BuildContext, HashStats};
use strata_build::copy::{self, CopySpec, SelectOptions};
use strata_build::ignore::PatternMatcher;
use strata_build::solve::BuildOutcome;
use strata_image::Digest;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn set(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

fn remove(path: &Path, name: &str) {
    rustix::fs::lremovexattr(path, name)
        .unwrap_or_else(|e| panic!("removexattr {name} on {}: {e}", path.display()));
}

/// Lets changed entries age past the stat cache's racy window, so the next scan trusts what
/// this one remembers.
fn aged() {
    std::thread::sleep(std::time::Duration::from_millis(120));
}

fn spec(source: &str, dest: &str) -> CopySpec {
    CopySpec {
        sources: vec![source.into()],
        dest: dest.into(),
        workdir: "/".into(),
        ..Default::default()
    }
}

/// The COPY selections the checksum is asked for: the whole context (its root directory is
/// an entry), a directory, a single file, and `--parents` (implicit parent directories).
fn specs() -> Vec<CopySpec> {
    vec![
        spec(".", "/app/"),
        spec("src", "/src/"),
        spec("src/a/f3", "/f1"),
        CopySpec {
            select: SelectOptions {
                exclude: Vec::new(),
                parents: true,
            },
            ..spec("src/b/*", "/p/")
        },
    ]
}

/// One build's checksums: scan (with the stat cache), every spec's streamed checksum, save.
fn sums(root: &Path, cache: &Path) -> (Vec<Digest>, HashStats) {
    let ctx = BuildContext::scan(root, &PatternMatcher::default(), Some(cache)).unwrap();
    let sums = specs()
        .iter()
        .map(|s| copy::prepare_checksum(&ctx, s).unwrap())
        .collect();
    ctx.save_stat_cache().unwrap();
    (sums, ctx.stats())
}

fn context_with_files() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("statcache");
    for i in 0..12 {
        write(
            dir.path(),
            &format!("src/{}/f{i}", ["a", "b", "c"][i % 3]),
            "x",
        );
    }
    write(dir.path(), "README", "r");
    (dir, cache_dir, cache)
}

#[test]
fn a_changed_xattr_changes_the_checksum_and_unchanged_entries_are_never_listed_again() {
    let (dir, _cache_dir, cache) = context_with_files();
    let root = dir.path();
    aged();

    // First build: every file hashed, and listed through the descriptor it was hashed from;
    // the directories (root, src, src/a, src/b, src/c) listed once each.
    let (plain, stats) = sums(root, &cache);
    assert_eq!(stats.files_hashed, 13);
    assert_eq!(stats.xattrs_read, 13 + 5, "{stats:?}");

    // No-op rebuild: nothing read, nothing listed.
    let (again, stats) = sums(root, &cache);
    assert_eq!(again, plain);
    assert_eq!(
        stats,
        HashStats {
            files_hashed: 0,
            bytes_hashed: 0,
            cache_hits: 13,
            xattrs_read: 0,
        }
    );

    // Only an xattr of one file changes: the sums that copy it change, the file is read again
    // (its ctime moved), nothing else is.
    set(&root.join("src/a/f0"), "user.strata.test", b"one");
    aged();
    let (file_x, stats) = sums(root, &cache);
    assert_ne!(file_x[0], plain[0], "COPY . sees the file's xattr");
    assert_ne!(file_x[1], plain[1], "COPY src sees it");
    assert_eq!(file_x[3], plain[3], "src/b/* does not copy it");
    assert_eq!((stats.files_hashed, stats.xattrs_read), (1, 1), "{stats:?}");
    let (again, stats) = sums(root, &cache);
    assert_eq!(again, file_x);
    assert_eq!((stats.files_hashed, stats.xattrs_read), (0, 0), "{stats:?}");

    // A new value is a new key.
    set(&root.join("src/a/f0"), "user.strata.test", b"two");
    aged();
    let (file_x2, _) = sums(root, &cache);
    assert_ne!(file_x2[0], file_x[0]);

    // A single-file COPY keys the file's xattrs too.
    set(&root.join("src/a/f3"), "user.strata.test", b"one");
    aged();
    let (single, stats) = sums(root, &cache);
    assert_ne!(single[2], file_x2[2]);
    assert_eq!((stats.files_hashed, stats.xattrs_read), (1, 1), "{stats:?}");

    // A directory's xattr: listed again (its ctime moved), no file read; the copy root
    // itself (`COPY src`) and a `--parents` implicit directory count as well.
    for (rel, index) in [("src/c", 0), ("src", 1), ("src/b", 3)] {
        let before = sums(root, &cache).0;
        set(&root.join(rel), "user.strata.dir", b"d");
        aged();
        let (after, stats) = sums(root, &cache);
        assert_ne!(after[index], before[index], "xattr of directory {rel}");
        assert_eq!(stats.files_hashed, 0, "{rel}: {stats:?}");
        assert_eq!(stats.xattrs_read, 1, "{rel}: {stats:?}");
        let (again, stats) = sums(root, &cache);
        assert_eq!(again, after);
        assert_eq!(stats.xattrs_read, 0, "{rel}: {stats:?}");
    }

    // The context directory itself is the root entry of `COPY .` (and of the `--parents`
    // selection, which walks the context from its root). Like BuildKit's, the key covers a
    // copy root's metadata although the copier gives an existing or pre-created destination
    // directory none of it.
    let before = sums(root, &cache).0;
    set(root, "user.strata.root", b"r");
    aged();
    let (after, stats) = sums(root, &cache);
    assert_ne!(after[0], before[0]);
    assert_eq!(after[1..3], before[1..3]);
    assert_eq!((stats.files_hashed, stats.xattrs_read), (0, 1), "{stats:?}");
    assert_eq!(sums(root, &cache).1.xattrs_read, 0);

    // Without their xattrs the entries sum exactly as before: an entry without xattrs adds
    // nothing to the checksum.
    remove(&root.join("src/a/f0"), "user.strata.test");
    remove(&root.join("src/a/f3"), "user.strata.test");
    for rel in ["src/c", "src", "src/b"] {
        remove(&root.join(rel), "user.strata.dir");
    }
    remove(root, "user.strata.root");
    aged();
    assert_eq!(sums(root, &cache).0, plain);
}

/// The kernel's overlay bookkeeping never reaches a layer, so it is not in the key either:
/// setting it moves the ctime (the file is read again) but sums the same.
#[test]
fn overlay_bookkeeping_xattrs_are_not_in_the_checksum() {
    let (dir, _cache_dir, cache) = context_with_files();
    let root = dir.path();
    aged();
    let (plain, _) = sums(root, &cache);
    set(&root.join("src/a/f0"), "trusted.overlay.strata", b"y");
    set(&root.join("src/b"), "trusted.overlay.opaque", b"y");
    aged();
    let (after, stats) = sums(root, &cache);
    assert_eq!(after, plain);
    assert_eq!((stats.files_hashed, stats.xattrs_read), (1, 2), "{stats:?}");
}

/// The collected checksum ([`copy::checksum`]) and the streamed one agree with xattrs, on the
/// context and on a plain directory tree (the heredoc path), for every selection.
#[test]
fn collected_and_streamed_checksums_agree_with_xattrs() {
    let (dir, _cache_dir, _) = context_with_files();
    let root = dir.path();
    set(&root.join("src/a/f0"), "user.a", b"1");
    set(&root.join("src/a/f3"), "user.b", &[0, 1, 2]);
    set(&root.join("src/b"), "user.c", b"");
    set(&root.join("src"), "user.d", b"d");
    set(root, "user.e", b"e");
    let ctx = BuildContext::scan(root, &PatternMatcher::default(), None).unwrap();
    let plain = strata_build::source::DirTree::new(root);
    let trees: [&dyn strata_build::source::SourceTree; 2] = [&ctx, &plain];
    for tree in trees {
        for s in specs() {
            let collected = copy::checksum(tree, &copy::prepare(tree, &s).unwrap()).unwrap();
            assert_eq!(
                copy::prepare_checksum(tree, &s).unwrap(),
                collected,
                "{:?}",
                s.sources
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Builds

impl Env {
    /// The xattrs (but `security.*`) of every entry of the image's layer `index` (negative:
    /// from the end): (path, name, value).
    fn layer_xattrs(&self, outcome: &BuildOutcome, index: isize) -> Vec<(String, String, Vec<u8>)> {
        let image = self.store.image(&outcome.manifest_digest).unwrap();
        let layers = image.manifest.layers();
        let layer = &layers[index.rem_euclid(layers.len() as isize) as usize];
        let digest = Digest::try_from(layer.digest()).unwrap();
        let reader = strata_layer::decompressed(self.store.open_blob(&digest).unwrap()).unwrap();
        let mut archive = tar::Archive::new(reader);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let Some(pax) = entry.pax_extensions().unwrap() else {
                continue;
            };
            for ext in pax {
                let ext = ext.unwrap();
                if let Some(name) = ext.key().unwrap().strip_prefix("SCHILY.xattr.")
                    && !name.starts_with("security.")
                {
                    out.push((path.clone(), name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_xattr_of_a_copied_file_or_directory_misses_the_copy_cache() {
    let env = env();
    let ctx = &env.context;
    write(ctx, "conf/app.conf", "a=1\n");
    write(ctx, "conf/sub/more.conf", "b=2\n");
    write(ctx, "tool", "#!/bin/sh\n");
    set(&ctx.join("tool"), "user.strata.test", b"one");
    aged();
    // The directory COPY first, so a change of the file misses only the second step.
    let dockerfile =
        "FROM strata-fixtures/busybox:1.35\nCOPY conf /etc/app/\nCOPY tool /usr/bin/tool\n";

    let (first, events) = env.build_ok(env.options(dockerfile)).await;
    assert_eq!(cached(&events), 0);
    assert_eq!(
        env.layer_xattrs(&first, -1),
        vec![(
            "usr/bin/tool".to_string(),
            "user.strata.test".to_string(),
            b"one".to_vec()
        )]
    );
    let (_, events) = env.build_ok(env.options(dockerfile)).await;
    assert_eq!(cached(&events), 2, "nothing changed: both COPYs cached");

    // Only the file's xattr changes (content and every other stat field but ctime stay).
    set(&ctx.join("tool"), "user.strata.test", b"two");
    aged();
    let (changed, events) = env.build_ok(env.options(dockerfile)).await;
    assert_eq!(cached(&events), 1, "the file's COPY misses: {events:?}");
    assert_eq!(
        env.layer_xattrs(&changed, -1),
        vec![(
            "usr/bin/tool".to_string(),
            "user.strata.test".to_string(),
            b"two".to_vec()
        )]
    );
    let (_, events) = env.build_ok(env.options(dockerfile)).await;
    assert_eq!(cached(&events), 2);

    // A copied directory's xattr reaches the layer (the directory is created from it), so it
    // is in the key too.
    set(&ctx.join("conf/sub"), "user.strata.dir", b"d");
    aged();
    let (changed, events) = env.build_ok(env.options(dockerfile)).await;
    assert_eq!(
        cached(&events),
        0,
        "the directory's COPY misses: {events:?}"
    );
    // The directory COPY's layer is the one before the last.
    assert_eq!(
        env.layer_xattrs(&changed, -2),
        vec![(
            "etc/app/sub/".to_string(),
            "user.strata.dir".to_string(),
            b"d".to_vec()
        )]
    );
    let (_, events) = env.build_ok(env.options(dockerfile)).await;
    assert_eq!(cached(&events), 2);
}
