//! Where a signed file is read from: a [`Source`] of bytes read by offset, so that a PDF of
//! any size is validated without being held in memory — its structures are read where the
//! cross-reference sections say they are, and its signed byte ranges (and a detached
//! signature's document) are hashed in [`CHUNK`]-sized pieces.
//!
//! In-memory bytes (`[u8]`, `Vec<u8>`) and files ([`std::fs::File`]) are sources; the
//! validator has one code path for both.

use std::io;
use std::ops::Range;

/// How much a hash or a search reads at once.
pub const CHUNK: usize = 64 * 1024;

/// Bytes read by offset. Implementations are cheap to read from concurrently (`pread`).
pub trait Source: Sync {
    /// How many bytes there are.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset`: all of it, or an error
    /// ([`io::ErrorKind::UnexpectedEof`] past the end).
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()>;
}

fn past_end() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end")
}

impl Source for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len()).ok_or_else(past_end)?;
        buf.copy_from_slice(self.get(offset..end).ok_or_else(past_end)?);
        Ok(())
    }
}

impl Source for Vec<u8> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_at(offset, buf)
    }
}

impl<const N: usize> Source for [u8; N] {
    fn len(&self) -> usize {
        N
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_at(offset, buf)
    }
}

impl<S: Source + ?Sized> Source for &S {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

/// A file, read with positioned reads (no shared cursor). Its length is asked once per call
/// of [`Source::len`]: callers read it once ([`Bytes::new`]).
impl Source for std::fs::File {
    fn len(&self) -> usize {
        self.metadata().ok().and_then(|m| usize::try_from(m.len()).ok()).unwrap_or(0)
    }

    #[cfg(unix)]
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset as u64)
    }

    #[cfg(windows)]
    fn read_at(&self, offset: usize, mut buf: &mut [u8]) -> io::Result<()> {
        let mut at = offset as u64;
        while !buf.is_empty() {
            match std::os::windows::fs::FileExt::seek_read(self, buf, at)? {
                0 => return Err(past_end()),
                n => {
                    buf = &mut buf[n..];
                    at += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// A source with its length read once, and at most `len` of it seen (a PDF's earlier
/// revision is the file cut where it ended).
#[derive(Clone, Copy)]
pub struct Bytes<'s> {
    source: &'s dyn Source,
    len: usize,
}

impl std::fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bytes").field("len", &self.len).finish()
    }
}

impl<'s> Bytes<'s> {
    /// All of `source`.
    pub fn new(source: &'s dyn Source) -> Self {
        Bytes { source, len: source.len() }
    }

    /// The first `len` bytes (all of them when there are fewer).
    pub fn prefix(self, len: usize) -> Self {
        Bytes { source: self.source, len: len.min(self.len) }
    }

    /// How many bytes there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes in `range`, which the caller has bounded; an error past the end.
    pub fn read(&self, range: Range<usize>) -> io::Result<Vec<u8>> {
        if range.start > range.end || range.end > self.len {
            return Err(past_end());
        }
        let mut buf = vec![0; range.end - range.start];
        self.source.read_at(range.start, &mut buf)?;
        Ok(buf)
    }

    /// At most `max` bytes from `offset` (fewer at the end).
    pub fn read_up_to(&self, offset: usize, max: usize) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(max).min(self.len);
        self.read(offset.min(end)..end)
    }

    /// Calls `each` with the bytes of `range` in order, [`CHUNK`] at a time.
    pub fn chunks(&self, range: Range<usize>, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        if range.start > range.end || range.end > self.len {
            return Err(past_end());
        }
        let mut buf = vec![0; CHUNK.min(range.end - range.start)];
        let mut at = range.start;
        while at < range.end {
            let n = CHUNK.min(range.end - at);
            self.source.read_at(at, &mut buf[..n])?;
            each(&buf[..n]);
            at += n;
        }
        Ok(())
    }

    /// The first position at or after `from` where `needle` starts, searched in chunks.
    pub fn find(&self, from: usize, needle: &[u8]) -> io::Result<Option<usize>> {
        let overlap = needle.len().saturating_sub(1);
        let mut at = from;
        while at < self.len {
            let window = self.read_up_to(at, CHUNK + overlap)?;
            if let Some(i) = window.windows(needle.len()).position(|w| w == needle) {
                return Ok(Some(at + i));
            }
            if at + window.len() >= self.len {
                break;
            }
            at += CHUNK;
        }
        Ok(None)
    }
}

impl Source for Bytes<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        if offset.checked_add(buf.len()).is_none_or(|end| end > self.len) {
            return Err(past_end());
        }
        self.source.read_at(offset, buf)
    }
}

/// Signed octets: ranges of a source, digested in [`CHUNK`]s (a PDF's two byte ranges, a
/// detached signature's whole document, a signature value in memory).
#[derive(Clone, Debug)]
pub struct Ranges<'s> {
    bytes: Bytes<'s>,
    ranges: Vec<Range<usize>>,
}

impl<'s> Ranges<'s> {
    /// The `ranges` of `bytes`, in order; the caller has checked they are in it.
    pub fn new(bytes: Bytes<'s>, ranges: Vec<Range<usize>>) -> Self {
        Ranges { bytes, ranges }
    }

    /// All of `bytes`.
    pub fn whole(bytes: Bytes<'s>) -> Self {
        let len = bytes.len();
        Ranges { bytes, ranges: std::iter::once(0..len).collect() }
    }

    /// The ranges.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Calls `each` with the octets in order, [`CHUNK`] at a time.
    pub fn chunks(&self, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        for range in &self.ranges {
            self.bytes.chunks(range.clone(), &mut each)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunks_and_find_cross_chunk_boundaries() {
        let mut data = vec![b'x'; 3 * CHUNK + 10];
        data[CHUNK - 2..CHUNK + 3].copy_from_slice(b"%%EOF");
        let bytes = Bytes::new(&data);
        assert_eq!(bytes.find(0, b"%%EOF").unwrap(), Some(CHUNK - 2));
        assert_eq!(bytes.find(CHUNK, b"%%EOF").unwrap(), None);
        let mut seen = Vec::new();
        let mut largest = 0;
        Ranges::new(bytes, vec![5..CHUNK + 7, 2 * CHUNK..3 * CHUNK + 10])
            .chunks(|c| {
                largest = largest.max(c.len());
                seen.extend_from_slice(c);
            })
            .unwrap();
        assert_eq!(seen, [&data[5..CHUNK + 7], &data[2 * CHUNK..]].concat());
        assert_eq!(largest, CHUNK);
        assert!(bytes.read(10..data.len() + 1).is_err());
        assert!(bytes.prefix(10).read(0..11).is_err());
    }
}
