//! Scale check for the context scan and the stat cache: 20,000 files, a cold checksum (every
//! file read), then a no-op rescan whose checksum must not read a single file.
//! The timings are printed (`cargo test --release -p strata-build --test context_scale -- --nocapture`).

use std::time::{Duration, Instant};
use strata_build::context::BuildContext;
use strata_build::copy::{self, CopySpec};
use strata_build::ignore::PatternMatcher;

#[test]
fn noop_rescan_of_20000_files_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("statcache");
    for d in 0..200 {
        let sub = dir.path().join(format!("pkg{d:03}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..100 {
            std::fs::write(sub.join(format!("file{f:03}.txt")), format!("{d}-{f}")).unwrap();
        }
    }
    // Let the files age past the stat cache's racy window.
    std::thread::sleep(Duration::from_millis(120));
    let spec = CopySpec {
        sources: vec![".".into()],
        dest: "/app/".into(),
        workdir: "/".into(),
        ..Default::default()
    };
    let ignore = PatternMatcher::default();

    let t = Instant::now();
    let ctx = BuildContext::scan(dir.path(), &ignore, Some(&cache)).unwrap();
    let scan_cold = t.elapsed();
    let t = Instant::now();
    let first = copy::checksum(&ctx, &copy::prepare(&ctx, &spec).unwrap()).unwrap();
    let sum_cold = t.elapsed();
    assert_eq!(ctx.stats().files_hashed, 20_000);
    ctx.save_stat_cache().unwrap();

    let t = Instant::now();
    let ctx = BuildContext::scan(dir.path(), &ignore, Some(&cache)).unwrap();
    let scan_warm = t.elapsed();
    let t = Instant::now();
    let second = copy::checksum(&ctx, &copy::prepare(&ctx, &spec).unwrap()).unwrap();
    let sum_warm = t.elapsed();
    assert_eq!(first, second);
    assert_eq!(
        ctx.stats().files_hashed,
        0,
        "no file is re-read on a no-op rebuild"
    );
    assert_eq!(ctx.stats().cache_hits, 20_000);
    println!(
        "20,000 files: cold scan {scan_cold:?} + checksum {sum_cold:?}; no-op scan {scan_warm:?} + checksum {sum_warm:?}"
    );
}
