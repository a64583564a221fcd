//! The hostile-tar corpus: every way a layer can try to reach outside its target is refused with an
//! error naming the entry (or, for absolute names, kept inside), and nothing outside the target changes.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::{Entry, Sandbox, TarBuilder};
use strata_layer::{ApplyError, apply_layer, unpack_overlay_diff};

/// A host path the hostile tars aim at; unique per test process.
fn host_victim() -> String {
    format!("strata-layer-escape-{}", std::process::id())
}

/// Applies `tar` in a fresh sandbox with both extractors; returns the errors, after checking that the
/// sandbox outside `target/` and the host's /etc are unchanged.
fn apply_both(tar: &[u8]) -> Vec<Result<(), ApplyError>> {
    let mut results = Vec::new();
    for overlay in [false, true] {
        let sandbox = Sandbox::new();
        let before = sandbox.outside_state();
        let passwd_before = std::fs::symlink_metadata("/etc/passwd").unwrap();
        let result = if overlay {
            unpack_overlay_diff(tar, &sandbox.target()).map(drop)
        } else {
            apply_layer(tar, &sandbox.target()).map(drop)
        };
        assert_eq!(sandbox.outside_state(), before, "outside of target changed");
        let passwd_after = std::fs::symlink_metadata("/etc/passwd").unwrap();
        assert_eq!(
            passwd_before.nlink(),
            passwd_after.nlink(),
            "/etc/passwd gained a link"
        );
        assert_eq!(passwd_before.mtime(), passwd_after.mtime());
        assert!(
            !Path::new("/etc").join(host_victim()).exists(),
            "wrote into the host's /etc"
        );
        assert!(
            !Path::new("/").join(host_victim()).exists(),
            "wrote into the host's /"
        );
        results.push(result);
    }
    results
}

fn expect_refused(tar: &[u8], entry: &str, check: impl Fn(&ApplyError) -> bool) {
    for result in apply_both(tar) {
        let err = result.expect_err("hostile entry was accepted");
        assert!(check(&err), "unexpected error: {err:?}");
        let message = err.to_string();
        assert!(
            message.contains(entry),
            "error {message:?} does not name {entry:?}"
        );
    }
}

#[test]
fn dot_dot_names_are_refused() {
    for name in [
        "../../etc/passwd",
        "../x",
        "a/../../x",
        "/../x",
        "./../outside/secret",
    ] {
        let tar = TarBuilder::default().file(name, b"pwned").finish();
        expect_refused(&tar, name, |e| matches!(e, ApplyError::Escapes { .. }));
    }
}

#[test]
fn absolute_names_are_relative_to_the_target() {
    // As docker and containerd extract them: `/abs/file` is `<target>/abs/file`.
    let victim = format!("/etc/{}", host_victim());
    let tar = TarBuilder::default()
        .file(&victim, b"inside")
        .file("/abs/file", b"x")
        .finish();
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    assert_eq!(
        std::fs::read(sandbox.target().join("etc").join(host_victim())).unwrap(),
        b"inside"
    );
    assert_eq!(
        std::fs::read(sandbox.target().join("abs/file")).unwrap(),
        b"x"
    );
    assert!(!Path::new(&victim).exists());
}

#[test]
fn symlinked_parent_to_root_is_refused() {
    let entry = format!("link/etc/{}", host_victim());
    let tar = TarBuilder::default()
        .symlink("link", "/")
        .file(&entry, b"pwned")
        .finish();
    expect_refused(&tar, &entry, |e| {
        matches!(e, ApplyError::SymlinkEscapes { .. })
    });
}

#[test]
fn symlinked_parent_climbing_out_is_refused() {
    for target in ["../../..", "..", "../outside", "./../outside"] {
        let tar = TarBuilder::default()
            .symlink("link", target)
            .file("link/secret", b"pwned")
            .finish();
        expect_refused(&tar, "link/secret", |e| {
            matches!(e, ApplyError::SymlinkEscapes { .. })
        });
    }
}

#[test]
fn symlink_chain_climbing_out_is_refused() {
    let tar = TarBuilder::default()
        .dir("a")
        .symlink("a/up", "..")
        .symlink("a/up2", "up/..")
        .file("a/up2/outside/secret", b"pwned")
        .finish();
    expect_refused(&tar, "a/up2/outside/secret", |e| {
        matches!(e, ApplyError::SymlinkEscapes { .. })
    });
}

#[test]
fn symlinks_may_point_anywhere() {
    // Only following them is dangerous; storing them is what images do (`/var/run -> /run`).
    let tar = TarBuilder::default()
        .symlink("abs", "/etc/passwd")
        .symlink("up", "../../../../outside")
        .finish();
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    assert_eq!(
        std::fs::read_link(sandbox.target().join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(sandbox.target().join("up")).unwrap(),
        Path::new("../../../../outside")
    );
}

#[test]
fn a_file_over_a_symlink_replaces_the_symlink() {
    let tar = TarBuilder::default()
        .symlink("s", "../outside/secret")
        .file("s", b"new")
        .symlink("d", "../outside")
        .dir("d")
        .file("d/secret", b"new")
        .finish();
    for result in apply_both(&tar) {
        result.unwrap();
    }
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    assert_eq!(std::fs::read(sandbox.target().join("s")).unwrap(), b"new");
    assert!(
        std::fs::symlink_metadata(sandbox.target().join("d"))
            .unwrap()
            .is_dir()
    );
}

#[test]
fn hardlinks_out_of_the_target_are_refused() {
    for link in ["../../../etc/passwd", "../outside/secret"] {
        let tar = TarBuilder::default().hardlink("h", link).finish();
        expect_refused(&tar, "h", |e| matches!(e, ApplyError::LinkEscapes { .. }));
    }
    // An absolute target is inside the target, where there is no /etc/passwd.
    let tar = TarBuilder::default().hardlink("h", "/etc/passwd").finish();
    expect_refused(&tar, "h", |e| {
        matches!(e, ApplyError::LinkTargetMissing { .. })
    });
}

#[test]
fn hardlinks_through_a_symlink_are_refused() {
    let tar = TarBuilder::default()
        .symlink("link", "/")
        .hardlink("h", "link/etc/passwd")
        .finish();
    expect_refused(&tar, "h", |e| matches!(e, ApplyError::LinkEscapes { .. }));
    let tar = TarBuilder::default()
        .symlink("link", "../outside")
        .hardlink("h", "link/secret")
        .finish();
    expect_refused(&tar, "h", |e| matches!(e, ApplyError::LinkEscapes { .. }));
}

#[test]
fn a_hardlink_to_a_symlink_links_the_symlink_itself() {
    let tar = TarBuilder::default()
        .symlink("s", "/etc/passwd")
        .hardlink("h", "s")
        .finish();
    for result in apply_both(&tar) {
        result.unwrap();
    }
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    let h = std::fs::symlink_metadata(sandbox.target().join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.nlink(), 2);
}

#[test]
fn whiteouts_cannot_name_dot_dot_or_escape() {
    for (name, is_escape) in [
        ("a/.wh..", false),
        (".wh...", false),
        ("a/.wh.", false),
        ("../.wh.outside", true),
    ] {
        let tar = TarBuilder::default().dir("a").file(name, b"").finish();
        expect_refused(&tar, name, |e| {
            if is_escape {
                matches!(e, ApplyError::Escapes { .. })
            } else {
                matches!(e, ApplyError::InvalidWhiteout { .. })
            }
        });
    }
    // Whiting out through a symlinked parent is refused too, instead of deleting outside.
    let tar = TarBuilder::default()
        .symlink("link", "../outside")
        .file("link/.wh.secret", b"")
        .finish();
    let results = apply_both(&tar);
    assert!(
        matches!(results[0], Err(ApplyError::SymlinkEscapes { .. })),
        "{:?}",
        results[0]
    );
}

#[test]
fn opaque_through_a_symlink_is_refused() {
    let tar = TarBuilder::default()
        .symlink("link", "../outside")
        .file("link/.wh..wh..opq", b"")
        .finish();
    expect_refused(&tar, "link/.wh..wh..opq", |e| {
        matches!(e, ApplyError::SymlinkEscapes { .. })
    });
}

#[test]
fn device_nodes_are_created_inside() {
    let mut null = Entry::new("dev/null", tar::EntryType::Char);
    null.device = (1, 3);
    null.mode = 0o666;
    let mut loop0 = Entry::new("dev/loop0", tar::EntryType::Block);
    loop0.device = (7, 0);
    let fifo = Entry::new("run/fifo", tar::EntryType::Fifo);
    let tar = TarBuilder::default()
        .entry(null)
        .entry(loop0)
        .entry(fifo)
        .finish();
    for result in apply_both(&tar) {
        result.unwrap();
    }
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    let md = std::fs::metadata(sandbox.target().join("dev/null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(
        (md.rdev(), md.mode() & 0o7777),
        (rustix::fs::makedev(1, 3), 0o666)
    );
    let md = std::fs::symlink_metadata(sandbox.target().join("dev/loop0")).unwrap();
    assert!(md.file_type().is_block_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(7, 0));
    assert!(
        std::fs::symlink_metadata(sandbox.target().join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn very_long_names_and_link_targets() {
    let long_dir = "d".repeat(200);
    let name = format!("{long_dir}/{}", "f".repeat(200));
    let link_name = format!("{long_dir}/link");
    let link_target = format!("/{}", "t".repeat(300));
    let tar = TarBuilder::default()
        .file(&name, b"long")
        .symlink(&link_name, &link_target)
        .hardlink(&format!("{long_dir}/{}", "h".repeat(150)), &name)
        .finish();
    for result in apply_both(&tar) {
        result.unwrap();
    }
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    assert_eq!(
        std::fs::read(sandbox.target().join(&name)).unwrap(),
        b"long"
    );
    assert_eq!(
        std::fs::read_link(sandbox.target().join(&link_name)).unwrap(),
        Path::new(&link_target)
    );
    assert_eq!(
        std::fs::metadata(sandbox.target().join(&name))
            .unwrap()
            .nlink(),
        2
    );
}

#[test]
fn pax_xattrs_are_applied_and_overlay_xattrs_dropped() {
    let mut file = Entry::new("f", tar::EntryType::Regular);
    file.data = b"x";
    file.pax = vec![
        ("SCHILY.xattr.user.color", b"blue"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
    ];
    let mut dir = Entry::new("d", tar::EntryType::Directory);
    dir.pax = vec![
        ("SCHILY.xattr.user.k", b"v"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
    ];
    let tar = TarBuilder::default().entry(file).entry(dir).finish();
    for overlay in [false, true] {
        let sandbox = Sandbox::new();
        if overlay {
            unpack_overlay_diff(&tar[..], &sandbox.target()).unwrap();
        } else {
            apply_layer(&tar[..], &sandbox.target()).unwrap();
        }
        assert_eq!(
            common::xattrs(&sandbox.target().join("f")),
            vec![("user.color".to_string(), b"blue".to_vec())]
        );
        assert_eq!(
            common::xattrs(&sandbox.target().join("d")),
            vec![("user.k".to_string(), b"v".to_vec())]
        );
    }
}

#[test]
fn duplicate_entries_last_one_wins() {
    let tar = TarBuilder::default()
        .file("f", b"first")
        .file("f", b"second")
        .file("fd", b"file")
        .dir("fd")
        .file("fd/child", b"c")
        .dir("df")
        .file("df/child", b"c")
        .file("df", b"file now")
        .finish();
    let sandbox = Sandbox::new();
    apply_layer(&tar[..], &sandbox.target()).unwrap();
    let t = sandbox.target();
    assert_eq!(std::fs::read(t.join("f")).unwrap(), b"second");
    assert_eq!(std::fs::read(t.join("fd/child")).unwrap(), b"c");
    assert_eq!(std::fs::read(t.join("df")).unwrap(), b"file now");
}

#[test]
fn unsupported_entry_types_are_refused_by_name() {
    let tar = TarBuilder::default()
        .entry(Entry::new("odd", tar::EntryType::new(b'Z')))
        .finish();
    expect_refused(&tar, "odd", |e| {
        matches!(e, ApplyError::UnsupportedEntryType { kind: 'Z', .. })
    });
}

#[test]
fn a_truncated_layer_is_an_error() {
    let tar = TarBuilder::default().file("big", &[7u8; 5000]).finish();
    let sandbox = Sandbox::new();
    let err = apply_layer(&tar[..3000], &sandbox.target()).unwrap_err();
    assert!(matches!(err, ApplyError::Read(_)), "{err:?}");
}
