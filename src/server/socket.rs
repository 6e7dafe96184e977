//! One client connection: pgwire's TLS negotiation and message handlers, over a socket that
//! sends its replies when lalo next waits for the client rather than after every message.
//!
//! pgwire flushes after each backend message, so a prepared statement's Bind, Execute and Sync
//! cost four `send` calls (BindComplete, DataRow, CommandComplete, ReadyForQuery) and as many
//! wake-ups of the client. PostgreSQL itself buffers its output and flushes when it is about to
//! wait for input; [`DeferredFlush`] does the same: writes collect in a buffer, a flush is put off
//! while the connection is in its query phase, and the buffer goes out as soon as a read would
//! wait (or grows past [`HIGH_WATER`]). The loop is pgwire's own `process_socket` loop, built
//! from its public parts so that the socket can be wrapped.
//!
//! Beneath it, [`super::frames::Checked`] lets pgwire read only messages whose length and layout
//! were checked; a message that fails is answered with a FATAL 08P01 and the connection closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use pgwire::api::ErrorHandler;
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message, MaybeTls, PgWireMessageServerCodec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::frames::{violation_of, Checked};
use crate::error::LaloError;

/// How long a client has to finish startup and authentication (pgwire's own limit).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Buffered output beyond which writes go to the socket without waiting for a read.
const HIGH_WATER: usize = 64 * 1024;

/// A socket whose flushes wait until the connection next reads (see the module comment).
pub struct DeferredFlush<IO> {
    io: IO,
    out: BytesMut,
    /// Defer flushes (only once the client is past startup, where every reply is awaited).
    defer: bool,
}

impl<IO: AsyncWrite + Unpin> DeferredFlush<IO> {
    fn new(io: IO) -> Self {
        DeferredFlush { io, out: BytesMut::new(), defer: false }
    }

    /// Write out the buffer; `Pending` while the socket cannot take all of it.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.out.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for DeferredFlush<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                // About to wait for the client: everything it is owed goes out first.
                match this.drain(cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for DeferredFlush<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() >= HIGH_WATER {
            match this.drain(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The client is not reading: hold the writer back.
                Poll::Pending if this.out.len() >= HIGH_WATER => return Poll::Pending,
                _ => {}
            }
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.defer && this.out.len() < HIGH_WATER {
            return Poll::Ready(Ok(()));
        }
        this.drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}

type Socket = Framed<DeferredFlush<Checked<MaybeTls>>, PgWireMessageServerCodec<super::extended::Prepared>>;

/// Serve one TCP connection until the client leaves.
pub async fn process(tcp: TcpStream, tls: Option<pgwire::tokio::TlsAcceptor>, handlers: Arc<super::Handlers>) -> io::Result<()> {
    let startup = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup);
    let negotiated = tokio::select! {
        _ = &mut startup => return Ok(()),
        s = negotiate_tls::<super::extended::Prepared>(tcp, tls) => s?,
    };
    let Some(framed) = negotiated else { return Ok(()) };
    let parts = framed.into_parts();
    // Bytes read during negotiation are checked like every later byte.
    let mut wrapped = FramedParts::new(DeferredFlush::new(Checked::new(parts.io, parts.read_buf)), parts.codec);
    wrapped.write_buf = parts.write_buf;
    let mut socket: Socket = Framed::from_parts(wrapped);
    let result = serve(&mut socket, &mut startup, &handlers).await;
    // Whatever is still buffered (a last error, say) goes out before the socket closes.
    let _ = futures::future::poll_fn(|cx| socket.get_mut().drain(cx)).await;
    result
}

async fn serve(socket: &mut Socket, startup: &mut Pin<&mut tokio::time::Sleep>, handlers: &Arc<super::Handlers>) -> io::Result<()> {
    let startup_handler = handlers.startup_handler();
    let simple = handlers.simple.clone();
    let extended = handlers.extended.clone();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    let draining = handlers.lalo.shutdown.draining.clone();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        // Shutting down: between statements the connection closes with FATAL 57P01, as
        // PostgreSQL closes its sessions; a statement in flight finishes first (its messages
        // already sent are read before this is noticed).
        let msg = if starting {
            tokio::select! {
                biased;
                m = socket.next() => m,
                _ = startup.as_mut() => None,
                _ = draining.cancelled() => None,
            }
        } else {
            socket.get_mut().defer = true;
            tokio::select! {
                biased;
                m = socket.next() => m,
                _ = draining.cancelled() => {
                    let info = LaloError::AdminShutdown.error_info("FATAL");
                    let _ = socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await;
                    break;
                }
            }
        };
        let msg = match msg {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                // A message that could not be read: say why (08P01 for a protocol violation)
                // and close, as PostgreSQL does; the stream cannot be trusted past it.
                if let Some(info) = unreadable(e) {
                    let _ = socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await;
                }
                break;
            }
            None => break,
        };
        // Terminate: close now (asyncpg waits for the server to drop the socket).
        if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(ext) => ext,
            _ => msg.is_extended_query(),
        };
        if let Err(mut e) =
            process_message(msg, socket, startup_handler.clone(), simple.clone(), extended.clone(), copy.clone(), cancel.clone()).await
        {
            errors.on_error(socket, &mut e);
            let info = ErrorInfo::from(e);
            // Any error before authentication completes ends the connection, as do FATAL ones:
            // pgwire would otherwise leave the connection open in the ready state.
            let last = starting || info.is_fatal();
            process_error(socket, PgWireError::UserError(Box::new(info)), is_extended).await?;
            if last {
                break;
            }
        }
    }
    let _ = socket.flush().await;
    Ok(())
}

/// The FATAL error to send for a message that could not be read; none when the client is gone.
fn unreadable(e: PgWireError) -> Option<ErrorInfo> {
    let mut info = match e {
        PgWireError::IoError(io) => violation_of(&io)?.error_info("FATAL"),
        other => ErrorInfo::from(other),
    };
    info.severity = "FATAL".into();
    if info.severity_nonlocalized.is_some() {
        info.severity_nonlocalized = Some("FATAL".into());
    }
    Some(info)
}
