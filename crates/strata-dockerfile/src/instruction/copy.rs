//! `COPY`/`ADD`: sources (paths, URLs, heredocs), destination and flags, with the flag values
//! that need validating: `--chmod` (octal or symbolic) and `--checksum`.

use super::Command;
use crate::error::ParseErrorKind;
use crate::expand::ExpandErrorKind;
use crate::flags::{FlagType, Flags};
use crate::heredoc::{self, Heredoc};
use crate::shell::{Env, Lexer};
use crate::syntax::RawInstruction;

/// `COPY`/`ADD`: sources, destination and flags (unexpanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// Sources in order: paths (or URLs for ADD) and heredocs.
    pub sources: Vec<CopySource>,
    /// The destination as written.
    pub dest: String,
    /// Written in JSON form.
    pub exec_form: bool,
    /// `--from` (COPY only): a stage name, a stage index or an image, unexpanded.
    pub from: Option<String>,
    /// `--chown`, unexpanded.
    pub chown: Option<String>,
    /// `--chmod`, unexpanded (validated when literal; see [`Chmod`]).
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns, unexpanded.
    pub exclude: Vec<String>,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--checksum` (ADD only), unexpanded.
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: Option<bool>,
    /// `--unpack` (ADD only).
    pub unpack: Option<bool>,
}

impl CopyCommand {
    /// The literal `--chmod`, parsed (None when absent or not yet expanded).
    pub fn literal_chmod(&self) -> Option<Chmod> {
        self.chmod.as_deref().and_then(Chmod::parse)
    }
}

/// One COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path (or URL) as written.
    Path(String),
    /// A heredoc: the file is named after the delimiter and holds the body.
    Heredoc(Heredoc),
}

pub(crate) fn parse_copy(
    is_add: bool,
    flag_words: &[String],
    rest: &str,
    raw: &RawInstruction,
) -> Result<Command, ParseErrorKind> {
    let instruction = if is_add { "ADD" } else { "COPY" };
    use FlagType::{Bool, List, String as Str};
    // The flags of BuildKit's reference: ADD has no --from and no --parents.
    let common: &[(&str, FlagType)] = &[
        ("chown", Str),
        ("chmod", Str),
        ("link", Bool),
        ("exclude", List),
    ];
    let extra: &[(&str, FlagType)] = if is_add {
        &[("checksum", Str), ("keep-git-dir", Bool), ("unpack", Bool)]
    } else {
        &[("from", Str), ("parents", Bool)]
    };
    let spec: Vec<(&'static str, FlagType)> = common.iter().chain(extra).copied().collect();
    let flags = Flags::parse(flag_words, &spec)?;
    let words = super::list(rest)?;
    let exec_form = words.1;
    let mut args = words.0;
    if args.len() < 2 {
        return Err(ParseErrorKind::NoDestination { instruction });
    }
    let dest = args.pop().unwrap_or_default();
    if heredoc::marker(&dest).is_some() {
        return Err(ParseErrorKind::HeredocDestination { instruction });
    }
    let sources = args
        .into_iter()
        .map(|word| {
            let doc =
                heredoc::marker(&word).and_then(|m| raw.heredocs.iter().find(|h| h.name == m.name));
            match doc {
                Some(doc) => CopySource::Heredoc(doc.clone()),
                None => CopySource::Path(word),
            }
        })
        .collect();
    let chmod = flags.string("chmod");
    if let Some(value) = &chmod
        && !value.contains('$')
        && Chmod::parse(value).is_none()
    {
        return Err(ParseErrorKind::InvalidChmod {
            value: value.clone(),
        });
    }
    let checksum = flags.string("checksum");
    if let Some(value) = &checksum
        && !value.contains('$')
        && !valid_checksum(value)
    {
        return Err(ParseErrorKind::InvalidChecksum {
            value: value.clone(),
        });
    }
    let copy = CopyCommand {
        sources,
        dest,
        exec_form,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod,
        link: flags.boolean("link").unwrap_or(false),
        exclude: flags.list("exclude").to_vec(),
        parents: flags.boolean("parents").unwrap_or(false),
        checksum,
        keep_git_dir: flags.boolean("keep-git-dir"),
        unpack: flags.boolean("unpack"),
    };
    Ok(if is_add {
        Command::Add(copy)
    } else {
        Command::Copy(copy)
    })
}

pub(crate) fn expand_copy(
    copy: &CopyCommand,
    lexer: &Lexer,
    env: &dyn Env,
) -> Result<CopyCommand, ExpandErrorKind> {
    let word =
        |w: &str| -> Result<String, ExpandErrorKind> { Ok(lexer.expand_word(w, env)?.value) };
    let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
    // Heredoc bodies keep their quotes: only variables and escapes are processed, and the
    // escape is always `\` whatever `# escape=` says (BuildKit expands them with a lexer of
    // its own: the body is a file's text, not Dockerfile syntax).
    let body_lexer = Lexer::new('\\').skip_process_quotes(true);
    let sources = copy
        .sources
        .iter()
        .map(|source| {
            Ok(match source {
                CopySource::Path(path) => CopySource::Path(word(path)?),
                CopySource::Heredoc(doc) if doc.expand => {
                    let mut doc = doc.clone();
                    doc.raw = body_lexer.expand_word(&doc.content(), env)?.value;
                    doc.chomp = false;
                    CopySource::Heredoc(doc)
                }
                CopySource::Heredoc(doc) => CopySource::Heredoc(doc.clone()),
            })
        })
        .collect::<Result<Vec<_>, ExpandErrorKind>>()?;
    let chmod = opt(&copy.chmod)?;
    if let Some(value) = &chmod
        && Chmod::parse(value).is_none()
    {
        return Err(ParseErrorKind::InvalidChmod {
            value: value.clone(),
        }
        .into());
    }
    let checksum = opt(&copy.checksum)?;
    if let Some(value) = &checksum
        && !valid_checksum(value)
    {
        return Err(ParseErrorKind::InvalidChecksum {
            value: value.clone(),
        }
        .into());
    }
    Ok(CopyCommand {
        sources,
        dest: word(&copy.dest)?,
        exec_form: copy.exec_form,
        from: copy.from.clone(),
        chown: opt(&copy.chown)?,
        chmod,
        link: copy.link,
        exclude: copy
            .exclude
            .iter()
            .map(|p| word(p))
            .collect::<Result<_, _>>()?,
        parents: copy.parents,
        checksum,
        keep_git_dir: copy.keep_git_dir,
        unpack: copy.unpack,
    })
}

/// A `--chmod` value: octal (`0644`, `755`) or symbolic (`u+x,go-w`, `a=rX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Permission bits, at most `0o7777`.
    Octal(u32),
    /// Symbolic clauses, validated; applied per file with [`Chmod::apply`].
    Symbolic(String),
}

impl Chmod {
    /// Parses an (expanded) `--chmod` value; `None` when invalid.
    pub fn parse(value: &str) -> Option<Chmod> {
        if !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let mode = u32::from_str_radix(value, 8).ok()?;
            return (mode <= 0o7777).then_some(Chmod::Octal(mode));
        }
        let valid = value
            .split(',')
            .all(|clause| symbolic_clause(clause).is_some());
        valid.then(|| Chmod::Symbolic(value.to_string()))
    }

    /// The permission bits for a file whose current mode is `mode` (permission bits only).
    /// `X` grants execute only to directories and files already executable by someone.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(bits) => *bits,
            Chmod::Symbolic(text) => {
                let mut mode = mode & 0o7777;
                for clause in text.split(',') {
                    if let Some((who, actions)) = symbolic_clause(clause) {
                        for (op, perm) in actions {
                            let bits = perm.bits(mode, is_dir) & who;
                            mode = match op {
                                '+' => mode | bits,
                                '-' => mode & !bits,
                                _ => (mode & !who) | bits,
                            };
                        }
                    }
                }
                mode
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Perm {
    Bits {
        rwx: u32,
        x_cond: bool,
        special: u32,
    },
    Copy(u32),
}

impl Perm {
    /// The bits granted, spread to all of u/g/o (masked by `who` later).
    fn bits(self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Perm::Bits {
                rwx,
                x_cond,
                special,
            } => {
                let mut rwx = rwx;
                if x_cond && (is_dir || mode & 0o111 != 0) {
                    rwx |= 1;
                }
                (rwx << 6) | (rwx << 3) | rwx | special
            }
            Perm::Copy(shift) => {
                let rwx = (mode >> shift) & 7;
                (rwx << 6) | (rwx << 3) | rwx
            }
        }
    }
}

/// Parses `[ugoa]*([-+=]([rwxXst]*|[ugo]))+`; returns the `who` mask and the actions.
fn symbolic_clause(clause: &str) -> Option<(u32, Vec<(char, Perm)>)> {
    let mut chars = clause.chars().peekable();
    let mut who = 0;
    while let Some(&c) = chars.peek() {
        who |= match c {
            'u' => 0o4700,
            'g' => 0o2070,
            'o' => 0o1007,
            'a' => 0o7777,
            _ => break,
        };
        chars.next();
    }
    if who == 0 {
        who = 0o7777;
    }
    let mut actions = Vec::new();
    while let Some(op) = chars.next() {
        if !matches!(op, '+' | '-' | '=') {
            return None;
        }
        let perm = match chars.peek() {
            Some('u') => Some(6),
            Some('g') => Some(3),
            Some('o') => Some(0),
            _ => None,
        };
        if let Some(shift) = perm {
            chars.next();
            actions.push((op, Perm::Copy(shift)));
            continue;
        }
        let (mut rwx, mut x_cond, mut special) = (0, false, 0);
        while let Some(&c) = chars.peek() {
            match c {
                'r' => rwx |= 4,
                'w' => rwx |= 2,
                'x' => rwx |= 1,
                'X' => x_cond = true,
                's' => special |= 0o6000,
                't' => special |= 0o1000,
                _ => break,
            }
            chars.next();
        }
        actions.push((
            op,
            Perm::Bits {
                rwx,
                x_cond,
                special,
            },
        ));
    }
    (!actions.is_empty()).then_some((who, actions))
}

/// Validates an `ADD --checksum` value: a digest (`sha256:<64 hex>`, `sha384:<96>`,
/// `sha512:<128>`) for a URL, or a commit id or a prefix of one (lowercase hex) for a git source.
/// Which of the two a source accepts is the engine's check, made when the source kind is known,
/// as BuildKit makes it.
pub(crate) fn valid_checksum(value: &str) -> bool {
    let lower_hex = |hex: &str| {
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let Some((algorithm, hex)) = value.split_once(':') else {
        // A git commit id: SHA-1 (40) or SHA-256 (64) object names, or a prefix.
        return !value.is_empty() && value.len() <= 64 && lower_hex(value);
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && lower_hex(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_parse_table() {
        let cases = [
            ("644", Some(Chmod::Octal(0o644))),
            ("0755", Some(Chmod::Octal(0o755))),
            ("4755", Some(Chmod::Octal(0o4755))),
            ("17777", None),
            ("u+x", Some(Chmod::Symbolic("u+x".into()))),
            ("go-w,a+rX", Some(Chmod::Symbolic("go-w,a+rX".into()))),
            ("=r", Some(Chmod::Symbolic("=r".into()))),
            ("g=u", Some(Chmod::Symbolic("g=u".into()))),
            ("u", None),
            ("u+z", None),
            ("888", None),
            ("", None),
            ("+x,", None),
        ];
        for (text, want) in cases {
            assert_eq!(Chmod::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn chmod_apply_table() {
        // chmod, current mode, is_dir, result
        let cases = [
            ("0600", 0o777, false, 0o600),
            ("u+x", 0o644, false, 0o744),
            ("go-w", 0o666, false, 0o644),
            ("a+X", 0o644, false, 0o644),
            ("a+X", 0o744, false, 0o755),
            ("a+X", 0o644, true, 0o755),
            ("u=rw,go=r", 0o777, false, 0o644),
            ("g=u", 0o740, false, 0o770),
            ("o=", 0o777, false, 0o770),
            ("u+s", 0o755, false, 0o4755),
        ];
        for (text, mode, is_dir, want) in cases {
            let chmod = Chmod::parse(text).unwrap();
            assert_eq!(chmod.apply(mode, is_dir), want, "{text} on {mode:o}");
        }
    }

    #[test]
    fn checksum_table() {
        let hex64 = "a".repeat(64);
        assert!(valid_checksum(&format!("sha256:{hex64}")));
        assert!(!valid_checksum(&format!("sha256:{}", "A".repeat(64))));
        assert!(!valid_checksum("sha256:abc"));
        assert!(!valid_checksum(&format!("md5:{hex64}")));
        // A git commit id or a prefix of one (the engine refuses it for a URL).
        assert!(valid_checksum(&hex64));
        assert!(valid_checksum("4b825dc6"));
        assert!(!valid_checksum("4B825DC6"));
        assert!(!valid_checksum(""));
        assert!(!valid_checksum(&"a".repeat(65)));
    }
}
