//! Byte-level helpers: a bounds-checked big-endian reader and writer
//! functions over `Vec<u8>`.
//!
//! # Invariants
//! [`Reader`] never panics: every read checks the remaining length and
//! returns a [`DecodeError`] with `BAD_LEN` of the caller's error type when
//! the input is short.

use super::error::{DecodeError, OfpError};

/// A cursor over a received byte slice.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Error reported when the input is too short.
    short: OfpError,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], short: OfpError) -> Reader<'a> {
        Reader { buf, pos: 0, short }
    }

    fn err(&self, what: &str) -> DecodeError {
        DecodeError::new(
            self.short,
            format!("{what}: message too short ({} bytes)", self.buf.len()),
        )
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.err(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub(crate) fn skip(&mut self, n: usize, what: &str) -> Result<(), DecodeError> {
        self.take(n, what).map(|_| ())
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A NUL-padded string field of `n` bytes.
    pub(crate) fn string(&mut self, n: usize, what: &str) -> Result<String, DecodeError> {
        let s = self.take(n, what)?;
        let end = s.iter().position(|b| *b == 0).unwrap_or(s.len());
        Ok(String::from_utf8_lossy(&s[..end]).into_owned())
    }
}

pub(crate) fn put_u8(b: &mut Vec<u8>, v: u8) {
    b.push(v);
}

pub(crate) fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_zeros(b: &mut Vec<u8>, n: usize) {
    b.resize(b.len() + n, 0);
}

/// Writes `s` into a NUL-padded field of `n` bytes (truncated to leave
/// at least one NUL).
pub(crate) fn put_string(b: &mut Vec<u8>, s: &str, n: usize) {
    let bytes = s.as_bytes();
    // Cut at a character boundary: half a UTF-8 sequence would come back
    // as U+FFFD, a different (and longer) name.
    let mut k = bytes.len().min(n.saturating_sub(1));
    while !s.is_char_boundary(k) {
        k -= 1;
    }
    b.extend_from_slice(&bytes[..k]);
    put_zeros(b, n - k);
}

/// Pads `b` with zeros up to a multiple of 8 bytes.
pub(crate) fn pad8(b: &mut Vec<u8>) {
    let n = b.len().next_multiple_of(8) - b.len();
    put_zeros(b, n);
}

/// Overwrites the big-endian u16 at `off` (a length field written after
/// its body).
pub(crate) fn patch_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Converts a length to a u16 field, saturating (callers bound lengths
/// well below 64 KiB; a saturated length makes the peer reject the
/// message rather than misparse it).
pub(crate) fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
