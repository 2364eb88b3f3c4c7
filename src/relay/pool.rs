//! Relay buffers borrowed only while bytes are in flight.
//!
//! An idle session is parked in `poll_read`; holding a 16 KiB buffer per
//! direction there would cost 32 KiB per idle session. Instead each read
//! borrows a buffer from a small per-thread free list, gives it back at once
//! if the read is pending, and keeps it only until the bytes are written on.
//! Idle sessions therefore hold no relay buffer at all, and a busy proxy
//! reuses a handful of warm buffers instead of hitting the allocator.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncRead, ReadBuf};

/// 16 KiB: one TLS record, a good balance of syscalls and memory.
pub const BUF_SIZE: usize = 16 * 1024;
/// Free buffers kept per worker thread; beyond this they are freed.
const KEEP_PER_THREAD: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

fn take() -> Box<[u8]> {
    FREE.with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice())
}

/// Returns a buffer to this thread's free list (or frees it).
pub fn give(buf: Box<[u8]>) {
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEEP_PER_THREAD {
            f.push(buf);
        }
    });
}

/// Reads once into a borrowed buffer; `Ok(None)` is EOF. The caller must
/// [`give`] the buffer back after using the bytes.
pub async fn read_borrowed<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<(Box<[u8]>, usize)>> {
    poll_fn(|cx| {
        let mut buf = take();
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Pending => {
                give(buf);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => {
                give(buf);
                Poll::Ready(Err(e))
            }
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    give(buf);
                    Poll::Ready(Ok(None))
                } else {
                    Poll::Ready(Ok(Some((buf, n))))
                }
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_then_eof_and_reuses_buffers() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"abc")
            .await
            .unwrap();
        drop(a);
        let (buf, n) = read_borrowed(&mut b).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"abc");
        let ptr = buf.as_ptr();
        give(buf);
        assert!(read_borrowed(&mut b).await.unwrap().is_none());
        let again = take();
        assert_eq!(again.as_ptr(), ptr, "the buffer is reused, not reallocated");
    }
}
