//! `ADD <git repository>`: the repository fetched with the `git` CLI and checked out without
//! its `.git` directory, as BuildKit's git source does (`source/git`, which also shells out to
//! git). Kept beside the URL downloads because [`super::download`] is the one entry point for
//! remote ADD sources: a git source comes back as a directory whose contents the step copies.
//!
//! BuildKit's behaviour followed here:
//! - the source is `<remote>[#<ref>[:<subdir>]]`; no ref means the remote's default branch
//!   (`ls-remote --symref <remote> HEAD`);
//! - a 40-hex ref is a commit, fetched with full history; any other ref (branch or tag) is
//!   fetched with `--depth=1 --no-tags`, retried without `--depth` when the server refuses
//!   shallow fetches;
//! - only the `subdir` of the checkout is copied; submodules are checked out recursively;
//! - git runs with no system or user configuration (`GIT_CONFIG_NOSYSTEM=1`, `HOME=/dev/null`),
//!   no terminal prompts, `protocol.file.allow=user` (a repository cannot pull host files in as
//!   submodules) and ssh without a user config;
//! - the cache key is the resolved commit, the subdir and whether `.git` is kept, so a branch
//!   that moves rebuilds and an unchanged one is cached;
//! - `--keep-git-dir=true` keeps a `.git` directory in the checkout, only when the whole
//!   repository is copied (no subdir), as BuildKit's `checkout`: a fresh repository whose
//!   `origin` is the source's remote, holding the one fetched commit (`--depth=1`) checked out as
//!   a detached `HEAD`, the ref asked for kept under its name (a branch or a lightweight tag as a
//!   local branch, an annotated tag as a tag), the reflog and `FETCH_HEAD` removed;
//! - `--checksum=<hex>` is a commit id or a prefix of one: it must be hex (`invalid checksum …
//!   for Git URL, expected hex commit hash`) and the resolved commit, or the annotated tag object
//!   the ref names, must start with it (`expected checksum to match …`). The remote is still
//!   asked what the ref points to: unlike an http source, a git source is keyed by the resolved
//!   commit, not by the checksum.
//!
//! Not done: the `?ref=…&subdir=…&keep-git-dir=…&checksum=…` query form of newer BuildKit
//! releases.

use super::{Downloaded, HttpError};
use std::path::Path;
use std::process::Command;
use strata_image::Digest;

/// What the Dockerfile asks of a git source besides its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitOptions {
    /// `ADD --keep-git-dir=true`: keep the `.git` directory (whole-repository sources only).
    pub keep_git_dir: bool,
    /// `ADD --checksum=…`: the commit id (or a hex prefix of it) the ref must resolve to.
    pub checksum: Option<String>,
}

/// A git source as written: the remote, the ref (may be empty) and the subdirectory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// What git fetches from.
    pub remote: String,
    /// Branch, tag or commit; empty for the default branch.
    pub reference: String,
    /// The directory of the checkout that is copied, rootless (`""` for all of it).
    pub subdir: String,
}

/// Splits `<remote>#<ref>:<subdir>` (BuildKit's `ParseGitRef` fragment rules).
pub fn parse(source: &str) -> GitRef {
    let (remote, fragment) = source.split_once('#').unwrap_or((source, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    GitRef {
        remote: remote.to_string(),
        reference: reference.to_string(),
        subdir: crate::paths::confine(subdir),
    }
}

fn is_commit(reference: &str) -> bool {
    reference.len() == 40
        && reference
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// BuildKit accepts any non-empty run of hex digits as a git checksum (a commit id prefix).
fn valid_checksum(checksum: &str) -> bool {
    !checksum.is_empty() && checksum.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `checksum` is a prefix of the resolved commit or of the annotated tag object the
/// ref names (`tag`, when it differs from the commit). Case-sensitive, as BuildKit compares.
fn verify_checksum(
    source: &str,
    checksum: &str,
    commit: &str,
    tag: Option<&str>,
) -> Result<(), HttpError> {
    if commit.starts_with(checksum) || tag.is_some_and(|t| t.starts_with(checksum)) {
        return Ok(());
    }
    Err(HttpError::GitChecksumMismatch {
        url: source.to_string(),
        expected: checksum.to_string(),
        got: match tag {
            Some(tag) => format!("{tag} or {commit}"),
            None => commit.to_string(),
        },
    })
}

/// Where the kept repository stores the ref asked for: git's own rule for an unqualified
/// fetch destination (`refs/…` as is, `heads/`, `tags/`, `remotes/` under `refs/`, anything else
/// a branch), which is what BuildKit's `<ref>:<ref>` fetch gives.
fn kept_ref_name(reference: &str) -> String {
    if reference.starts_with("refs/") {
        reference.to_string()
    } else if ["heads/", "tags/", "remotes/"]
        .iter()
        .any(|p| reference.starts_with(p))
    {
        format!("refs/{reference}")
    } else {
        format!("refs/heads/{reference}")
    }
}

/// Runs git with BuildKit's isolated environment; stdout on success.
fn git(source: &str, args: &[&str]) -> Result<String, HttpError> {
    let mut command = Command::new("git");
    command
        .args(["-c", "protocol.file.allow=user"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env(
            "GIT_SSH_COMMAND",
            "ssh -F /dev/null -o StrictHostKeyChecking=no",
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/dev/null")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null());
    let output = command.output().map_err(|e| HttpError::Git {
        url: source.to_string(),
        command: args.join(" "),
        message: format!("cannot run git: {e}"),
    })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(HttpError::Git {
        url: source.to_string(),
        command: args.join(" "),
        message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// `git fetch`, retried without `--depth=1` when the remote cannot serve a shallow fetch.
fn fetch(source: &str, args: &[&str]) -> Result<(), HttpError> {
    match git(source, args) {
        Err(HttpError::Git { message, .. })
            if message.contains("--depth") || message.contains("shallow") =>
        {
            let deep: Vec<&str> = args.iter().copied().filter(|a| *a != "--depth=1").collect();
            git(source, &deep).map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

/// Fetches `source` and checks it out under `dir/checkout`; the returned [`Downloaded`] names
/// the directory to copy (`checkout` or `checkout/<subdir>`) and its digest identifies the
/// commit, the subdir and whether `.git` is kept.
pub fn download(source: &str, dir: &Path, options: &GitOptions) -> Result<Downloaded, HttpError> {
    let parsed = parse(source);
    // Checked before any network access, as BuildKit does when it resolves the ref.
    if let Some(checksum) = &options.checksum
        && !valid_checksum(checksum)
    {
        return Err(HttpError::GitChecksumInvalid {
            checksum: checksum.clone(),
        });
    }
    let bare = dir.join("repo.git");
    let checkout = dir.join("checkout");
    let mkdir = |path: &Path| {
        std::fs::create_dir_all(path).map_err(|e| HttpError::Write {
            path: path.to_path_buf(),
            source: e,
        })
    };
    mkdir(&bare)?;
    mkdir(&checkout)?;
    let bare_arg = bare.to_string_lossy().into_owned();
    let checkout_arg = checkout.to_string_lossy().into_owned();
    let in_bare = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--git-dir".to_string(), bare_arg.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        git(source, &refs)
    };
    run(in_bare(&[
        "-c",
        "init.defaultBranch=master",
        "init",
        "--bare",
        "-q",
    ]))?;
    run(in_bare(&["remote", "add", "origin", &parsed.remote]))?;

    let reference = if parsed.reference.is_empty() {
        let listed = run(in_bare(&["ls-remote", "--symref", "origin", "HEAD"]))?;
        listed
            .lines()
            .find_map(|l| l.strip_prefix("ref: refs/heads/"))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .ok_or_else(|| HttpError::Git {
                url: source.to_string(),
                command: "ls-remote --symref origin HEAD".into(),
                message: "could not find the default branch".into(),
            })?
    } else {
        parsed.reference.clone()
    };
    let local = if is_commit(&reference) {
        let args = in_bare(&["fetch", "origin"]);
        fetch(source, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        reference.clone()
    } else {
        let spec = format!("{reference}:tags/{reference}");
        let args = in_bare(&[
            "fetch",
            "--depth=1",
            "--no-tags",
            "origin",
            "--force",
            &spec,
        ]);
        fetch(source, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        format!("tags/{reference}")
    };
    let commit = run(in_bare(&["rev-parse", &format!("{local}^{{commit}}")]))?
        .trim()
        .to_string();
    // The object the ref names: an annotated tag's own id differs from its commit's.
    let object = run(in_bare(&["rev-parse", &local]))?.trim().to_string();
    let annotated = object != commit;
    if let Some(checksum) = &options.checksum {
        verify_checksum(source, checksum, &commit, annotated.then_some(&*object))?;
    }
    // BuildKit keeps `.git` only for a whole-repository checkout.
    let keep_git_dir = options.keep_git_dir && parsed.subdir.is_empty();
    if keep_git_dir {
        let in_checkout = |args: &[&str]| -> Vec<String> {
            let mut all = vec!["-C".to_string(), checkout_arg.clone()];
            all.extend(args.iter().map(|a| a.to_string()));
            all
        };
        run(in_checkout(&[
            "-c",
            "init.defaultBranch=master",
            "init",
            "-q",
        ]))?;
        // A file:// URL, not a path: git's local-clone shortcuts (hard links, alternates) stay
        // off, as in BuildKit.
        run(in_checkout(&[
            "remote",
            "add",
            "origin",
            &format!("file://{bare_arg}"),
        ]))?;
        let pull = if annotated {
            format!("{local}:refs/tags/{reference}")
        } else if is_commit(&reference) {
            // A commit id is fetched through a ref of its own: it then needs no
            // `uploadpack.allowAnySHA1InWant` on the (local) serving side.
            run(in_bare(&["update-ref", "refs/strata/keep", &commit]))?;
            "refs/strata/keep".to_string()
        } else {
            format!("{local}:{}", kept_ref_name(&reference))
        };
        run(in_checkout(&[
            "fetch",
            "-q",
            "-u",
            "--depth=1",
            "origin",
            &pull,
        ]))?;
        run(in_checkout(&["checkout", "-q", "FETCH_HEAD"]))?;
        run(in_checkout(&[
            "remote",
            "set-url",
            "origin",
            &parsed.remote,
        ]))?;
        run(in_checkout(&["reflog", "expire", "--all", "--expire=now"]))?;
        let fetch_head = checkout.join(".git/FETCH_HEAD");
        match std::fs::remove_file(&fetch_head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(HttpError::Write {
                    path: fetch_head,
                    source,
                });
            }
        }
        run(in_checkout(&[
            "submodule",
            "update",
            "--init",
            "--recursive",
            "--depth=1",
        ]))?;
    } else {
        let mut checkout_args = in_bare(&["--work-tree", &checkout_arg]);
        checkout_args.extend(["checkout", &commit, "--", "."].map(String::from));
        run(checkout_args)?;
        let mut submodules = in_bare(&["--work-tree", &checkout_arg]);
        submodules.extend(
            [
                "-C",
                &checkout_arg,
                "submodule",
                "update",
                "--init",
                "--recursive",
                "--depth=1",
            ]
            .map(String::from),
        );
        run(submodules)?;
    }

    let file_name = if parsed.subdir.is_empty() {
        "checkout".to_string()
    } else {
        format!("checkout/{}", parsed.subdir)
    };
    if !dir.join(&file_name).is_dir() {
        return Err(HttpError::Git {
            url: source.to_string(),
            command: format!("checkout {commit}"),
            message: format!(
                "subdirectory /{} not found in the repository",
                parsed.subdir
            ),
        });
    }
    Ok(Downloaded {
        path: dir.join(&file_name),
        file_name,
        // The ref is part of a kept `.git`, hence of the key then (BuildKit: `<sha>.git#<ref>`).
        digest: Digest::of(
            if options.keep_git_dir {
                format!(
                    "git\0{commit}\0{}\0keep-git-dir\0{reference}",
                    parsed.subdir
                )
            } else {
                format!("git\0{commit}\0{}", parsed.subdir)
            }
            .as_bytes(),
        ),
        size: 0,
        last_modified: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_like_buildkit() {
        for (source, remote, reference, subdir) in [
            ("git@h:o/r.git", "git@h:o/r.git", "", ""),
            ("https://h/o/r.git#v1", "https://h/o/r.git", "v1", ""),
            (
                "https://h/o/r.git#main:docs/api",
                "https://h/o/r.git",
                "main",
                "docs/api",
            ),
            ("git://h/r#:sub", "git://h/r", "", "sub"),
            ("git://h/r#x:../../etc", "git://h/r", "x", "etc"),
        ] {
            assert_eq!(
                parse(source),
                GitRef {
                    remote: remote.into(),
                    reference: reference.into(),
                    subdir: subdir.into()
                },
                "{source}"
            );
        }
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("main"));
        assert!(!is_commit("0123456789ABCDEF0123456789abcdef01234567"));
    }

    #[test]
    fn checksums_are_hex_prefixes_of_the_commit_or_the_annotated_tag() {
        for (checksum, valid) in [
            ("0123abc", true),
            ("ABCDEF", true),
            ("", false),
            ("sha256:0123", false),
            ("v1.2", false),
        ] {
            assert_eq!(valid_checksum(checksum), valid, "{checksum:?}");
        }
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let tag = "fedcba9876543210fedcba9876543210fedcba98";
        for (checksum, tag, ok) in [
            (commit, None, true),
            ("0123456", None, true),
            ("fedcba9", Some(tag), true),
            ("fedcba9", None, false),
            // Case-sensitive, as BuildKit's strings.HasPrefix.
            ("0123456789ABCDEF", None, false),
        ] {
            let got = verify_checksum("git://h/r", checksum, commit, tag);
            assert_eq!(got.is_ok(), ok, "{checksum} {tag:?}");
        }
        let err = verify_checksum("git://h/r", "dead", commit, Some(tag)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("git://h/r: expected checksum to match dead, got {tag} or {commit}")
        );
    }

    #[test]
    fn kept_refs_are_named_as_git_names_an_unqualified_fetch_destination() {
        for (reference, kept) in [
            ("main", "refs/heads/main"),
            ("v1", "refs/heads/v1"),
            ("tags/v1", "refs/tags/v1"),
            ("heads/dev", "refs/heads/dev"),
            ("refs/pull/1/head", "refs/pull/1/head"),
        ] {
            assert_eq!(kept_ref_name(reference), kept, "{reference}");
        }
    }
}
