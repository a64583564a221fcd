//! ADD of local archives: detection by content and extraction.
//!
//! BuildKit treats an ADD source as an archive when it is a regular file that decompresses
//! (gzip, bzip2, xz, zstd or nothing) into something whose first tar header parses; the name
//! does not matter. Such a file is extracted into the destination directory (created if
//! needed); anything else is copied as a file. Entries keep the ownership recorded in the tar,
//! as BuildKit does. Extraction goes through strata-layer's safe applier, which never writes
//! outside the target directory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// The compression of an archive, from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveCompression {
    /// Not compressed.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl ArchiveCompression {
    /// Detects the compression from the first bytes of a file.
    pub fn sniff(prefix: &[u8]) -> Self {
        if prefix.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if prefix.starts_with(b"BZh") {
            Self::Bzip2
        } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Self::Xz
        } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// Opens `file` as a decompressed stream.
pub fn decompressed(mut file: File) -> io::Result<Box<dyn Read + Send>> {
    let mut prefix = [0u8; 6];
    let n = read_up_to(&mut file, &mut prefix)?;
    let compression = ArchiveCompression::sniff(&prefix[..n]);
    let reader = io::Cursor::new(prefix[..n].to_vec()).chain(file);
    Ok(match compression {
        ArchiveCompression::None => Box::new(reader),
        ArchiveCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        ArchiveCompression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        ArchiveCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        ArchiveCompression::Xz => {
            // lzma-rs decodes into a writer: run it on a thread feeding a pipe.
            let (pipe_reader, mut pipe_writer) = io::pipe()?;
            std::thread::spawn(move || {
                let mut input = BufReader::new(reader);
                // An error closes the pipe early; the tar reader then reports a truncated
                // archive.
                let _ = lzma_rs::xz_decompress(&mut input, &mut pipe_writer);
            });
            Box::new(pipe_reader)
        }
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether the regular file at `path` is an archive ADD extracts: it decompresses and its
/// first 512-byte block is a tar header with a valid checksum.
pub fn is_archive(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(mut reader) = decompressed(file) else {
        return false;
    };
    let mut header = [0u8; 512];
    match read_up_to(&mut reader, &mut header) {
        Ok(512) => valid_tar_header(&header),
        _ => false,
    }
}

/// A tar header block: not all zero (that is the end marker) and its checksum (the byte sum
/// with the checksum field read as spaces) equals the octal number stored in that field.
fn valid_tar_header(block: &[u8; 512]) -> bool {
    if block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let text = text.trim_start_matches(' ');
    let Ok(stored) = u64::from_str_radix(text, 8) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// Extracts the archive at `archive` into the directory `target` (which must exist).
pub fn extract(
    archive: &Path,
    target: &Path,
) -> Result<strata_layer::ApplyStats, strata_layer::ApplyError> {
    let file = File::open(archive).map_err(strata_layer::ApplyError::Read)?;
    let reader = decompressed(file).map_err(strata_layer::ApplyError::Read)?;
    strata_layer::apply_layer(reader, target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "hello.txt", &b"hello"[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn every_supported_compression_is_detected_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar[..], &mut xz).unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("plain.bin", tar.clone(), true),
            ("noext", gz.finish().unwrap(), true),
            ("x.bz2", bz.finish().unwrap(), true),
            ("x.xz", xz, true),
            ("x.zst", zst, true),
            (
                "text.tar",
                b"just some text that is long enough".repeat(40),
                false,
            ),
            ("empty.tar.gz", Vec::new(), false),
        ];
        for (name, bytes, expected) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(is_archive(&p), expected, "{name}");
            if expected {
                let out = dir.path().join(format!("out-{name}"));
                std::fs::create_dir(&out).unwrap();
                extract(&p, &out).unwrap();
                assert_eq!(
                    std::fs::read_to_string(out.join("hello.txt")).unwrap(),
                    "hello",
                    "{name}"
                );
            }
        }
    }
}
