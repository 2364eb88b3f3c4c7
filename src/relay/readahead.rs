//! Read-ahead under TLS: one socket read per burst of records, not per
//! 4 KiB.
//!
//! rustls 0.23 asks its transport for at most 4 KiB per read (its record
//! buffer grows by 4 KiB at a time), so a 16 KiB record costs four or five
//! `read` system calls, on the proxy's TLS side and on `jitgate connect`'s.
//! OpenSSL, what HAProxy and pgbouncer use, reads a record in two. Placing
//! this layer between rustls and the socket makes each system call fetch
//! up to [`AHEAD`] bytes and serves rustls' small reads from memory.
//!
//! The buffer is borrowed only while it holds bytes that rustls has not
//! taken yet and is given back the moment it is drained, so an idle session
//! holds none (the idle-memory goal counts every byte a parked session
//! keeps). Writes pass straight through, vectored as rustls issues them.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes one socket read may fetch: four full TLS records.
pub const AHEAD: usize = 64 * 1024;
/// Drained buffers kept per worker thread for reuse.
const KEEP_PER_THREAD: usize = 16;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take() -> Box<[u8]> {
    FREE.with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; AHEAD].into_boxed_slice())
}

fn give(buf: Box<[u8]>) {
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEEP_PER_THREAD {
            f.push(buf);
        }
    });
}

/// Bytes read from the socket and not yet handed to the reader above.
struct Pending {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// A transport with read-ahead; see the module documentation.
pub struct ReadAhead<S> {
    inner: S,
    pending: Option<Pending>,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> Self {
        ReadAhead {
            inner,
            pending: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Whether bytes are held that the reader above has not taken.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Copies held bytes into `out`; gives the buffer back once drained.
    fn serve(&mut self, out: &mut ReadBuf<'_>) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let n = (p.end - p.start).min(out.remaining());
        out.put_slice(&p.buf[p.start..p.start + n]);
        p.start += n;
        if p.start == p.end {
            if let Some(p) = self.pending.take() {
                give(p.buf);
            }
        }
    }
}

impl<S> Drop for ReadAhead<S> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            give(p.buf);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            this.serve(out);
            return Poll::Ready(Ok(()));
        }
        // A caller asking for as much as the read-ahead holds gains
        // nothing from a copy.
        if out.remaining() >= AHEAD {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let mut buf = take();
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let end = rb.filled().len();
                if end == 0 {
                    give(buf);
                    return Poll::Ready(Ok(()));
                }
                this.pending = Some(Pending { buf, start: 0, end });
                this.serve(out);
                Poll::Ready(Ok(()))
            }
            other => {
                give(buf);
                other
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_are_served_from_one_fetch_and_the_buffer_is_released() {
        let (mut a, b) = tokio::io::duplex(AHEAD);
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        a.write_all(&data).await.unwrap();
        let mut r = ReadAhead::new(b);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while got.len() < data.len() {
            let n = r.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
            // The first read fetched all 10,000 bytes at once.
            assert_eq!(r.has_pending(), got.len() < data.len());
        }
        assert_eq!(got, data);
        assert!(!r.has_pending(), "a drained read-ahead holds no buffer");
        drop(a);
        assert_eq!(r.read(&mut chunk).await.unwrap(), 0, "EOF passes through");
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = ReadAhead::new(a);
        w.write_all(b"hello").await.unwrap();
        w.shutdown().await.unwrap();
        let mut s = String::new();
        b.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello");
    }
}
