//! Frontend messages checked before pgwire decodes them.
//!
//! pgwire's decoder trusts the length word and the fields inside a message: a declared length
//! under 4 makes it split the buffer out of bounds, and a body shorter than its fields makes it
//! read past the end (a panic, or bytes of the next message taken as this one's). So every byte
//! the client sends passes through [`Checked`] first. It frames the stream itself, checks each
//! message's length word and the layout of its body against the declared length (every field
//! inside the message, nothing left over), and hands pgwire only whole messages that passed. A
//! message that fails is a protocol violation: the connection answers 08P01 and closes, as
//! PostgreSQL does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::LaloError;

/// Largest startup-phase packet (PostgreSQL's MAX_STARTUP_PACKET_LENGTH; pgwire's limit too).
const MAX_STARTUP: usize = 10_000;
/// Largest message of the types that carry SQL or data (PostgreSQL's PQ_LARGE_MESSAGE_LIMIT).
const MAX_LARGE: usize = 0x3fff_fffe;
/// Largest message of every other type (PostgreSQL's PQ_SMALL_MESSAGE_LIMIT).
const MAX_SMALL: usize = 10_000;

const CANCEL_CODE: i32 = 80_877_102;
const SSL_CODE: i32 = 80_877_103;
const GSS_CODE: i32 = 80_877_104;

/// Where the connection is, which decides how the next message is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The startup packet (or a CancelRequest): no type byte.
    Startup,
    /// Typed messages; the next password-family message is the SASLInitialResponse.
    SaslInitial,
    /// Typed messages; password-family messages are opaque SASL responses.
    Typed,
    /// A CancelRequest was read: nothing may follow it.
    Done,
}

/// Frames the client's byte stream and checks each message (see the module comment).
#[derive(Debug)]
pub struct FrameChecker {
    phase: Phase,
}

impl FrameChecker {
    pub fn new() -> Self {
        FrameChecker { phase: Phase::Startup }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The length of the whole, valid message at the start of `buf`; `None` while it is not
    /// all there yet. An error is a protocol violation and ends the connection.
    pub fn next_frame(&mut self, buf: &[u8]) -> Result<Option<usize>, LaloError> {
        let (offset, ty) = match self.phase {
            Phase::Done => return Err(violation("no message may follow a cancel request")),
            Phase::Startup => (0, None),
            Phase::SaslInitial | Phase::Typed => match buf.first() {
                Some(t) => (1, Some(*t)),
                None => return Ok(None),
            },
        };
        let Some(word) = buf.get(offset..offset + 4) else { return Ok(None) };
        let declared = i32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        let max = match ty {
            None => MAX_STARTUP,
            Some(t) => max_length(t)?,
        };
        // Negative lengths become huge here and fail the bound check like any other.
        let len = usize::try_from(declared).unwrap_or(usize::MAX);
        let min = if ty.is_none() { 8 } else { 4 };
        if len < min {
            return Err(match ty {
                None => violation(&format!("invalid length of startup packet: {declared}")),
                Some(_) => violation(&format!("invalid message length: {declared}")),
            });
        }
        if len > max {
            return Err(match ty {
                None => violation(&format!("invalid length of startup packet: {declared}")),
                Some(_) => violation(&format!("invalid message length: {declared} exceeds the limit of {max}")),
            });
        }
        let Some(body) = buf.get(offset + 4..offset + len) else { return Ok(None) };
        match ty {
            None => self.phase = check_startup(body)?,
            Some(t) => {
                check_body(t, body, self.phase)?;
                if t == b'p' {
                    self.phase = Phase::Typed;
                }
            }
        }
        Ok(Some(offset + len))
    }
}

impl Default for FrameChecker {
    fn default() -> Self {
        Self::new()
    }
}

fn violation(msg: &str) -> LaloError {
    LaloError::ProtocolViolation(msg.to_string())
}

/// The length limit of a frontend message type; unknown types are violations.
fn max_length(ty: u8) -> Result<usize, LaloError> {
    match ty {
        b'Q' | b'P' | b'B' | b'd' => Ok(MAX_LARGE),
        b'p' | b'C' | b'D' | b'E' | b'H' | b'S' | b'X' | b'c' | b'f' => Ok(MAX_SMALL),
        other => Err(violation(&format!("invalid frontend message type {other}"))),
    }
}

/// The startup packet's body (after the length word); the phase that follows it.
fn check_startup(body: &[u8]) -> Result<Phase, LaloError> {
    let mut r = Reader(body);
    let code = r.i32()?;
    match code {
        CANCEL_CODE => {
            // Process id, then a secret key of 4 to 256 bytes (protocol 3.2 allows longer keys).
            r.i32()?;
            if !(4..=256).contains(&r.0.len()) {
                return Err(violation("invalid length of cancel request"));
            }
            Ok(Phase::Done)
        }
        SSL_CODE | GSS_CODE => Err(violation("encryption may only be requested before the startup packet")),
        _ => {
            // Protocol version, then name/value pairs of strings, then one empty string.
            loop {
                let name = r.cstring()?;
                if name.is_empty() {
                    break;
                }
                r.cstring()?;
            }
            r.end("startup packet")?;
            Ok(Phase::SaslInitial)
        }
    }
}

/// A typed message's body, field by field as pgwire reads it, with nothing left over.
fn check_body(ty: u8, body: &[u8], phase: Phase) -> Result<(), LaloError> {
    let mut r = Reader(body);
    match ty {
        b'Q' | b'f' => {
            r.cstring()?;
        }
        b'P' => {
            r.cstring()?;
            r.cstring()?;
            let n = r.u16()? as usize;
            r.take(n.saturating_mul(4))?;
        }
        b'B' => {
            r.cstring()?;
            r.cstring()?;
            let formats = r.u16()? as usize;
            r.take(formats.saturating_mul(2))?;
            let params = r.u16()?;
            for _ in 0..params {
                match r.i32()? {
                    -1 => {}
                    n if n < 0 => return Err(violation(&format!("invalid parameter length {n} in Bind message"))),
                    n => {
                        r.take(n as usize)?;
                    }
                }
            }
            let results = r.u16()? as usize;
            r.take(results.saturating_mul(2))?;
        }
        b'C' | b'D' => {
            let target = r.u8()?;
            if target != b'S' && target != b'P' {
                let what = if ty == b'C' { "CLOSE" } else { "DESCRIBE" };
                return Err(violation(&format!("invalid {what} message subtype {target}")));
            }
            r.cstring()?;
        }
        b'E' => {
            r.cstring()?;
            r.i32()?;
        }
        b'p' if phase == Phase::SaslInitial => {
            // SASLInitialResponse: mechanism, then the initial response (-1 for none).
            r.cstring()?;
            match r.i32()? {
                -1 => {}
                n if n < 0 => return Err(violation(&format!("invalid SASL response length {n}"))),
                n => {
                    r.take(n as usize)?;
                }
            }
        }
        // Opaque bytes: SASL responses and COPY data.
        b'p' | b'd' => return Ok(()),
        // Sync, Flush, Terminate, CopyDone: no body at all.
        _ => {}
    }
    r.end(&format!("message of type {}", ty as char))
}

/// Reads fields from a message body, every read bounded by the body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LaloError> {
        if n > self.0.len() {
            return Err(violation("insufficient data left in message"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, LaloError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, LaloError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, LaloError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated string inside the body (without its NUL).
    fn cstring(&mut self) -> Result<&'a [u8], LaloError> {
        let Some(nul) = self.0.iter().position(|b| *b == 0) else {
            return Err(violation("invalid string in message"));
        };
        let s = self.take(nul + 1)?;
        Ok(&s[..nul])
    }

    fn end(&self, what: &str) -> Result<(), LaloError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(violation(&format!("invalid {what}: {} bytes left over", self.0.len())))
        }
    }
}

/// The client's stream with only checked messages readable (see the module comment).
pub struct Checked<IO> {
    io: IO,
    /// Bytes read from the client and not yet handed on; the first `ready` of them are checked.
    inbox: BytesMut,
    ready: usize,
    frames: FrameChecker,
    /// Set once a message failed: the stream reports it on every read after.
    failed: Option<LaloError>,
    /// Where reads from the client land before they join `inbox` (allocated once).
    chunk: Vec<u8>,
}

impl<IO> Checked<IO> {
    /// Wrap `io`; `already` holds bytes read from it before (during TLS negotiation).
    pub fn new(io: IO, already: BytesMut) -> Self {
        Checked { io, inbox: already, ready: 0, frames: FrameChecker::new(), failed: None, chunk: vec![0; READ_CHUNK] }
    }

    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }
}

/// The protocol violation behind a read error from [`Checked`], if that is what it was.
pub fn violation_of(e: &io::Error) -> Option<LaloError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<LaloError>()).cloned()
}

/// How much to read from the client at once.
const READ_CHUNK: usize = 16 * 1024;

impl<IO: AsyncRead + Unpin> AsyncRead for Checked<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = &this.failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e.clone())));
            }
            if this.ready > 0 {
                let n = this.ready.min(buf.remaining());
                buf.put_slice(&this.inbox[..n]);
                this.inbox.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            match this.frames.next_frame(&this.inbox) {
                Ok(Some(len)) => {
                    this.ready = len;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.failed = Some(e);
                    continue;
                }
            }
            let mut rb = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    // The client closed; a message cut short is dropped (pgwire sees the end).
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => this.inbox.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Checked<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
