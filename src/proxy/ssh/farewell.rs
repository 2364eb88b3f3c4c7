//! The end of an SSH connection's session, said to both sides: the
//! farewell at the end of a grant, and the hang-up of a refused or ended
//! connection that has no channel to say it on.
//!
//! Invariants:
//! - The connection's task stops opening channels and refuses every
//!   request the instant it decides the end (before calling anything
//!   here), and hands the farewell every channel the session will ever
//!   have relayed: each has had its target side told to stop
//!   (`UpChannel::end`) before the farewell starts.
//! - The target's connection is disconnected only after every channel's
//!   writer to the target has ended (`UpChannel::upstream_done`): the
//!   signals and closes are queued ahead of the disconnect, which cannot
//!   overtake them and leave a command running there.
//! - Everything here is bounded (FAREWELL_LIMIT, then a short wait for the
//!   target and GRACE for the engineer) and waits on events, never by
//!   polling: the engineer's channels closing (`Farewell::open`), the engineer's
//!   connection ending (`client_gone`), the target's connection ending
//!   (`Upstream::closed`). The caller kills both sockets afterwards,
//!   whatever happened.

use super::channel::UpChannel;
use super::upstream::Upstream;
use russh::server::Handle;
use russh::{ChannelId, Disconnect};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long the farewell may take before the sockets are closed anyway.
pub const FAREWELL_LIMIT: Duration = Duration::from_secs(2);
/// After the disconnect, before the hard close.
const GRACE: Duration = Duration::from_millis(300);
/// How long the engineer's client may take to close its channels after
/// the farewell's close, before the disconnect is sent anyway (OpenSSH
/// drops output still pending when a disconnect arrives).
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// How long the target may take to hang up after the disconnect.
const TARGET_WAIT: Duration = Duration::from_millis(500);

/// What the farewell needs; built by the connection's task at the end.
pub struct Farewell {
    /// The engineer's connection.
    pub handle: Handle,
    /// Every channel relayed on the session, each already told to end.
    pub channels: Vec<(ChannelId, Arc<UpChannel>)>,
    pub upstream: Option<Arc<Upstream>>,
    /// The engineer's channels still open, counted by the connection's task.
    pub open: watch::Receiver<usize>,
    /// Cancelled when the engineer's connection has ended.
    pub client_gone: CancellationToken,
    /// The line shown on stderr and as the disconnect message.
    pub text: String,
}

impl Farewell {
    /// Each channel gets the farewell on stderr, exit status 255, EOF and
    /// close; once the client has closed its channels both sides are
    /// disconnected. See the module doc for the bounds.
    pub async fn run(mut self) {
        let line = format!("\r\njitgate: {}\r\n", self.text);
        let handle = &self.handle;
        let channels = &self.channels;
        let open = &mut self.open;
        let client_gone = &self.client_gone;
        let say = async {
            for (id, _) in channels {
                let _ = handle
                    .extended_data(*id, 1, line.clone().into_bytes())
                    .await;
                let _ = handle.exit_status_request(*id, 255).await;
                let _ = handle.eof(*id).await;
                let _ = handle.close(*id).await;
            }
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                tokio::select! {
                    _ = open.wait_for(|n| *n == 0) => {}
                    _ = client_gone.cancelled() => {}
                }
            })
            .await;
            let _ = handle
                .disconnect(Disconnect::ByApplication, self.text.clone(), "en".into())
                .await;
        };
        let target_done = async {
            for (_, c) in channels {
                c.upstream_done.cancelled().await;
            }
        };
        let _ =
            tokio::time::timeout(FAREWELL_LIMIT, async { tokio::join!(say, target_done) }).await;
        if let Some(up) = &self.upstream {
            // Until the target hangs up in turn, so that everything sent
            // before the disconnect has reached it.
            let _ = tokio::time::timeout(TARGET_WAIT, async {
                let _ = up
                    .handle
                    .disconnect(Disconnect::ByApplication, "session ended by jitgate", "en")
                    .await;
                up.closed.cancelled().await;
            })
            .await;
        }
        // The engineer's side may still be reading the farewell.
        tokio::select! {
            _ = tokio::time::sleep(GRACE) => {}
            _ = self.client_gone.cancelled() => {}
        }
    }
}

/// Disconnects with `text` as the message (OpenSSH prints it), waits for
/// the session to end (`kill`), and after FAREWELL_LIMIT kills the socket
/// anyway. Replies to channel opens jump russh's queue ahead of a
/// disconnect, so a refusal told this way must reject its open only after
/// this returns. The caller has stopped opening channels already.
pub async fn hang_up(handle: Handle, kill: CancellationToken, text: String) {
    let bounded = async {
        let _ = handle
            .disconnect(Disconnect::ByApplication, text, "en".into())
            .await;
        kill.cancelled().await;
    };
    let _ = tokio::time::timeout(FAREWELL_LIMIT, bounded).await;
    kill.cancel();
}

/// A jump channel's end: with `hang_up` (its grant ended or its open was
/// refused, and it was the connection's only channel) the whole connection
/// goes, with those words as its disconnect message; else only its
/// channel `id` (if it was opened) is closed.
pub async fn jump_closed(
    handle: Handle,
    kill: CancellationToken,
    id: Option<ChannelId>,
    hang_up_with: Option<String>,
) {
    match (hang_up_with, id) {
        (Some(text), _) => hang_up(handle, kill, text).await,
        (None, Some(id)) => {
            let _ = tokio::time::timeout(FAREWELL_LIMIT, handle.close(id)).await;
        }
        (None, None) => {}
    }
}

/// A warning on every channel's stderr, each write bounded.
pub async fn warn(handle: Handle, ids: Vec<ChannelId>, text: String) {
    let line = format!("\r\njitgate: {text}\r\n");
    for id in ids {
        let write = handle.extended_data(id, 1, line.clone().into_bytes());
        let _ = tokio::time::timeout(FAREWELL_LIMIT, write).await;
    }
}
