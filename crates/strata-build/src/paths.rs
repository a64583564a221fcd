//! Lexical path helpers with Go's `path` semantics (slash-separated, no filesystem access).
//!
//! Dockerfile paths are cleaned the way BuildKit cleans them (`path.Clean`), so `a//b/../c` and
//! `./c` name the same file and `../x` can never climb above the root it is relative to.

/// Go's `path.Clean`: the shortest path equivalent to `path` by purely lexical processing.
/// An empty result is `"."`; a rooted path stays rooted and `..` never climbs above `/`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Cleans `path` as if it were rooted at `/` and returns it without the leading slash
/// (`""` for the root). This is how BuildKit confines COPY sources to their context:
/// `../x` and `/x` both name `x`.
pub fn confine(path: &str) -> String {
    let cleaned = clean(&format!("/{path}"));
    cleaned.trim_start_matches('/').to_string()
}

/// Joins a relative path onto a base with Go's `path.Join` semantics (cleaned result).
pub fn join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        return clean(base);
    }
    if base.is_empty() {
        return clean(rel);
    }
    clean(&format!("{base}/{rel}"))
}

/// Resolves a COPY/ADD/WORKDIR destination against the working directory as BuildKit's
/// `pathRelativeToWorkingDir` does: absolute paths are cleaned, relative ones joined onto
/// `workdir`, `""` and `"."` mean the working directory itself, and a trailing slash (which
/// marks a directory destination) is kept.
pub fn resolve_dest(workdir: &str, dest: &str) -> String {
    let dest = if dest.is_empty() || dest == "." {
        "./"
    } else {
        dest
    };
    let trailing = dest.ends_with('/') || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        clean(dest)
    } else {
        let workdir = if workdir.is_empty() { "/" } else { workdir };
        clean(&format!("/{workdir}/{dest}"))
    };
    if trailing && joined != "/" {
        format!("{joined}/")
    } else {
        joined
    }
}

/// Go's `path.Base`.
pub fn base(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "/" };
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// Go's `path.Dir` (cleaned parent; `"."` for a bare name).
pub fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => clean(&path[..i]),
        None => ".".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        let rows = [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("/abc/def/", "/abc/def"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ];
        for (input, expected) in rows {
            assert_eq!(clean(input), expected, "clean({input:?})");
        }
    }

    #[test]
    fn confine_never_leaves_the_root() {
        assert_eq!(confine("../x"), "x");
        assert_eq!(confine("/a/../../b"), "b");
        assert_eq!(confine("."), "");
        assert_eq!(confine("./dir/"), "dir");
    }

    #[test]
    fn dest_resolution_follows_buildkit() {
        assert_eq!(resolve_dest("/app", "."), "/app/");
        assert_eq!(resolve_dest("/app", ""), "/app/");
        assert_eq!(resolve_dest("/", "."), "/");
        assert_eq!(resolve_dest("/app", "x"), "/app/x");
        assert_eq!(resolve_dest("/app", "x/"), "/app/x/");
        assert_eq!(resolve_dest("/app", "/abs/y"), "/abs/y");
        assert_eq!(resolve_dest("/app", "../etc/"), "/etc/");
        assert_eq!(resolve_dest("", "rel"), "/rel");
        assert_eq!(resolve_dest("/app", "sub/."), "/app/sub/");
    }

    #[test]
    fn base_and_dir() {
        assert_eq!(base("/a/b"), "b");
        assert_eq!(base("b/"), "b");
        assert_eq!(base("/"), "/");
        assert_eq!(dir("/a/b"), "/a");
        assert_eq!(dir("a"), ".");
        assert_eq!(dir("/a"), "/");
    }
}
