//! `copy_out`/`copy_in` on a plain directory standing in for a container's root: every
//! container path resolves inside it, whatever symlinks the container planted (absolute,
//! relative climbing above the root, chains), in both directions.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use strata_container::copy::{copy_in, copy_out};
use strata_container::{ContainerError, CopyEndpoint, CopyReason};

/// A rootfs with hostile links next to a host directory holding a secret.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    let host = tmp.path().join("host");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("secret"), "host\n").unwrap();
    fs::write(rootfs.join("etc/passwd"), "container\n").unwrap();
    symlink("/", rootfs.join("escape")).unwrap();
    symlink("../../../../..", rootfs.join("up")).unwrap();
    symlink("/etc", rootfs.join("x")).unwrap();
    symlink(&host, rootfs.join("hostdir")).unwrap();
    symlink("chain2", rootfs.join("chain1")).unwrap();
    symlink("/up/etc", rootfs.join("chain2")).unwrap();
    (tmp, rootfs, host)
}

fn read_out(rootfs: &Path, src: &str, dest: &Path) -> Result<String, ContainerError> {
    copy_out(
        rootfs,
        "test",
        src,
        &CopyEndpoint::Path(dest.to_owned()),
        &mut Vec::new(),
    )?;
    Ok(fs::read_to_string(dest).unwrap())
}

#[test]
fn reads_resolve_inside_the_root() {
    let (tmp, rootfs, host) = setup();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let table = [
        "/escape/etc/passwd",
        "/up/etc/passwd",
        "/x/passwd",
        "/chain1/passwd",
        "/../../etc/passwd",
        "escape/../../etc/passwd",
    ];
    for (i, src) in table.iter().enumerate() {
        let dest = out.join(format!("{i}"));
        assert_eq!(
            read_out(&rootfs, src, &dest).unwrap(),
            "container\n",
            "{src}"
        );
    }
    // The host path through any of them is the container's (missing) path.
    let secret = host.join("secret");
    for src in [
        format!("/escape{}", secret.display()),
        format!("/up{}", secret.display()),
        "/hostdir/secret".to_owned(),
    ] {
        let err = read_out(&rootfs, &src, &out.join("leak")).unwrap_err();
        assert!(
            matches!(
                err,
                ContainerError::CopyPath {
                    reason: CopyReason::NotFound,
                    ..
                }
            ),
            "{src}: {err}"
        );
        assert!(!out.join("leak").exists());
    }
}

#[test]
fn writes_resolve_inside_the_root() {
    let (tmp, rootfs, host) = setup();
    let payload = tmp.path().join("payload");
    fs::write(&payload, "payload\n").unwrap();
    let src = CopyEndpoint::Path(payload.clone());
    // Into directories reached through links: the container's /etc.
    for dest in ["/x/", "/escape/etc/", "/up/etc/", "/chain1/"] {
        fs::remove_file(rootfs.join("etc/payload")).ok();
        copy_in(&rootfs, "test", &src, dest, &mut std::io::empty()).unwrap();
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/payload")).unwrap(),
            "payload\n",
            "{dest}"
        );
    }
    // A link to a host directory is, inside the root, a missing directory.
    let err = copy_in(&rootfs, "test", &src, "/hostdir/", &mut std::io::empty()).unwrap_err();
    assert!(matches!(err, ContainerError::CopyPath { .. }), "{err}");
    assert_eq!(fs::read_dir(&host).unwrap().count(), 1);
    // Replacing a link to a host file replaces the link, not the file.
    symlink(host.join("secret"), rootfs.join("etc/secretlink")).unwrap();
    copy_in(
        &rootfs,
        "test",
        &src,
        "/etc/secretlink",
        &mut std::io::empty(),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(host.join("secret")).unwrap(), "host\n");
    assert!(
        !fs::symlink_metadata(rootfs.join("etc/secretlink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_tar_stream_cannot_write_through_its_own_links() {
    let (_tmp, rootfs, host) = setup();
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder.append_link(&mut link, "planted", &host).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_size(4);
    file.set_mode(0o644);
    builder
        .append_data(&mut file, "planted/evil", &b"bad\n"[..])
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    let result = copy_in(
        &rootfs,
        "test",
        &CopyEndpoint::Stream,
        "/etc",
        &mut &bytes[..],
    );
    assert!(result.is_err());
    assert!(!host.join("evil").exists());
    // Names that climb out are refused outright.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    // `append_data` refuses `..`; write the name into the header directly.
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../../outside");
    header.set_cksum();
    builder.append(&header, &b"bad\n"[..]).unwrap();
    let bytes = builder.into_inner().unwrap();
    let err = copy_in(
        &rootfs,
        "test",
        &CopyEndpoint::Stream,
        "/etc",
        &mut &bytes[..],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ContainerError::CopyPath {
                reason: CopyReason::Escapes,
                ..
            }
        ),
        "{err}"
    );
}
