//! A rebuild with nothing changed reads and writes nothing it does not have to: every file
//! and directory of the store (and the stat cache) is left exactly as it was — no temporary
//! directory, no mount point, no rewritten index.json or stat cache — while a changed byte in
//! a copied file is still found. Needs root, runc, overlayfs and the busybox fixture.

mod common;

use common::env;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use strata_build::solve::BuildOutcome;

/// Every entry under `root` with what a write would change: inode (an atomic replace), size,
/// mtime (content, or a directory's entries), ctime (metadata).
fn stamps(root: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, i64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            if md.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path,
                (
                    md.ino(),
                    md.size(),
                    md.mtime(),
                    md.mtime_nsec(),
                    md.ctime(),
                    md.ctime_nsec(),
                ),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noop_rebuild_leaves_the_store_untouched() {
    let env = env();
    let context = &env.context;
    for i in 0..40 {
        let p = context.join(format!("src/pkg{}/f{i}.txt", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("file {i}\n")).unwrap();
    }
    // Past the stat cache's racy window, so the second build can trust it.
    std::thread::sleep(std::time::Duration::from_millis(120));
    let dockerfile = "FROM strata-fixtures/busybox:1.35 AS src\n\
        COPY src/ /src/\n\
        RUN cat /src/pkg1/f13.txt > /one\n\
        FROM strata-fixtures/busybox:1.35\n\
        COPY --from=src /one /src/pkg2 /out/\n\
        CMD [\"cat\", \"/out/one\"]\n";
    let build = async || {
        let mut options = env.options(dockerfile);
        options.stat_cache = Some(env.dir.path().join("statcache"));
        options.tags = vec!["docker.io/library/noop:latest".into()];
        env.build_ok(options).await.0
    };
    let first: BuildOutcome = build().await;
    assert_eq!(first.executed_steps, 3);
    // The second build may still write (the tag, nothing else); the third is measured.
    let second = build().await;
    assert_eq!(second.config_digest, first.config_digest);
    assert_eq!(second.executed_steps, 0);

    let before = (stamps(env.dir.path()), stamps(context));
    let third = build().await;
    assert_eq!(third.executed_steps, 0);
    assert_eq!(third.config_digest, first.config_digest);
    let after = (stamps(env.dir.path()), stamps(context));
    for (path, stamp) in &after.0 {
        assert_eq!(
            before.0.get(path),
            Some(stamp),
            "{} was created or changed by a no-op rebuild",
            path.display()
        );
    }
    assert_eq!(before.0.len(), after.0.len(), "something was removed");
    assert_eq!(before.1, after.1, "the context was modified");

    // One byte changed (same size) is found, and only that file is re-read.
    std::fs::write(context.join("src/pkg1/f13.txt"), "file 14\n").unwrap();
    let changed = build().await;
    assert_ne!(changed.config_digest, first.config_digest);
    assert_eq!(
        changed.executed_steps, 3,
        "COPY, the RUN after it and the final COPY"
    );
}
