//! The byte relay between an engineer's connection and the target.
//!
//! Each direction is a loop of read → write_all with one bounded buffer, so a
//! slow reader on either side applies backpressure to the other instead of
//! making the proxy buffer. The buffer is borrowed only while bytes are in
//! flight (see [`pool`]), so an idle session holds none. EOF on one side becomes a write shutdown on the
//! other (half-close), not a full close. The relay ends when both directions
//! are done, or at once when the session's token is cancelled, its grant's
//! end instant passes (checked here too, so expiry does not depend on any
//! other task), or the idle timeout elapses. The caller then drops both
//! streams, which closes the sockets, before it drops the session guard, so
//! "session closed" always means both sockets are closed.

use crate::sessions::{EndCause, EndReason, SessionGuard, SessionInfo};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub mod pool;
pub mod readahead;

pub use pool::BUF_SIZE;

#[derive(Debug, Clone, Copy)]
enum Dir {
    ClientToUpstream,
    UpstreamToClient,
}

async fn pump<R, W>(r: R, w: W, info: &SessionInfo, dir: Dir) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let counter = match dir {
        Dir::ClientToUpstream => &info.bytes_in,
        Dir::UpstreamToClient => &info.bytes_out,
    };
    copy(r, w, |n| {
        counter.fetch_add(n as u64, Ordering::Relaxed);
        info.touch();
    })
    .await
}

/// Copies `r` to `w` in [`BUF_SIZE`] chunks (one full TLS record each)
/// with borrowed buffers, flushing after each chunk, until EOF, which is
/// passed on as a write shutdown; `moved` is told each chunk's size. The
/// daemon's relay and `jitgate connect` share it, so both ends of the
/// tunnel frame the same records.
pub async fn copy<R, W>(mut r: R, mut w: W, mut moved: impl FnMut(usize)) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let Some((buf, n)) = pool::read_borrowed(&mut r).await? else {
            // Half-close: pass the EOF on, keep the other direction running.
            let _ = w.shutdown().await;
            return Ok(());
        };
        w.write_all(&buf[..n]).await?;
        pool::give(buf);
        // TLS writers may hold the tail of a record until flushed.
        w.flush().await?;
        moved(n);
    }
}

/// Relays until the session ends; returns the cause recorded on the session.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    session: &SessionGuard,
    idle_timeout: Option<Duration>,
) -> EndCause
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let info = session.info().clone();
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let c2u = pump(cr, uw, &info, Dir::ClientToUpstream);
    let u2c = pump(ur, cw, &info, Dir::UpstreamToClient);
    tokio::pin!(c2u, u2c);
    let ending = session.ending(idle_timeout);
    tokio::pin!(ending);
    let (mut c_done, mut u_done) = (false, false);
    let cause = loop {
        tokio::select! {
            biased;
            cause = &mut ending => break cause,
            r = &mut c2u, if !c_done => {
                c_done = true;
                let reason = if r.is_err() { EndReason::Error } else { EndReason::ClientClosed };
                session.set_cause(EndCause::new(reason));
                if r.is_err() || u_done { break info.cause().unwrap_or_else(|| EndCause::new(reason)); }
            }
            r = &mut u2c, if !u_done => {
                u_done = true;
                let reason = if r.is_err() { EndReason::Error } else { EndReason::UpstreamClosed };
                session.set_cause(EndCause::new(reason));
                if r.is_err() || c_done { break info.cause().unwrap_or_else(|| EndCause::new(reason)); }
            }
        }
    };
    cause
}
