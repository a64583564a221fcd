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
//! - the cache key is the resolved commit and the subdir, so a branch that moves rebuilds and
//!   an unchanged one is cached.
//!
//! Not done: `--keep-git-dir=true` (the `.git` directory is never kept), `ADD --checksum` with a
//! commit id, and the `?ref=…&subdir=…` query form of newer BuildKit releases.

use super::{Downloaded, HttpError};
use std::path::Path;
use std::process::Command;
use strata_image::Digest;

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
/// commit and subdir.
pub fn download(source: &str, dir: &Path) -> Result<Downloaded, HttpError> {
    let parsed = parse(source);
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
        digest: Digest::of(format!("git\0{commit}\0{}", parsed.subdir).as_bytes()),
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
}
