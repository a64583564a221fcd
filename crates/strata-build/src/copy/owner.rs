//! `COPY --chown`: `user[:group]` by name or id, names resolved in the destination rootfs's
//! `/etc/passwd` and `/etc/group` (read in-root), as BuildKit's file operation does.
//!
//! `--chown=1000` means 1000:1000; `--chown=name` takes the user's primary group from passwd;
//! `--chown=name:grp` and `--chown=:grp` (user root) resolve the group separately.

use crate::copy::CopyError;
use crate::copy::fsops::DestRoot;

/// Resolves a `--chown` value against the passwd/group files of `root`.
pub fn resolve_chown(root: &DestRoot, spec: &str) -> Result<(u32, u32), CopyError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary_gid) = if user.is_empty() {
        (0, 0)
    } else if let Ok(id) = user.parse::<u32>() {
        (id, id)
    } else {
        let passwd = root.read_small_file("etc/passwd").unwrap_or_default();
        find_user(&passwd, user).ok_or_else(|| CopyError::UnknownUser {
            name: user.to_string(),
        })?
    };
    let gid = match group {
        None | Some("") => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => {
                let groups = root.read_small_file("etc/group").unwrap_or_default();
                find_group(&groups, g).ok_or_else(|| CopyError::UnknownGroup {
                    name: g.to_string(),
                })?
            }
        },
    };
    Ok((uid, gid))
}

/// `name:password:uid:gid:gecos:home:shell` lines; the first entry with the name wins.
fn find_user(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.trim().parse().ok()?;
        let gid = fields.next()?.trim().parse().ok()?;
        Some((uid, gid))
    })
}

/// `name:password:gid:members` lines.
fn find_group(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        fields.next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> (tempfile::TempDir, DestRoot) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n# junk line\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nstaff:x:50:app\napp:x:1001:\n",
        )
        .unwrap();
        let root = DestRoot::open(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn chown_table() {
        let (_dir, root) = rootfs();
        let rows: &[(&str, (u32, u32))] = &[
            ("1000", (1000, 1000)),
            ("1000:50", (1000, 50)),
            ("app", (1000, 1001)),
            ("app:staff", (1000, 50)),
            ("app:7", (1000, 7)),
            ("5:staff", (5, 50)),
            (":staff", (0, 50)),
            ("root", (0, 0)),
        ];
        for (spec, expected) in rows {
            assert_eq!(
                resolve_chown(&root, spec).unwrap(),
                *expected,
                "--chown={spec}"
            );
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        let (_dir, root) = rootfs();
        assert_eq!(
            resolve_chown(&root, "nobody").unwrap_err().to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        assert_eq!(
            resolve_chown(&root, "app:nogroup").unwrap_err().to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
    }

    #[test]
    fn passwd_is_read_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(
            outside.path().join("passwd"),
            "evil:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("etc")).unwrap();
        let root = DestRoot::open(dir.path()).unwrap();
        assert!(resolve_chown(&root, "evil").is_err());
    }
}
