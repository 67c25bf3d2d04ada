//! Finding a body's end: `Content-Length`, chunked (decoded byte for byte
//! by hyper 1.x's rules), or the close of the connection.

use crate::error::Error;
use crate::held::Held;
use bytes::{Buf, Bytes, BytesMut};

/// Bytes of chunk extensions accepted over a whole body (hyper's
/// `CHUNKED_EXTENSIONS_LIMIT`).
pub(crate) const MAX_CHUNK_EXTENSIONS: u64 = 16 * 1024;
/// Bytes of trailer section accepted, its final CRLF included (hyper's
/// `TRAILER_LIMIT`).
pub(crate) const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Trailer lines accepted (hyper's `DEFAULT_MAX_HEADERS`).
pub(crate) const MAX_TRAILER_LINES: usize = 100;

/// How the body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes the connection.
    UntilClose,
    /// The body ended.
    Done,
}

/// Where the chunked decoder is, with what it has counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunked {
    state: Chunk,
    /// The chunk size being read, then the data bytes left of it.
    size: u64,
    /// Extension bytes seen in the whole body.
    extensions: u64,
    /// Trailer bytes seen (0 while there are none).
    trailer_bytes: usize,
    trailer_lines: usize,
}

impl Chunked {
    pub(crate) fn new() -> Self {
        Chunked {
            state: Chunk::Start,
            size: 0,
            extensions: 0,
            trailer_bytes: 0,
            trailer_lines: 0,
        }
    }
}

/// The states of hyper's `ChunkedState`; the trailer section is read a
/// line at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    Start,
    /// More hex digits, whitespace, `;` or CR.
    Size,
    /// Whitespace after the size: more of it, `;` or CR.
    SizeLws,
    /// Extension bytes until CR (a bare LF is refused).
    Extension,
    /// The LF ending the size line.
    SizeLf,
    /// `size` data bytes are left.
    Data,
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// Decodes what `buf` holds: the body bytes found (all of them, in one
/// piece) and whether the body ended.
pub(crate) fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
    match framing {
        Framing::Done => Ok(None),
        Framing::Length(left) => {
            if *left == 0 {
                *framing = Framing::Done;
                return Ok(None);
            }
            let n = (*left).min(buf.len() as u64) as usize;
            if n == 0 {
                return Ok(None);
            }
            *left -= n as u64;
            if *left == 0 {
                *framing = Framing::Done;
            }
            Ok(Some(buf.split_to(n).freeze()))
        }
        Framing::UntilClose => Ok((!buf.is_empty()).then(|| buf.split().freeze())),
        Framing::Chunked(c) => {
            let mut out = Held::default();
            let ended = c.decode(buf, |piece| out.push(piece))?;
            if ended {
                *framing = Framing::Done;
            }
            Ok(out.take())
        }
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl Chunked {
    /// Runs the decoder over `buf`, handing each data piece to `out`; true
    /// once the last chunk and the trailers were consumed.
    fn decode(&mut self, buf: &mut BytesMut, mut out: impl FnMut(Bytes)) -> Result<bool, Error> {
        loop {
            match self.state {
                Chunk::Data => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let n = self.size.min(buf.len() as u64) as usize;
                    out(buf.split_to(n).freeze());
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = Chunk::DataCr;
                    }
                }
                Chunk::Trailers => match self.trailer_line(buf)? {
                    Line::Partial => return Ok(false),
                    Line::Field => {}
                    Line::End => return Ok(true),
                },
                _ => {
                    let mut used = 0;
                    while let Some(&b) = buf.get(used) {
                        used += 1;
                        self.step(b)?;
                        if matches!(self.state, Chunk::Data | Chunk::Trailers) {
                            break;
                        }
                    }
                    buf.advance(used);
                    if !matches!(self.state, Chunk::Data | Chunk::Trailers) {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// One byte of a size line or of the CRLF after a chunk's data.
    fn step(&mut self, b: u8) -> Result<(), Error> {
        let bad_size = || Error::Protocol("invalid chunk size line");
        self.state = match (self.state, b) {
            (Chunk::Start, _) => {
                self.size = hex(b).ok_or_else(bad_size)?;
                Chunk::Size
            }
            (Chunk::Size | Chunk::SizeLws, b'\t' | b' ') => Chunk::SizeLws,
            (Chunk::Size | Chunk::SizeLws, b';') => Chunk::Extension,
            (Chunk::Size | Chunk::SizeLws | Chunk::Extension, b'\r') => Chunk::SizeLf,
            (Chunk::Size, _) => {
                let d = hex(b).ok_or_else(bad_size)?;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(d))
                    .ok_or(Error::Protocol("chunk size overflows"))?;
                Chunk::Size
            }
            (Chunk::SizeLws, _) => return Err(bad_size()),
            (Chunk::Extension, b'\n') => {
                return Err(Error::Protocol("chunk extension contains a bare LF"))
            }
            (Chunk::Extension, _) => {
                self.extensions += 1;
                if self.extensions >= MAX_CHUNK_EXTENSIONS {
                    return Err(Error::Protocol("chunk extensions too large"));
                }
                Chunk::Extension
            }
            (Chunk::SizeLf, b'\n') if self.size == 0 => Chunk::Trailers,
            (Chunk::SizeLf, b'\n') => Chunk::Data,
            (Chunk::SizeLf, _) => return Err(Error::Protocol("chunk size line without CRLF")),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => {
                self.size = 0;
                Chunk::Start
            }
            (Chunk::DataCr | Chunk::DataLf, _) => {
                return Err(Error::Protocol("missing CRLF after chunk data"))
            }
            (Chunk::Data | Chunk::Trailers, _) => unreachable!("not read byte by byte"),
        };
        Ok(())
    }

    /// One CRLF-terminated line of the trailer section: a field line
    /// (checked, then skipped) or the empty line that ends the body. As in
    /// hyper, a line ends at CR, which must be followed by LF.
    fn trailer_line(&mut self, buf: &mut BytesMut) -> Result<Line, Error> {
        let too_large = Error::Protocol("trailers too large");
        let Some(cr) = memchr::memchr(b'\r', buf) else {
            if !buf.is_empty() && self.trailer_bytes + buf.len() >= MAX_TRAILER_BYTES {
                return Err(too_large);
            }
            return Ok(Line::Partial);
        };
        let counted = if cr == 0 && self.trailer_bytes == 0 {
            0
        } else {
            cr + 2
        };
        if self.trailer_bytes + counted.min(buf.len()) >= MAX_TRAILER_BYTES {
            return Err(too_large);
        }
        let Some(&lf) = buf.get(cr + 1) else {
            return Ok(Line::Partial);
        };
        if lf != b'\n' {
            return Err(Error::Protocol("trailer line without CRLF"));
        }
        if cr == 0 {
            buf.advance(2);
            return Ok(Line::End);
        }
        if self.trailer_lines >= MAX_TRAILER_LINES {
            return Err(Error::Protocol("too many trailer lines"));
        }
        let mut slot = [httparse::EMPTY_HEADER; 1];
        if httparse::parse_headers(&buf[..cr + 2], &mut slot).is_err() {
            return Err(Error::Protocol("invalid trailer line"));
        }
        self.trailer_lines += 1;
        self.trailer_bytes += counted;
        buf.advance(cr + 2);
        Ok(Line::Field)
    }
}

enum Line {
    Partial,
    Field,
    End,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(input: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), Error> {
        let mut framing = Framing::Chunked(Chunked::new());
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pieces = 0;
        for part in input {
            buf.extend_from_slice(part);
            if let Some(b) = decode(&mut framing, &mut buf)? {
                out.extend_from_slice(&b);
                pieces += 1;
            }
        }
        Ok((out, framing == Framing::Done, pieces))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 0..wire.len() {
            for cut2 in cut..wire.len() {
                let (out, done, _) =
                    chunked(&[&wire[..cut], &wire[cut..cut2], &wire[cut2..]]).unwrap();
                assert_eq!(out, b"hello, world", "cut at {cut}/{cut2}");
                assert!(done, "cut at {cut}/{cut2}");
            }
        }
        // Everything at once comes out as one piece.
        let (out, done, pieces) = chunked(&[wire]).unwrap();
        assert_eq!(
            (out.as_slice(), done, pieces),
            (&b"hello, world"[..], true, 1)
        );
    }

    #[test]
    fn what_hyper_accepts_is_accepted() {
        for wire in [
            &b"5 \t ;a=b\r\nhello\r\n0\r\n\r\n"[..],
            b"00000000000000000000005\r\nhello\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0;x\r\na: 1\r\nb: 2\r\n\r\n",
        ] {
            let (_, done, _) = chunked(&[wire]).unwrap();
            assert!(done, "{:?}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn bad_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\nab\r\n"[..],
            b"2\r\nabXY",
            b"\r\n",
            b" 2\r\nab\r\n",
            b"2 3\r\nab\r\n",
            b"+2\r\nab\r\n",
            b"10000000000000000\r\n",
            b"2\nab\r\n",
            b"2\r\nab\n0\r\n\r\n",
            b"2;a\nb\r\nab\r\n",
            b"2\r\nab\r\n0\r\nx: 1\ny: 2\r\n\r\n",
            b"2\r\nab\r\n0\r\nno colon\r\n\r\n",
            b"2\r\nab\r\n0\r\n\rX",
        ] {
            assert!(
                chunked(&[wire]).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }
}
