//! Writing layers: determinism, round trips through `apply_layer`, SOURCE_DATE_EPOCH, exclusion, and
//! an overlay upperdir produced by a real overlayfs mount turned into a layer entry by entry.

mod common;

use std::ffi::CString;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use common::list_tar;
use strata_layer::{
    WriteError, WriteOptions, apply_layer, write_layer, write_overlay_diff,
    write_overlay_diff_unhashed,
};

fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn mknod(path: &Path, kind: rustix::fs::FileType, major: u32, minor: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        rustix::fs::Mode::from_raw_mode(0o644),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

/// A tree with one of everything a layer can hold.
fn rich_tree(root: &Path) {
    let p = |s: &str| root.join(s);
    std::fs::create_dir_all(p("usr/bin")).unwrap();
    std::fs::create_dir_all(p("empty")).unwrap();
    std::fs::create_dir_all(p("tmp")).unwrap();
    chmod(&p("tmp"), 0o1777);
    std::fs::write(p("usr/bin/su"), b"#!/bin/sh\n").unwrap();
    chmod(&p("usr/bin/su"), 0o4755);
    std::fs::write(p("usr/bin/wall"), b"wall").unwrap();
    // chown clears setgid, so it comes first.
    std::os::unix::fs::chown(p("usr/bin/wall"), Some(0), Some(5)).unwrap();
    chmod(&p("usr/bin/wall"), 0o2755);
    std::fs::write(p("usr/bin/ping"), b"ping").unwrap();
    setxattr(
        &p("usr/bin/ping"),
        "security.capability",
        &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    setxattr(&p("usr/bin/ping"), "user.note", b"binary\0value");
    std::fs::write(p("usr/bin/busybox"), vec![0x7f; 70_000]).unwrap();
    std::fs::hard_link(p("usr/bin/busybox"), p("usr/bin/sh")).unwrap();
    std::fs::hard_link(p("usr/bin/busybox"), p("usr/bin/ls")).unwrap();
    symlink("/usr/bin/busybox", p("usr/bin/abs-link")).unwrap();
    symlink("busybox", p("usr/bin/rel-link")).unwrap();
    std::fs::create_dir(p("home")).unwrap();
    std::fs::create_dir(p("home/user")).unwrap();
    std::os::unix::fs::chown(p("home/user"), Some(1000), Some(1000)).unwrap();
    std::fs::write(p("home/user/.profile"), b"export A=1\n").unwrap();
    std::os::unix::fs::chown(p("home/user/.profile"), Some(1000), Some(1000)).unwrap();
    let long = format!("{}/{}", "l".repeat(120), "f".repeat(120));
    std::fs::create_dir(p(&"l".repeat(120))).unwrap();
    std::fs::write(p(&long), b"long").unwrap();
    symlink(format!("/{}", "t".repeat(200)), p("long-target")).unwrap();
    std::fs::create_dir(p("dev")).unwrap();
    mknod(&p("dev/null"), rustix::fs::FileType::CharacterDevice, 1, 3);
    mknod(&p("dev/sda"), rustix::fs::FileType::BlockDevice, 8, 0);
    mknod(&p("dev/fifo"), rustix::fs::FileType::Fifo, 0, 0);
    std::fs::write(p("big-ids"), b"").unwrap();
    std::os::unix::fs::chown(p("big-ids"), Some(3_000_000), Some(3_000_001)).unwrap();
    std::fs::write(p("a.b"), b"sorts before a/").unwrap();
    std::fs::create_dir(p("a")).unwrap();
    std::fs::write(p("a/x"), b"x").unwrap();
    // Times last, children before parents, with sub-second parts that a layer drops.
    let mut paths: Vec<_> = common::snapshot(root).into_keys().collect();
    paths.reverse();
    for (i, rel) in paths.iter().enumerate() {
        set_mtime(
            &root.join(rel),
            1_600_000_000 + i as i64 * 1000,
            123_456_789,
        );
    }
}

fn layer_of(dir: &Path, opts: &WriteOptions<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let info = write_layer(dir, &mut out, opts).unwrap();
    assert_eq!(info.size, out.len() as u64);
    assert_eq!(info.diff_id, strata_image::Digest::of(&out));
    out
}

#[test]
fn entries_are_sorted_with_exact_headers() {
    let dir = tempfile::tempdir().unwrap();
    rich_tree(dir.path());
    let listing = list_tar(&layer_of(dir.path(), &WriteOptions::default()));
    let long_dir = "l".repeat(120);
    let long = format!("{long_dir}/{}", "f".repeat(120));
    let expected = vec![
        "a/ dir 755 0:0".to_string(),
        "a/x file 644 0:0 size=1".into(),
        "a.b file 644 0:0 size=15".into(),
        "big-ids file 644 3000000:3000001 size=0 gid=3000001 uid=3000000".into(),
        "dev/ dir 755 0:0".into(),
        "dev/fifo fifo 644 0:0".into(),
        "dev/null char 644 0:0 1,3".into(),
        "dev/sda block 644 0:0 8,0".into(),
        "empty/ dir 755 0:0".into(),
        "home/ dir 755 0:0".into(),
        "home/user/ dir 755 1000:1000".into(),
        "home/user/.profile file 644 1000:1000 size=11".into(),
        format!("{long_dir}/ dir 755 0:0 path={long_dir}/"),
        format!("{long} file 644 0:0 size=4 path={long}"),
        format!("long-target symlink 777 0:0 -> /{} linkpath=/{}", "t".repeat(200), "t".repeat(200)),
        "tmp/ dir 1777 0:0".into(),
        "usr/ dir 755 0:0".into(),
        "usr/bin/ dir 755 0:0".into(),
        "usr/bin/abs-link symlink 777 0:0 -> /usr/bin/busybox".into(),
        "usr/bin/busybox file 644 0:0 size=70000".into(),
        "usr/bin/ls hardlink 644 0:0 -> usr/bin/busybox".into(),
        "usr/bin/ping file 644 0:0 size=4 SCHILY.xattr.security.capability=\u{1}\0\0\u{2}\0 \0\0\0\0\0\0\0\0\0\0\0\0\0\0 SCHILY.xattr.user.note=binary\0value".into(),
        "usr/bin/rel-link symlink 777 0:0 -> busybox".into(),
        "usr/bin/sh hardlink 644 0:0 -> usr/bin/busybox".into(),
        "usr/bin/su file 4755 0:0 size=10".into(),
        "usr/bin/wall file 2755 0:5 size=4".into(),
    ];
    assert_eq!(listing, expected);
}

#[test]
fn write_apply_write_is_byte_identical() {
    let source = tempfile::tempdir().unwrap();
    rich_tree(source.path());
    let first = layer_of(source.path(), &WriteOptions::default());
    let copy = tempfile::tempdir().unwrap();
    let stats = apply_layer(&first[..], copy.path()).unwrap();
    assert_eq!(stats.diff_id, strata_image::Digest::of(&first));
    let second = layer_of(copy.path(), &WriteOptions::default());
    assert!(first == second, "round trip changed the layer");
}

#[test]
fn same_tree_same_digest_even_after_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    rich_tree(dir.path());
    let first = layer_of(dir.path(), &WriteOptions::default());
    // Reading files and listing directories changes atimes (and nothing a layer records).
    std::fs::read(dir.path().join("usr/bin/busybox")).unwrap();
    let now = rustix::fs::Timespec {
        tv_sec: 2_000_000_000,
        tv_nsec: 0,
    };
    let omit = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    };
    for rel in ["usr/bin/su", "usr", "dev/null"] {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            dir.path().join(rel),
            &rustix::fs::Timestamps {
                last_access: now,
                last_modification: omit,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    assert!(
        first == layer_of(dir.path(), &WriteOptions::default()),
        "atimes changed the layer"
    );
    // An mtime is content.
    set_mtime(&dir.path().join("a/x"), 1, 0);
    assert!(first != layer_of(dir.path(), &WriteOptions::default()));
}

#[test]
fn source_date_epoch_clamps_newer_mtimes_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old"), b"").unwrap();
    std::fs::write(dir.path().join("new"), b"").unwrap();
    set_mtime(&dir.path().join("old"), 1_000, 0);
    set_mtime(&dir.path().join("new"), 2_000_000_000, 0);
    let layer = layer_of(
        dir.path(),
        &WriteOptions {
            source_date_epoch: Some(1_700_000_000),
            exclude: None,
        },
    );
    let mut archive = tar::Archive::new(&layer[..]);
    let times: Vec<(String, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                e.header().mtime().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            ("new".to_string(), 1_700_000_000),
            ("old".to_string(), 1_000)
        ]
    );
}

#[test]
fn excluded_paths_and_their_subtrees_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
    std::fs::write(dir.path().join("proc/self/x"), b"").unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/hosts"), b"").unwrap();
    std::fs::write(dir.path().join("etc/passwd"), b"").unwrap();
    let exclude = |p: &Path| p == Path::new("proc") || p == Path::new("etc/hosts");
    let layer = layer_of(
        dir.path(),
        &WriteOptions {
            source_date_epoch: None,
            exclude: Some(&exclude),
        },
    );
    let names: Vec<String> = list_tar(&layer)
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["etc/", "etc/passwd"]);
}

#[test]
fn gnu_tar_reads_the_layer_like_apply_layer_does() {
    let source = tempfile::tempdir().unwrap();
    rich_tree(source.path());
    let layer_dir = tempfile::tempdir().unwrap();
    let layer_path = layer_dir.path().join("layer.tar");
    std::fs::write(
        &layer_path,
        layer_of(source.path(), &WriteOptions::default()),
    )
    .unwrap();
    let ours = tempfile::tempdir().unwrap();
    apply_layer(std::fs::File::open(&layer_path).unwrap(), ours.path()).unwrap();
    let gnu = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&layer_path)
        .arg("-C")
        .arg(gnu.path())
        .status()
        .unwrap();
    assert!(status.success());
    // The extraction roots themselves are not part of the layer.
    let without_root = |dir: &Path| {
        let mut s = common::snapshot(dir);
        s.remove(Path::new(""));
        s
    };
    assert_eq!(without_root(ours.path()), without_root(gnu.path()));
}

/// Mounts an overlay over `lower`, runs `change` in the merged dir, unmounts, and returns the upperdir.
fn overlay_changes(
    base: &Path,
    lower: &Path,
    change: impl FnOnce(&Path),
) -> (std::path::PathBuf, common::Snapshot) {
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
        lower.display(),
        upper.display(),
        work.display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mount -t overlay failed");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        change(&merged);
        common::snapshot_without_dir_times(&merged)
    }));
    let status = Command::new("umount").arg(&merged).status().unwrap();
    assert!(status.success());
    (upper, result.unwrap())
}

#[test]
fn overlay_upperdir_becomes_an_oci_diff() {
    let base = tempfile::tempdir().unwrap();
    let lower = base.path().join("lower");
    let l = |s: &str| lower.join(s);
    for d in ["etc", "dir/sub", "keep", "bin"] {
        std::fs::create_dir_all(l(d)).unwrap();
    }
    for f in [
        "etc/config",
        "etc/remove-me",
        "dir/a",
        "dir/b",
        "dir/sub/c",
        "keep/k",
        "bin/tool",
    ] {
        std::fs::write(l(f), f.as_bytes()).unwrap();
        chmod(&l(f), 0o644);
    }
    chmod(&l("bin/tool"), 0o755);
    let lower_layer = layer_of(&lower, &WriteOptions::default());

    let long = format!("long-{}", "x".repeat(140));
    let (upper, merged_view) = overlay_changes(base.path(), &lower, |m| {
        let p = |s: &str| m.join(s);
        std::fs::write(p("etc/config"), b"new").unwrap();
        setxattr(&p("etc/config"), "user.test", b"v");
        std::fs::remove_file(p("etc/remove-me")).unwrap();
        std::fs::remove_dir_all(p("dir")).unwrap();
        std::fs::create_dir(p("dir")).unwrap();
        chmod(&p("dir"), 0o755);
        std::fs::write(p("dir/fresh"), b"fresh").unwrap();
        chmod(&p("dir/fresh"), 0o644);
        std::fs::create_dir(p("new")).unwrap();
        chmod(&p("new"), 0o755);
        std::fs::write(p("new/h1"), b"linked").unwrap();
        chmod(&p("new/h1"), 0o644);
        std::fs::hard_link(p("new/h1"), p("new/h2")).unwrap();
        symlink("../etc/config", p("new/sl")).unwrap();
        let fifo = CString::new(p("new/fifo").into_os_string().into_encoded_bytes()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.as_c_str(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        mknod(&p("new/null"), rustix::fs::FileType::CharacterDevice, 1, 3);
        std::fs::write(p(&format!("new/{long}")), b"l").unwrap();
        chmod(&p(&format!("new/{long}")), 0o644);
        chmod(&p("bin/tool"), 0o4755);
    });

    let mut diff = Vec::new();
    let info = write_overlay_diff(&upper, &mut diff, &WriteOptions::default()).unwrap();
    assert_eq!(info.diff_id, strata_image::Digest::of(&diff));
    // The unhashed variant (for an ingest that digests by itself) writes the same bytes.
    let mut unhashed = Vec::new();
    let size =
        write_overlay_diff_unhashed(&upper, &mut unhashed, &WriteOptions::default()).unwrap();
    assert_eq!(unhashed, diff);
    assert_eq!(size, info.size);
    let expected = vec![
        "bin/ dir 755 0:0".to_string(),
        "bin/tool file 4755 0:0 size=8".into(),
        "dir/ dir 755 0:0".into(),
        "dir/.wh..wh..opq file 600 0:0 size=0".into(),
        "dir/fresh file 644 0:0 size=5".into(),
        "etc/ dir 755 0:0".into(),
        "etc/.wh.remove-me file 600 0:0 size=0".into(),
        "etc/config file 644 0:0 size=3 SCHILY.xattr.user.test=v".into(),
        "new/ dir 755 0:0".into(),
        "new/fifo fifo 644 0:0".into(),
        "new/h1 file 644 0:0 size=6".into(),
        "new/h2 hardlink 644 0:0 -> new/h1".into(),
        format!("new/{long} file 644 0:0 size=1 path=new/{long}"),
        "new/null char 644 0:0 1,3".into(),
        "new/sl symlink 777 0:0 -> ../etc/config".into(),
    ];
    assert_eq!(list_tar(&diff), expected);
    // No overlay xattr leaks, although the kernel put some on the upper dirs.
    assert!(
        !common::xattrs(&upper.join("etc")).is_empty()
            || !common::xattrs(&upper.join("dir")).is_empty()
    );
    assert!(!String::from_utf8_lossy(&diff).contains("trusted.overlay"));

    // Applying lower + diff gives what the merged overlay showed.
    let applied = base.path().join("applied");
    std::fs::create_dir(&applied).unwrap();
    apply_layer(&lower_layer[..], &applied).unwrap();
    apply_layer(&diff[..], &applied).unwrap();
    // A layer keeps whole seconds of mtimes.
    let seconds = |snapshot: common::Snapshot| -> common::Snapshot {
        snapshot
            .into_iter()
            .map(|(path, desc)| {
                let desc = desc
                    .split(' ')
                    .map(|field| match field.strip_prefix("mtime=") {
                        Some(t) => format!("mtime={}", t.split('.').next().unwrap_or(t)),
                        None => field.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                (path, desc)
            })
            .collect()
    };
    assert_eq!(
        seconds(common::snapshot_without_dir_times(&applied)),
        seconds(merged_view)
    );

    // GNU tar lists it.
    let path = base.path().join("diff.tar");
    std::fs::write(&path, &diff).unwrap();
    let out = Command::new("tar").arg("-tvf").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        expected.len()
    );
}

#[test]
fn overlay_redirects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("moved")).unwrap();
    setxattr(
        &dir.path().join("moved"),
        "trusted.overlay.redirect",
        b"/orig",
    );
    let err =
        write_overlay_diff(dir.path(), std::io::sink(), &WriteOptions::default()).unwrap_err();
    assert!(
        matches!(&err, WriteError::OverlayFeature { xattr, .. } if xattr == "trusted.overlay.redirect"),
        "{err:?}"
    );
    assert!(err.to_string().contains("moved"));
}

#[test]
fn deep_trees_need_no_deep_stack() {
    // 1000 levels: every walk (write, apply's parent creation, whiteout removal) is iterative, so a
    // small thread stack suffices, as in a tokio blocking thread.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let source = tempfile::tempdir().unwrap();
            let deep = "d/".repeat(1000);
            std::fs::create_dir_all(source.path().join(&deep)).unwrap();
            std::fs::write(source.path().join(&deep).join("leaf"), b"leaf").unwrap();
            let first = layer_of(source.path(), &WriteOptions::default());
            assert_eq!(list_tar(&first).len(), 1001);
            let copy = tempfile::tempdir().unwrap();
            apply_layer(&first[..], copy.path()).unwrap();
            assert!(first == layer_of(copy.path(), &WriteOptions::default()));
            // Deleting the whole chain with one whiteout.
            let mut whiteout = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_ustar();
            header.set_path(".wh.d").unwrap();
            header.set_size(0);
            header.set_cksum();
            whiteout.append(&header, &b""[..]).unwrap();
            apply_layer(&whiteout.into_inner().unwrap()[..], copy.path()).unwrap();
            assert!(!copy.path().join("d").exists());
        })
        .unwrap();
    handle.join().unwrap();
}
