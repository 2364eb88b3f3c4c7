//! A TCP stream that a cancellation token can kill whatever russh is doing.
//!
//! russh queues close and disconnect behind window-blocked data, so a client
//! that stops reading could hold a session open past its grant. Both the
//! engineer's socket and the target's socket go through this wrapper: once
//! the token is cancelled every read and write fails at once and the socket
//! is reset (zero linger, unsent data dropped), so the close is bounded no
//! matter what either peer does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub struct Killable {
    inner: TcpStream,
    read_cancel: Pin<Box<WaitForCancellationFutureOwned>>,
    write_cancel: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Killable {
    pub fn new(inner: TcpStream, token: &CancellationToken) -> Killable {
        Killable {
            inner,
            read_cancel: Box::pin(token.clone().cancelled_owned()),
            write_cancel: Box::pin(token.clone().cancelled_owned()),
        }
    }

    fn killed(&self) -> std::io::Error {
        let _ = self.inner.set_zero_linger();
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "session ended")
    }
}

impl AsyncRead for Killable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.read_cancel.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.killed()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Killable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.write_cancel.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.killed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.write_cancel.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.killed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.write_cancel.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(self.killed()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
