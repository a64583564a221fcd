//! `COPY --chmod`: octal (`0755`, `4755`) or symbolic (`u+x`, `go-w`, `a=rX,u+w`) as BuildKit
//! accepts them (its symbolic parser is a port of BSD `setmode`, with a zero umask).
//!
//! The mode applies to every copied file *and* directory (directories created only as missing
//! parents of the destination keep 0755). `X` adds execute only for directories and for files
//! that already have an execute bit, which is what makes `a+rX` useful on a whole tree.

use thiserror::Error;

/// An invalid `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChmodError {
    /// A numeric value that is not octal or above 07777 (BuildKit's message).
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    Octal(String),
    /// A symbolic value that does not parse.
    #[error(
        "invalid chmod parameter: '{0}'. it should be octal (e.g. 0755) or symbolic (e.g. u+x,go-w)"
    )]
    Symbolic(String),
}

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal permission bits (may include setuid, setgid and sticky).
    Octal(u32),
    /// Comma-separated symbolic clauses.
    Symbolic(Vec<Clause>),
}

/// One symbolic clause: who it applies to and its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bitmask of u (4), g (2), o (1); 0 means "all" (no who letters given).
    who: u8,
    ops: Vec<(Op, Perm)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Set,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    /// Letters among r, w, x, X, s, t.
    Letters {
        r: bool,
        w: bool,
        x: bool,
        big_x: bool,
        s: bool,
        t: bool,
    },
    /// Copy the permissions another class currently has (`u=g`).
    Copy(u8),
}

const WHO_U: u8 = 4;
const WHO_G: u8 = 2;
const WHO_O: u8 = 1;

impl Chmod {
    /// Parses a `--chmod` value.
    pub fn parse(s: &str) -> Result<Self, ChmodError> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(s, 8) {
                Ok(v) if v <= 0o7777 => Ok(Chmod::Octal(v)),
                _ => Err(ChmodError::Octal(s.to_string())),
            };
        }
        let bad = || ChmodError::Symbolic(s.to_string());
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let bytes = part.as_bytes();
            let mut i = 0;
            let mut who = 0u8;
            while i < bytes.len() {
                match bytes[i] {
                    b'u' => who |= WHO_U,
                    b'g' => who |= WHO_G,
                    b'o' => who |= WHO_O,
                    b'a' => who |= WHO_U | WHO_G | WHO_O,
                    _ => break,
                }
                i += 1;
            }
            let mut ops = Vec::new();
            while i < bytes.len() {
                let op = match bytes[i] {
                    b'+' => Op::Add,
                    b'-' => Op::Remove,
                    b'=' => Op::Set,
                    _ => return Err(bad()),
                };
                i += 1;
                let perm = match bytes.get(i) {
                    Some(b'u') => Perm::Copy(WHO_U),
                    Some(b'g') => Perm::Copy(WHO_G),
                    Some(b'o') => Perm::Copy(WHO_O),
                    _ => {
                        let (mut r, mut w, mut x, mut big_x, mut sb, mut t) =
                            (false, false, false, false, false, false);
                        while let Some(c) = bytes.get(i) {
                            match c {
                                b'r' => r = true,
                                b'w' => w = true,
                                b'x' => x = true,
                                b'X' => big_x = true,
                                b's' => sb = true,
                                b't' => t = true,
                                _ => break,
                            }
                            i += 1;
                        }
                        ops.push((
                            op,
                            Perm::Letters {
                                r,
                                w,
                                x,
                                big_x,
                                s: sb,
                                t,
                            },
                        ));
                        continue;
                    }
                };
                i += 1;
                ops.push((op, perm));
            }
            if ops.is_empty() {
                return Err(bad());
            }
            clauses.push(Clause { who, ops });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The permission bits (with setuid/setgid/sticky) an entry gets, given its current
    /// permission bits and whether it is a directory.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(v) => *v & 0o7777,
            Chmod::Symbolic(clauses) => {
                let mut m = mode & 0o7777;
                for clause in clauses {
                    let who = if clause.who == 0 {
                        WHO_U | WHO_G | WHO_O
                    } else {
                        clause.who
                    };
                    let rwx_mask = spread(who, 0o7);
                    for (op, perm) in &clause.ops {
                        let bits = match perm {
                            Perm::Copy(from) => {
                                let shift = match *from {
                                    WHO_U => 6,
                                    WHO_G => 3,
                                    _ => 0,
                                };
                                let v = (m >> shift) & 0o7;
                                spread(who, v)
                            }
                            Perm::Letters {
                                r,
                                w,
                                x,
                                big_x,
                                s,
                                t,
                            } => {
                                let mut v = 0;
                                if *r {
                                    v |= 0o4;
                                }
                                if *w {
                                    v |= 0o2;
                                }
                                if *x || (*big_x && (is_dir || m & 0o111 != 0)) {
                                    v |= 0o1;
                                }
                                let mut bits = spread(who, v);
                                if *s {
                                    if who & WHO_U != 0 {
                                        bits |= 0o4000;
                                    }
                                    if who & WHO_G != 0 {
                                        bits |= 0o2000;
                                    }
                                }
                                // BSD: `t` is ignored when only "other" is named.
                                if *t && (clause.who == 0 || clause.who & (WHO_U | WHO_G) != 0) {
                                    bits |= 0o1000;
                                }
                                bits
                            }
                        };
                        match op {
                            Op::Add => m |= bits,
                            Op::Remove => m &= !bits,
                            Op::Set => {
                                let mut clear = rwx_mask;
                                if who & WHO_U != 0 {
                                    clear |= 0o4000;
                                }
                                if who & WHO_G != 0 {
                                    clear |= 0o2000;
                                }
                                m = (m & !clear) | bits;
                            }
                        }
                    }
                }
                m
            }
        }
    }
}

/// Replicates a 3-bit rwx value into the positions of the named classes.
fn spread(who: u8, v: u32) -> u32 {
    let mut out = 0;
    if who & WHO_U != 0 {
        out |= v << 6;
    }
    if who & WHO_G != 0 {
        out |= v << 3;
    }
    if who & WHO_O != 0 {
        out |= v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_table() {
        // value | current mode | is_dir | expected
        let rows: &[(&str, u32, bool, u32)] = &[
            ("755", 0o600, false, 0o755),
            ("0644", 0o777, true, 0o644),
            ("4755", 0o600, false, 0o4755),
            ("1777", 0o755, true, 0o1777),
            ("0", 0o755, false, 0o000),
            ("u+x", 0o644, false, 0o744),
            ("+x", 0o644, false, 0o755),
            ("a+x", 0o644, false, 0o755),
            ("go-w", 0o666, false, 0o644),
            ("u=rw,go=r", 0o777, false, 0o644),
            ("a=rX", 0o640, false, 0o444),
            ("a=rX", 0o740, false, 0o555),
            ("a=rX", 0o700, true, 0o555),
            ("a+rX", 0o600, false, 0o644),
            ("o=", 0o777, false, 0o770),
            ("g=u", 0o750, false, 0o770),
            ("u+s", 0o755, false, 0o4755),
            ("g+s", 0o755, true, 0o2755),
            ("+t", 0o777, true, 0o1777),
            ("o+t", 0o777, true, 0o777),
            ("u-x,g+w", 0o755, false, 0o675),
            ("u=rwx,g=rx,o=", 0o000, false, 0o750),
            ("=r", 0o4755, false, 0o444),
        ];
        for (value, mode, is_dir, expected) in rows {
            let chmod = Chmod::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(
                chmod.apply(*mode, *is_dir),
                *expected,
                "--chmod={value} on {mode:o} (dir: {is_dir})"
            );
        }
    }

    #[test]
    fn invalid_values() {
        assert_eq!(
            Chmod::parse("8").unwrap_err().to_string(),
            "invalid chmod parameter: '8'. it should be octal string and between 0 and 07777"
        );
        assert!(matches!(Chmod::parse("17777"), Err(ChmodError::Octal(_))));
        for bad in ["", "u", "u+q", "z+x", "u+x,", "rwx"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?}");
        }
    }
}
