//! `USER` / `--user` resolution against the image's own `/etc/passwd` and `/etc/group`.
//!
//! Docker's rules (runc's `user.GetExecUser`, which BuildKit and the docker daemon call):
//!
//! - `user` is a name or a uid; a passwd entry matching either gives uid and primary gid. A
//!   numeric uid without an entry is fine and gets gid 0; an unknown name is an error.
//! - `:group` is a name or a gid; a group entry matching either gives the gid. A numeric gid
//!   without an entry is fine; an unknown name is an error.
//! - Without `:group`, the additional gids are those of the groups listing the user by name;
//!   with it, there are none.
//! - `uid:gid`, both numeric, is taken as is without reading any file (BuildKit's fast path).
//! - Ids must be in 0..=2147483647.
//!
//! Both files are read inside the rootfs: a symlink in the image cannot point the lookup at the
//! host's files. A missing file is an empty database.

use std::path::Path;

use crate::fsutil::PathError;
use crate::inroot::read_in_root;
use crate::spec::User;

/// The largest uid or gid accepted, as in runc.
const MAX_ID: u64 = i32::MAX as u64;

/// Why a user string did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {name}: no matching entries in passwd file")]
    UnknownUser { name: String },
    #[error("unable to find group {name}: no matching entries in group file")]
    UnknownGroup { name: String },
    #[error("{value} is out of range: uids and gids must be in range 0-{MAX_ID}")]
    OutOfRange { value: String },
    #[error("the user spec is empty")]
    Empty,
    #[error(transparent)]
    Read(#[from] PathError),
}

#[derive(Debug)]
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

#[derive(Debug)]
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Parse an id; `None` when `s` is not a number at all, an error when it is one out of range.
fn parse_id(s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(value) if value <= MAX_ID => Ok(Some(value as u32)),
        _ => Err(UserError::OutOfRange {
            value: s.to_owned(),
        }),
    }
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split(':').collect())
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry<'_>> {
    records(text)
        .filter_map(|fields| {
            Some(PasswdEntry {
                name: fields.first()?,
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry<'_>> {
    records(text)
        .filter_map(|fields| {
            Some(GroupEntry {
                name: fields.first()?,
                gid: fields.get(2)?.parse().ok()?,
                members: fields
                    .get(3)
                    .map(|list| {
                        list.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve `spec` (`user`, `uid`, `user:group`, `uid:gid`, `user:gid`, `uid:group`) against the
/// rootfs's `/etc/passwd` and `/etc/group`.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<User, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(UserError::Empty);
    }
    let uid_arg = parse_id(user_part)?;
    let gid_arg = group_part.map(parse_id).transpose()?.flatten();
    if let (Some(uid), Some(gid)) = (uid_arg, gid_arg) {
        return Ok(User {
            uid,
            gid,
            additional_gids: Vec::new(),
        });
    }
    let passwd = read_text(rootfs, "/etc/passwd")?;
    let group = read_text(rootfs, "/etc/group")?;
    resolve_with(&passwd, &group, user_part, group_part)
}

fn read_text(rootfs: &Path, path: &str) -> Result<String, UserError> {
    Ok(read_in_root(rootfs, Path::new(path))?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default())
}

/// The pure part of [`resolve_user`], on file contents.
fn resolve_with(
    passwd: &str,
    group: &str,
    user_part: &str,
    group_part: Option<&str>,
) -> Result<User, UserError> {
    let uid_arg = parse_id(user_part)?;
    let users = parse_passwd(passwd);
    let entry = users
        .iter()
        .find(|u| u.name == user_part || uid_arg == Some(u.uid));
    let (uid, mut gid, name) = match (entry, uid_arg) {
        (Some(entry), _) => (entry.uid, entry.gid, Some(entry.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => {
            return Err(UserError::UnknownUser {
                name: user_part.to_owned(),
            });
        }
    };
    let groups = parse_group(group);
    let mut additional_gids = Vec::new();
    match group_part {
        Some(group_part) => {
            let gid_arg = parse_id(group_part)?;
            match groups
                .iter()
                .find(|g| g.name == group_part || gid_arg == Some(g.gid))
            {
                Some(entry) => gid = entry.gid,
                None => match gid_arg {
                    Some(numeric) => gid = numeric,
                    None => {
                        return Err(UserError::UnknownGroup {
                            name: group_part.to_owned(),
                        });
                    }
                },
            }
        }
        None => {
            if let Some(name) = name {
                for entry in groups.iter().filter(|g| g.members.contains(&name)) {
                    if !additional_gids.contains(&entry.gid) {
                        additional_gids.push(entry.gid);
                    }
                }
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
broken:x:notanumber:0::/:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
app:x:1000:
staff:x:50:app,daemon
docker:x:999:app
wheel:x:10:root
";

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> User {
        User {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn docker_rules() {
        let cases: &[(&str, User)] = &[
            ("root", user(0, 0, &[10])),
            ("0", user(0, 0, &[10])),
            ("app", user(1000, 1000, &[50, 999])),
            ("1000", user(1000, 1000, &[50, 999])),
            ("daemon", user(1, 1, &[50])),
            ("4242", user(4242, 0, &[])),
            ("app:staff", user(1000, 50, &[])),
            ("app:50", user(1000, 50, &[])),
            ("app:7777", user(1000, 7777, &[])),
            ("4242:staff", user(4242, 50, &[])),
            ("1000:1000", user(1000, 1000, &[])),
            ("0:0", user(0, 0, &[])),
        ];
        for (spec, expected) in cases {
            let (user_part, group_part) = match spec.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (*spec, None),
            };
            let got = resolve_with(PASSWD, GROUP, user_part, group_part)
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(&got, expected, "{spec}");
        }
    }

    #[test]
    fn errors_name_what_is_missing() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                "nobody",
                None,
                "unable to find user nobody: no matching entries in passwd file",
            ),
            (
                "app",
                Some("nogroup"),
                "unable to find group nogroup: no matching entries in group file",
            ),
            (
                "2147483648",
                None,
                "2147483648 is out of range: uids and gids must be in range 0-2147483647",
            ),
        ];
        for (user_part, group_part, message) in cases {
            let err = resolve_with(PASSWD, GROUP, user_part, *group_part).unwrap_err();
            assert_eq!(err.to_string(), *message);
        }
    }

    #[test]
    fn reads_the_rootfs_files_and_tolerates_their_absence() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(root.path(), "123").unwrap(), user(123, 0, &[]));
        assert!(matches!(
            resolve_user(root.path(), "app"),
            Err(UserError::UnknownUser { .. })
        ));
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.path().join("etc/group"), GROUP).unwrap();
        assert_eq!(
            resolve_user(root.path(), "app").unwrap(),
            user(1000, 1000, &[50, 999])
        );
        assert!(matches!(
            resolve_user(root.path(), ""),
            Err(UserError::Empty)
        ));
    }

    #[test]
    fn a_symlinked_passwd_is_read_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("passwd"),
            root.path().join("etc/passwd"),
        )
        .unwrap();
        assert!(matches!(
            resolve_user(root.path(), "evil"),
            Err(UserError::UnknownUser { .. })
        ));
    }
}
