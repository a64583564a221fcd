//! Pumping a child's output into an [`OutputSink`] while it runs.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::OutputSink;

/// A line longer than this is delivered in pieces of this size.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines for a callback.
pub(crate) struct LineSplitter<'a> {
    buffer: Vec<u8>,
    callback: &'a mut (dyn FnMut(&[u8]) + Send),
}

impl<'a> LineSplitter<'a> {
    pub(crate) fn new(callback: &'a mut (dyn FnMut(&[u8]) + Send)) -> Self {
        Self {
            buffer: Vec::new(),
            callback,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        while let Some(newline) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = bytes.split_at(newline + 1);
            if self.buffer.is_empty() {
                (self.callback)(line);
            } else {
                self.buffer.extend_from_slice(line);
                (self.callback)(&self.buffer);
                self.buffer.clear();
            }
            bytes = rest;
        }
        self.buffer.extend_from_slice(bytes);
        while self.buffer.len() >= MAX_LINE {
            let rest = self.buffer.split_off(MAX_LINE);
            (self.callback)(&self.buffer);
            self.buffer = rest;
        }
    }

    pub(crate) fn finish(mut self) {
        if !self.buffer.is_empty() {
            (self.callback)(&self.buffer);
            self.buffer.clear();
        }
    }
}

/// Copy `reader` to `sink` until end of file.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    reader: Option<R>,
    sink: &mut OutputSink,
) -> std::io::Result<()> {
    let Some(mut reader) = reader else {
        return Ok(());
    };
    match sink {
        OutputSink::Null | OutputSink::Inherit => {
            tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
        }
        OutputSink::Writer(writer) => {
            tokio::io::copy(&mut reader, writer).await?;
            writer.flush().await?;
        }
        OutputSink::Lines(callback) => {
            let mut splitter = LineSplitter::new(callback.as_mut());
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                let read = reader.read(&mut chunk).await?;
                if read == 0 {
                    break;
                }
                splitter.push(&chunk[..read]);
            }
            splitter.finish();
        }
    }
    Ok(())
}

/// Deliver a complete byte string to `sink` (the fake executor's scripted output).
pub(crate) async fn deliver(bytes: &[u8], sink: &mut OutputSink) -> std::io::Result<()> {
    pump(Some(bytes), sink).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_newlines_and_long_lines_in_pieces() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut callback = |line: &[u8]| lines.push(line.to_vec());
        let mut splitter = LineSplitter::new(&mut callback);
        splitter.push(b"one\ntw");
        splitter.push(b"o\nthree");
        splitter.push(&vec![b'x'; MAX_LINE]);
        splitter.finish();
        assert_eq!(lines[0], b"one\n");
        assert_eq!(lines[1], b"two\n");
        assert_eq!(lines[2].len(), MAX_LINE);
        assert!(lines[2].starts_with(b"three"));
        assert_eq!(lines[3].len(), 5);
        assert_eq!(lines.len(), 4);
    }
}
