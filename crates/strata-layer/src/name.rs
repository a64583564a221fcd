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

/// A tar entry name, cleaned and relative to the target root: components joined by single `/`, no
/// `.`/`..`/empty components, no leading or trailing slash; empty for the root itself. Stored flat so
/// that parents and hashing cost one allocation whatever the depth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CleanPath {
    bytes: Vec<u8>,
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
    /// The root.
    pub fn root() -> CleanPath {
        CleanPath::default()
    }

    /// Cleans a raw tar name (see the module documentation).
    pub fn parse(raw: &[u8]) -> Result<CleanPath, NameError> {
        let mut bytes: Vec<u8> = Vec::with_capacity(raw.len());
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => {}
                b".." => {
                    if bytes.is_empty() {
                        return Err(NameError::Escapes);
                    }
                    let cut = bytes.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    bytes.truncate(cut);
                }
                other => {
                    if !bytes.is_empty() {
                        bytes.push(b'/');
                    }
                    bytes.extend_from_slice(other);
                }
            }
        }
        Ok(CleanPath { bytes })
    }

    /// The root itself (a `./` entry).
    pub fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The parent directory (the root for a top-level name).
    pub fn parent(&self) -> CleanPath {
        let cut = self.bytes.iter().rposition(|&b| b == b'/').unwrap_or(0);
        CleanPath {
            bytes: self.bytes[..cut].to_vec(),
        }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&OsStr> {
        if self.bytes.is_empty() {
            return None;
        }
        let start = self
            .bytes
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(0, |i| i + 1);
        Some(OsStr::from_bytes(&self.bytes[start..]))
    }

    /// The components, top first.
    pub fn components(&self) -> impl Iterator<Item = &OsStr> {
        self.bytes
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(OsStr::from_bytes)
    }

    /// A child of this path; `name` must be a single component.
    pub fn join(&self, name: &[u8]) -> CleanPath {
        let mut path = self.clone();
        path.push(name);
        path
    }

    /// Appends one component in place.
    pub fn push(&mut self, name: &[u8]) {
        if !self.bytes.is_empty() {
            self.bytes.push(b'/');
        }
        self.bytes.extend_from_slice(name);
    }

    /// The relative path (`.` for the root), for use with `*at` calls on the root fd.
    pub fn as_relative(&self) -> PathBuf {
        if self.bytes.is_empty() {
            return PathBuf::from(".");
        }
        PathBuf::from(OsStr::from_bytes(&self.bytes))
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
            ("a/b/../c/./d/..", Ok("a/c")),
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
    fn parents_names_and_components() {
        let p = CleanPath::parse(b"/usr//lib/x").unwrap();
        assert_eq!(p.file_name(), Some(OsStr::new("x")));
        assert_eq!(p.parent(), CleanPath::parse(b"usr/lib").unwrap());
        assert_eq!(p.parent().parent().parent(), CleanPath::root());
        assert_eq!(CleanPath::root().file_name(), None);
        assert_eq!(p.components().collect::<Vec<_>>(), ["usr", "lib", "x"]);
        assert_eq!(
            CleanPath::root().join(b"a").join(b"b"),
            CleanPath::parse(b"a/b").unwrap()
        );
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
