//! Pure interpretation of tar entry names: cleaning, escape detection and whiteout classification.
//!
//! Names are bytes (tar does not promise UTF-8). Cleaning follows docker's `filepath.Clean` followed by
//! "relative to the target": empty and `.` components vanish, a leading `/` is dropped (an absolute name
//! is relative to the root, as docker and containerd extract it), and `..` pops the previous component.
//! A `..` that would climb above the root is an escape and the entry is refused; docker refuses it the
//! same way (`breakoutError`), while containerd clamps it to the root. Refusing is the safer of the two
//! and no producer emits such names.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The prefix of a whiteout entry: `.wh.<name>` deletes `<name>` from the lower layers.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of an opaque-directory marker: hides every lower child of its directory.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// Names starting with this are reserved for whiteout metadata (`.wh..wh.` + anything).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// A tar entry name, cleaned into components relative to the target root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CleanPath {
    components: Vec<Vec<u8>>,
}

/// Why an entry name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A `..` climbs above the root.
    Escapes,
    /// A whiteout names `.`/`..`/nothing, or is an unknown `.wh..wh.` meta entry.
    InvalidWhiteout,
}

impl CleanPath {
    /// Cleans a raw tar name (see the module documentation).
    pub fn parse(raw: &[u8]) -> Result<CleanPath, NameError> {
        let mut components: Vec<Vec<u8>> = Vec::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    if components.pop().is_none() {
                        return Err(NameError::Escapes);
                    }
                }
                other => components.push(other.to_vec()),
            }
        }
        Ok(CleanPath { components })
    }

    /// The root itself (a `./` entry).
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The parent directory (the root for a top-level name).
    pub fn parent(&self) -> CleanPath {
        let mut components = self.components.clone();
        components.pop();
        CleanPath { components }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&OsStr> {
        self.components.last().map(|c| OsStr::from_bytes(c))
    }

    /// A child of this path; `name` must be a single component.
    pub fn join(&self, name: &[u8]) -> CleanPath {
        let mut components = self.components.clone();
        components.push(name.to_vec());
        CleanPath { components }
    }

    /// The relative path (`.` for the root), for use with `*at` calls on the root fd.
    pub fn as_relative(&self) -> PathBuf {
        if self.components.is_empty() {
            return PathBuf::from(".");
        }
        let mut out = Vec::new();
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(c);
        }
        PathBuf::from(OsStr::from_bytes(&out))
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &CleanPath) -> bool {
        self.components.starts_with(&other.components)
    }
}

/// What an entry means to the layer model, decided from its name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// An ordinary entry at this path.
    Plain(CleanPath),
    /// `.wh.<name>`: delete `<name>` (the returned path) from the lower layers.
    Whiteout(CleanPath),
    /// `<dir>/.wh..wh..opq`: hide all lower children of `<dir>` (the returned path).
    Opaque(CleanPath),
}

/// Classifies a raw tar name.
pub fn classify(raw: &[u8]) -> Result<EntryKind, NameError> {
    let path = CleanPath::parse(raw)?;
    let Some(name) = path.file_name() else {
        return Ok(EntryKind::Plain(path));
    };
    let name = name.as_bytes();
    if name == WHITEOUT_OPAQUE.as_bytes() {
        return Ok(EntryKind::Opaque(path.parent()));
    }
    if name.starts_with(WHITEOUT_META_PREFIX) {
        // Reserved for whiteout metadata; AUFS hardlink dirs (`.wh..wh.plnk`) and the like have no
        // meaning in an OCI layer and would otherwise be created as odd files.
        return Err(NameError::InvalidWhiteout);
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if target.is_empty() || target == b"." || target == b".." {
            return Err(NameError::InvalidWhiteout);
        }
        return Ok(EntryKind::Whiteout(path.parent().join(target)));
    }
    Ok(EntryKind::Plain(path))
}

/// Displays raw entry bytes in error messages.
pub(crate) fn display_name(raw: &[u8]) -> PathBuf {
    Path::new(OsStr::from_bytes(raw)).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(raw: &str) -> Result<String, NameError> {
        CleanPath::parse(raw.as_bytes()).map(|p| p.as_relative().to_string_lossy().into_owned())
    }

    #[test]
    fn cleaning_table() {
        let table: &[(&str, Result<&str, NameError>)] = &[
            ("etc/passwd", Ok("etc/passwd")),
            ("./etc/passwd", Ok("etc/passwd")),
            ("/etc/passwd", Ok("etc/passwd")),
            ("//etc//passwd/", Ok("etc/passwd")),
            ("etc/./x/../passwd", Ok("etc/passwd")),
            ("./", Ok(".")),
            ("/", Ok(".")),
            ("a/..", Ok(".")),
            ("../etc/passwd", Err(NameError::Escapes)),
            ("../../etc/passwd", Err(NameError::Escapes)),
            ("a/../../b", Err(NameError::Escapes)),
            ("/../x", Err(NameError::Escapes)),
        ];
        for (raw, want) in table {
            assert_eq!(rel(raw), want.clone().map(str::to_string), "{raw}");
        }
    }

    #[test]
    fn whiteout_table() {
        let p = |s: &str| CleanPath::parse(s.as_bytes()).unwrap();
        let table: &[(&str, Result<EntryKind, NameError>)] = &[
            ("a/b", Ok(EntryKind::Plain(p("a/b")))),
            ("a/.wh.b", Ok(EntryKind::Whiteout(p("a/b")))),
            (".wh.b", Ok(EntryKind::Whiteout(p("b")))),
            ("a/.wh..wh..opq", Ok(EntryKind::Opaque(p("a")))),
            (".wh..wh..opq", Ok(EntryKind::Opaque(p("")))),
            ("a/.wh..wh.plnk", Err(NameError::InvalidWhiteout)),
            ("a/.wh..", Err(NameError::InvalidWhiteout)),
            ("a/.wh...", Err(NameError::InvalidWhiteout)),
            ("a/.wh.", Err(NameError::InvalidWhiteout)),
            ("a/.whx", Ok(EntryKind::Plain(p("a/.whx")))),
            ("../.wh.x", Err(NameError::Escapes)),
        ];
        for (raw, want) in table {
            assert_eq!(&classify(raw.as_bytes()), want, "{raw}");
        }
    }
}
