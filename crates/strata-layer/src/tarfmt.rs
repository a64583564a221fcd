//! Byte-exact tar headers for deterministic layers: ustar headers filled by hand, PAX records for
//! whatever ustar cannot hold (long names and link targets, big ids, sizes and times, xattrs).
//!
//! This is the form Go's `archive/tar` (and so docker and BuildKit) writes: ustar magic, octal fields
//! with a NUL terminator, empty user and group names, and an `x` header named `<dir>/PaxHeaders.0/<name>`
//! in front of an entry that needs records. Nothing depends on the clock, the user database or the host.

use std::io::{self, Write};

pub(crate) const BLOCK: usize = 512;

/// The ustar type flags strata writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Hardlink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::Regular => b'0',
            Kind::Hardlink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Directory => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// One entry's header fields, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub(crate) name: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    /// Whole seconds; may be negative (a PAX record then carries it).
    pub(crate) mtime: i64,
    pub(crate) link_name: Vec<u8>,
    pub(crate) dev_major: u32,
    pub(crate) dev_minor: u32,
    /// xattrs as (name, value), emitted as `SCHILY.xattr.<name>` records.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

const NAME_LEN: usize = 100;
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;

/// Encodes `header` as zero or one PAX `x` header plus the ustar header, written to `out`.
pub(crate) fn write_header<W: Write>(out: &mut W, header: &EntryHeader) -> io::Result<()> {
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let name_fits = header.name.len() <= NAME_LEN;
    if !name_fits {
        records.push((b"path".to_vec(), header.name.clone()));
    }
    if header.link_name.len() > NAME_LEN {
        records.push((b"linkpath".to_vec(), header.link_name.clone()));
    }
    if header.uid > MAX_OCTAL_7 {
        records.push((b"uid".to_vec(), header.uid.to_string().into_bytes()));
    }
    if header.gid > MAX_OCTAL_7 {
        records.push((b"gid".to_vec(), header.gid.to_string().into_bytes()));
    }
    if header.size > MAX_OCTAL_11 {
        records.push((b"size".to_vec(), header.size.to_string().into_bytes()));
    }
    let mtime_fits = (0..=MAX_OCTAL_11 as i64).contains(&header.mtime);
    if !mtime_fits {
        records.push((b"mtime".to_vec(), header.mtime.to_string().into_bytes()));
    }
    for (key, value) in &header.xattrs {
        let mut k = b"SCHILY.xattr.".to_vec();
        k.extend_from_slice(key);
        records.push((k, value.clone()));
    }
    if !records.is_empty() {
        records.sort();
        let data = pax_data(&records);
        let pax_header = ustar_block(&RawFields {
            name: &pax_header_name(&header.name),
            flag: b'x',
            mode: 0,
            uid: 0,
            gid: 0,
            size: data.len() as u64,
            mtime: 0,
            link_name: b"",
            dev_major: 0,
            dev_minor: 0,
        });
        out.write_all(&pax_header)?;
        out.write_all(&data)?;
        out.write_all(&[0u8; BLOCK][..padding(data.len() as u64)])?;
    }
    let block = ustar_block(&RawFields {
        name: if name_fits {
            &header.name
        } else {
            truncated(&header.name)
        },
        flag: header.kind.flag(),
        mode: u64::from(header.mode & 0o7777),
        uid: if header.uid > MAX_OCTAL_7 {
            0
        } else {
            header.uid
        },
        gid: if header.gid > MAX_OCTAL_7 {
            0
        } else {
            header.gid
        },
        size: if header.size > MAX_OCTAL_11 {
            0
        } else {
            header.size
        },
        mtime: if mtime_fits { header.mtime as u64 } else { 0 },
        link_name: truncated(&header.link_name),
        dev_major: u64::from(header.dev_major),
        dev_minor: u64::from(header.dev_minor),
    });
    out.write_all(&block)
}

/// Bytes of zero padding after `size` bytes of entry data.
pub(crate) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

fn truncated(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(NAME_LEN)]
}

/// `<dir>/PaxHeaders.0/<base>` as Go names it (truncated to the name field).
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut out = dir.to_vec();
    out.extend_from_slice(b"PaxHeaders.0/");
    out.extend_from_slice(base);
    out.truncate(NAME_LEN);
    out
}

/// PAX records: `<len> <key>=<value>\n`, where `<len>` counts the whole record including itself.
fn pax_data(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut data = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.push(b' ');
        data.extend_from_slice(key);
        data.push(b'=');
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    data
}

struct RawFields<'a> {
    name: &'a [u8],
    flag: u8,
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link_name: &'a [u8],
    dev_major: u64,
    dev_minor: u64,
}

fn ustar_block(f: &RawFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[0..f.name.len()].copy_from_slice(f.name);
    octal(&mut b[100..108], f.mode);
    octal(&mut b[108..116], f.uid);
    octal(&mut b[116..124], f.gid);
    octal(&mut b[124..136], f.size);
    octal(&mut b[136..148], f.mtime);
    b[156] = f.flag;
    b[157..157 + f.link_name.len()].copy_from_slice(f.link_name);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname/gname stay empty: ownership is numeric only.
    octal(&mut b[329..337], f.dev_major);
    octal(&mut b[337..345], f.dev_minor);
    // The checksum is computed with its own field as spaces, then stored as 6 digits, NUL, space.
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let digits = format!("{sum:06o}");
    b[148..154].copy_from_slice(digits.as_bytes());
    b[154] = 0;
    b[155] = b' ';
    b
}

/// Zero-padded octal digits filling the field but its last byte, which stays NUL. Callers guarantee
/// the value fits (larger values go to PAX records).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    let digits = &digits.as_bytes()[digits.len().saturating_sub(width)..];
    field[..width].copy_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str) -> EntryHeader {
        EntryHeader {
            name: name.as_bytes().to_vec(),
            kind: Kind::Regular,
            mode: 0o4755,
            uid: 1000,
            gid: 1000,
            size: 5,
            mtime: 1_700_000_000,
            link_name: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }

    /// (path, uid, mtime, mode, size, PAX records) of each entry, as tar-rs reads them.
    type Listed = (String, u64, u64, u32, u64, Vec<(String, Vec<u8>)>);

    fn read_back(bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut xattrs = Vec::new();
            if let Some(pax) = entry.pax_extensions().unwrap() {
                for r in pax {
                    let r = r.unwrap();
                    xattrs.push((r.key().unwrap().to_string(), r.value_bytes().to_vec()));
                }
            }
            let h = entry.header();
            out.push((
                String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                h.uid().unwrap(),
                h.mtime().unwrap(),
                h.mode().unwrap(),
                entry.size(),
                xattrs,
            ));
        }
        out
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        // The length includes its own digits.
        assert_eq!(pax_data(&[(b"a".to_vec(), b"bcd".to_vec())]), b"8 a=bcd\n");
        assert_eq!(
            pax_data(&[(b"a".to_vec(), b"bcde".to_vec())]),
            b"9 a=bcde\n"
        );
        // One more byte would make it 10, whose second digit makes it 11.
        assert_eq!(
            pax_data(&[(b"a".to_vec(), b"bcdef".to_vec())]),
            b"11 a=bcdef\n"
        );
        let long = vec![b'x'; 95];
        let rec = pax_data(&[(b"path".to_vec(), long.clone())]);
        assert_eq!(rec.len(), 105);
        assert!(rec.starts_with(b"105 path="));
    }

    #[test]
    fn short_entry_is_plain_ustar() {
        let mut out = Vec::new();
        write_header(&mut out, &header("etc/passwd")).unwrap();
        out.extend_from_slice(b"hello");
        out.resize(out.len() + padding(5), 0);
        out.resize(out.len() + 2 * BLOCK, 0);
        assert_eq!(out.len(), 4 * BLOCK);
        assert_eq!(&out[257..265], b"ustar\x0000");
        let got = read_back(&out);
        assert_eq!(
            got,
            vec![("etc/passwd".into(), 1000, 1_700_000_000, 0o4755, 5, vec![])]
        );
    }

    #[test]
    fn long_names_big_ids_and_xattrs_use_pax() {
        let long = format!("{}/file", "d".repeat(150));
        let mut h = header(&long);
        h.uid = 5_000_000;
        h.mtime = -1;
        h.xattrs = vec![(b"user.k".to_vec(), b"v\0binary".to_vec())];
        let mut out = Vec::new();
        write_header(&mut out, &h).unwrap();
        out.extend_from_slice(b"hello");
        out.resize(out.len() + padding(5), 0);
        out.resize(out.len() + 2 * BLOCK, 0);
        let got = read_back(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, long);
        let keys: Vec<&str> = got[0].5.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["SCHILY.xattr.user.k", "mtime", "path", "uid"]);
        assert_eq!(got[0].5[0].1, b"v\0binary");
        assert_eq!(
            &out[..100],
            "d".repeat(100).as_bytes(),
            "x header named after the entry, truncated"
        );
    }

    #[test]
    fn pax_header_names_follow_go() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"dir/"), b"PaxHeaders.0/dir");
        assert_eq!(pax_header_name(b"top"), b"PaxHeaders.0/top");
    }
}
