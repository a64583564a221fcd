//! Layer semantics as a table: a lower tree, a layer, and the tree that must result, for both
//! `apply_layer` (a merged rootfs) and `unpack_overlay_diff` (an overlay lower dir, checked by mounting).

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{Entry, TarBuilder};
use strata_layer::{Compression, apply_layer, compress, unpack_overlay_diff};

/// Files of a tree as `path` (dirs end in `/`) or `path=content`, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&path).unwrap();
            if md.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else if md.file_type().is_symlink() {
                out.push(format!(
                    "{rel}->{}",
                    std::fs::read_link(&path).unwrap().display()
                ));
            } else {
                out.push(format!(
                    "{rel}={}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// The lower tree every case starts from.
fn lower_layer() -> Vec<u8> {
    TarBuilder::default()
        .dir("d")
        .file("d/a", b"lower")
        .file("d/b", b"lower")
        .dir("d/sub")
        .file("d/sub/x", b"lower")
        .file("f", b"lower")
        .dir("keep")
        .file("keep/k", b"lower")
        .finish()
}

struct Case {
    name: &'static str,
    layer: Vec<u8>,
    expected: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "whiteout deletes a file",
            layer: TarBuilder::default().file("d/.wh.a", b"").finish(),
            expected: &[
                "d/",
                "d/b=lower",
                "d/sub/",
                "d/sub/x=lower",
                "f=lower",
                "keep/",
                "keep/k=lower",
            ],
        },
        Case {
            name: "whiteout deletes a directory with its content",
            layer: TarBuilder::default()
                .file("d/.wh.sub", b"")
                .file(".wh.keep", b"")
                .finish(),
            expected: &["d/", "d/a=lower", "d/b=lower", "f=lower"],
        },
        Case {
            name: "whiteout of a missing path is a no-op",
            layer: TarBuilder::default().file("d/.wh.nothing", b"").finish(),
            expected: &[
                "d/",
                "d/a=lower",
                "d/b=lower",
                "d/sub/",
                "d/sub/x=lower",
                "f=lower",
                "keep/",
                "keep/k=lower",
            ],
        },
        Case {
            name: "opaque directory first",
            layer: TarBuilder::default()
                .dir("d")
                .file("d/.wh..wh..opq", b"")
                .file("d/new", b"upper")
                .finish(),
            expected: &["d/", "d/new=upper", "f=lower", "keep/", "keep/k=lower"],
        },
        Case {
            name: "opaque directory after its siblings still applies first",
            layer: TarBuilder::default()
                .dir("d")
                .file("d/new", b"upper")
                .dir("d/sub")
                .file("d/sub/y", b"upper")
                .file("d/.wh..wh..opq", b"")
                .finish(),
            expected: &[
                "d/",
                "d/new=upper",
                "d/sub/",
                "d/sub/y=upper",
                "f=lower",
                "keep/",
                "keep/k=lower",
            ],
        },
        Case {
            name: "directory over directory keeps the children",
            layer: TarBuilder::default()
                .dir("d")
                .file("d/c", b"upper")
                .finish(),
            expected: &[
                "d/",
                "d/a=lower",
                "d/b=lower",
                "d/c=upper",
                "d/sub/",
                "d/sub/x=lower",
                "f=lower",
                "keep/",
                "keep/k=lower",
            ],
        },
        Case {
            name: "file over directory replaces the directory",
            layer: TarBuilder::default().file("d", b"upper").finish(),
            expected: &["d=upper", "f=lower", "keep/", "keep/k=lower"],
        },
        Case {
            name: "directory over file replaces the file",
            layer: TarBuilder::default()
                .dir("f")
                .file("f/inner", b"upper")
                .finish(),
            expected: &[
                "d/",
                "d/a=lower",
                "d/b=lower",
                "d/sub/",
                "d/sub/x=lower",
                "f/",
                "f/inner=upper",
                "keep/",
                "keep/k=lower",
            ],
        },
        Case {
            name: "whiteout then recreate as a directory hides the lower content",
            layer: TarBuilder::default()
                .file(".wh.d", b"")
                .dir("d")
                .file("d/n", b"upper")
                .finish(),
            expected: &["d/", "d/n=upper", "f=lower", "keep/", "keep/k=lower"],
        },
        Case {
            name: "symlink replaces a file",
            layer: TarBuilder::default().symlink("f", "keep/k").finish(),
            expected: &[
                "d/",
                "d/a=lower",
                "d/b=lower",
                "d/sub/",
                "d/sub/x=lower",
                "f->keep/k",
                "keep/",
                "keep/k=lower",
            ],
        },
        Case {
            name: "a whiteout does not delete what the same layer created",
            layer: TarBuilder::default()
                .file("d/z", b"upper")
                .file("d/.wh.z", b"")
                .finish(),
            expected: &[
                "d/",
                "d/a=lower",
                "d/b=lower",
                "d/sub/",
                "d/sub/x=lower",
                "d/z=upper",
                "f=lower",
                "keep/",
                "keep/k=lower",
            ],
        },
    ]
}

#[test]
fn apply_layer_semantics() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        apply_layer(&lower_layer()[..], dir.path()).unwrap();
        apply_layer(&case.layer[..], dir.path()).unwrap();
        assert_eq!(listing(dir.path()), case.expected, "{}", case.name);
    }
}

/// The same table through overlayfs: unpack lower and layer as diffs, mount, and look.
#[test]
fn unpack_overlay_diff_semantics_through_a_real_overlay() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper, merged) = (
            dir.path().join("l"),
            dir.path().join("u"),
            dir.path().join("m"),
        );
        for d in [&lower, &upper, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        unpack_overlay_diff(&lower_layer()[..], &lower).unwrap();
        unpack_overlay_diff(&case.layer[..], &upper).unwrap();
        let options = format!("lowerdir={}:{}", upper.display(), lower.display());
        let status = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&merged)
            .status()
            .unwrap();
        assert!(status.success(), "mount failed");
        let seen = listing(&merged);
        let status = std::process::Command::new("umount")
            .arg(&merged)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(seen, case.expected, "{}", case.name);
    }
}

#[test]
fn overlay_diff_markers() {
    let layer = TarBuilder::default()
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/.wh.gone", b"")
        .file(".wh.top", b"")
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let stats = unpack_overlay_diff(&layer[..], dir.path()).unwrap();
    assert_eq!((stats.entries, stats.whiteouts), (1, 3));
    for name in ["d/gone", "top"] {
        let md = std::fs::symlink_metadata(dir.path().join(name)).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&md.file_type()),
            "{name}"
        );
        assert_eq!(md.rdev(), 0);
    }
    assert_eq!(
        common::xattrs(&dir.path().join("d")),
        vec![("trusted.overlay.opaque".to_string(), b"y".to_vec())]
    );
}

#[test]
fn metadata_is_exact() {
    let mut suid = Entry::new("bin/su", tar::EntryType::Regular);
    suid.data = b"#!";
    suid.mode = 0o4755;
    suid.uid = 0;
    suid.gid = 0;
    let mut sgid = Entry::new("bin/wall", tar::EntryType::Regular);
    sgid.mode = 0o2755;
    sgid.gid = 5;
    let mut sticky = Entry::new("tmp", tar::EntryType::Directory);
    sticky.mode = 0o1777;
    sticky.mtime = 1_234_567_890;
    let mut owned = Entry::new("home/u/file", tar::EntryType::Regular);
    owned.uid = 1000;
    owned.gid = 1001;
    owned.mode = 0o600;
    owned.mtime = 1_000_000_000;
    let mut big = Entry::new("big-ids", tar::EntryType::Regular);
    big.pax = vec![
        ("uid", b"3000000"),
        ("gid", b"3000001"),
        ("mtime", b"1500000000.25"),
    ];
    let mut cap = Entry::new("bin/ping", tar::EntryType::Regular);
    cap.uid = 7;
    let capability: &[u8] = &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cap.pax = vec![("SCHILY.xattr.security.capability", capability)];
    let mut home = Entry::new("home", tar::EntryType::Directory);
    home.mtime = 1_111_111_111;
    let layer = TarBuilder::default()
        .dir("bin")
        .entry(suid)
        .entry(sgid)
        .entry(cap)
        .entry(sticky)
        .entry(home)
        .entry(owned)
        .entry(big)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    apply_layer(&layer[..], dir.path()).unwrap();
    let md = |p: &str| std::fs::symlink_metadata(dir.path().join(p)).unwrap();
    assert_eq!(md("bin/su").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        (
            md("bin/wall").permissions().mode() & 0o7777,
            md("bin/wall").gid()
        ),
        (0o2755, 5)
    );
    assert_eq!(
        (md("tmp").permissions().mode() & 0o7777, md("tmp").mtime()),
        (0o1777, 1_234_567_890)
    );
    let owned = md("home/u/file");
    assert_eq!(
        (
            owned.uid(),
            owned.gid(),
            owned.mode() & 0o7777,
            owned.mtime()
        ),
        (1000, 1001, 0o600, 1_000_000_000)
    );
    // Directory mtimes are set after their content was created.
    assert_eq!(md("home").mtime(), 1_111_111_111);
    // An implicit parent is created 0755 root.
    assert_eq!(
        (md("home/u").mode() & 0o7777, md("home/u").uid()),
        (0o755, 0)
    );
    let big = md("big-ids");
    assert_eq!(
        (big.uid(), big.gid(), big.mtime(), big.mtime_nsec()),
        (3_000_000, 3_000_001, 1_500_000_000, 250_000_000)
    );
    // The capability survives the chown that precedes it.
    assert_eq!(
        common::xattrs(&dir.path().join("bin/ping")),
        vec![("security.capability".to_string(), capability.to_vec())]
    );
    assert_eq!(md("bin/ping").uid(), 7);
}

#[test]
fn compressed_layers_apply_with_the_same_diff_id() {
    let layer = lower_layer();
    let mut stats = Vec::new();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut blob = Vec::new();
        let compressed = compress(
            &layer[..],
            &mut blob,
            compression,
            strata_layer::default_level(compression),
            2,
        )
        .unwrap();
        assert_eq!(compressed.size, blob.len() as u64);
        assert_eq!(compressed.digest, strata_image::Digest::of(&blob));
        assert_eq!(compressed.diff_id, strata_image::Digest::of(&layer));
        let dir = tempfile::tempdir().unwrap();
        if compression == Compression::Gzip {
            // The block-parallel stream (2 threads) is plain gzip to the reference tool.
            let path = dir.path().join("layer.tar.gz");
            std::fs::write(&path, &blob).unwrap();
            let out = std::process::Command::new("gzip")
                .arg("-dc")
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout, layer);
            std::fs::remove_file(&path).unwrap();
        }
        let applied = apply_layer(&blob[..], dir.path()).unwrap();
        assert_eq!(listing(dir.path()).len(), 8);
        stats.push(applied);
    }
    for s in &stats {
        assert_eq!(s.diff_id, strata_image::Digest::of(&layer));
        assert_eq!(s.size, layer.len() as u64);
    }
}

#[test]
fn decompression_is_detected_by_magic_bytes() {
    let data = b"not a tar, just bytes".repeat(100);
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let mut blob = Vec::new();
        compress(&data[..], &mut blob, compression, 1, 1).unwrap();
        // A reader that returns one byte at a time, like a slow pipe.
        struct Trickle<'a>(&'a [u8]);
        impl std::io::Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut out = Vec::new();
        std::io::copy(
            &mut strata_layer::decompressed(Trickle(&blob)).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, data, "{compression:?}");
    }
    let mut short = Vec::new();
    std::io::copy(
        &mut strata_layer::decompressed(&b"ab"[..]).unwrap(),
        &mut short,
    )
    .unwrap();
    assert_eq!(short, b"ab");
    let _ = std::io::sink().flush();
}

#[test]
fn old_style_directories_and_the_root_entry() {
    // A regular-file entry whose name ends in `/` is a directory (pre-POSIX tars); `./` carries the
    // root's own attributes.
    let mut root = Entry::new("./", tar::EntryType::Directory);
    root.mode = 0o750;
    root.mtime = 1_234;
    let layer = TarBuilder::default()
        .entry(root)
        .entry(Entry::new("old/", tar::EntryType::Regular))
        .file("old/f", b"x")
        .finish();
    let dir = tempfile::tempdir().unwrap();
    apply_layer(&layer[..], dir.path()).unwrap();
    assert!(dir.path().join("old").is_dir());
    let md = std::fs::metadata(dir.path()).unwrap();
    assert_eq!(
        (md.permissions().mode() & 0o7777, md.mtime()),
        (0o750, 1_234)
    );

    let not_dir = TarBuilder::default().symlink(".", "elsewhere").finish();
    let err = apply_layer(&not_dir[..], dir.path()).unwrap_err();
    assert!(
        matches!(err, strata_layer::ApplyError::RootNotDirectory { .. }),
        "{err:?}"
    );
}
