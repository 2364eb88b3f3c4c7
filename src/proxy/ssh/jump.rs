//! `ssh -J USER@proxy TARGET`: a jump connection. The engineer logs in with
//! their own jitgate user name; the connection runs no shell or command and
//! only opens direct-tcpip channels naming a target. Each open is admitted
//! like a terminating login (active grant, unlocked user, max sessions,
//! audited refusals) and becomes one session of kind ssh whose channel is
//! bridged as raw bytes to the target's address: the engineer's own ssh then
//! talks end to end with the target's sshd and authenticates there itself.
//!
//! The port in the open is ignored: the target's configured address is used,
//! so `ssh -J bob@proxy prod-web` works whatever port prod-web's sshd has.
//! Since the bytes are end to end, nothing can be written into them: a
//! refusal or the end of a grant reaches the engineer as the disconnect
//! message of the jump connection (printed by their ssh) when the channel is
//! the connection's only one, else only as the channel's close.

use super::channel::{Cmd, Replies, UpChannel, UP_CAP};
use super::conn::{audit_failure, Shared};
use super::server::{hang_up, SshFrontEnd, FAREWELL_LIMIT};
use crate::config::TargetKind;
use crate::grants::Refusal;
use crate::sessions::{EndCause, EndReason, SessionGuard};
use bytes::Bytes;
use russh::server::{self, ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// Bytes read from the target per write to the engineer's channel.
const READ_BUF: usize = 32 * 1024;

pub struct Jump {
    pub fe: Arc<SshFrontEnd>,
    pub shared: Arc<Shared>,
    pub kill: CancellationToken,
    pub peer: SocketAddr,
    pub user: String,
}

/// A refused open: the words for the engineer, the metric reason, and
/// whether it is audited and counted against the user's limit.
struct Refused {
    why: String,
    reason: &'static str,
    counted: bool,
}

/// Counts this connection's jump channels while the task runs.
struct Live(Arc<Shared>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.jumps.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Jump {
    /// Admits and bridges in a task: a slow store or target must not stall
    /// the connection, and one hanging open must not freeze the others.
    pub fn open(
        self,
        channel: Channel<Msg>,
        target: String,
        reply: ChannelOpenHandle,
        handle: server::Handle,
    ) {
        let target = super::names::bounded(&target);
        // A connection being hung up (its grant ended) opens nothing more.
        if self.shared.ending.is_cancelled() {
            tracing::info!(user = %self.user, %target, "ssh jump refused: the connection is ending");
            tokio::spawn(reply.reject(ChannelOpenFailure::AdministrativelyProhibited));
            return;
        }
        self.shared.jumps.fetch_add(1, Ordering::AcqRel);
        let live = Live(self.shared.clone());
        tokio::spawn(async move {
            let _live = live;
            self.run(channel, &target, reply, &handle).await;
        });
    }

    fn keys(&self) -> [String; 1] {
        [format!("ssh-jump:{}", self.user)]
    }

    /// True when no other jump channel is open on this connection.
    fn alone(&self) -> bool {
        self.shared.jumps.load(Ordering::Acquire) == 1
    }

    async fn run(
        &self,
        channel: Channel<Msg>,
        target: &str,
        reply: ChannelOpenHandle,
        handle: &server::Handle,
    ) {
        let (guard, tcp, idle) = match self.admit(target).await {
            Ok(x) => x,
            Err(r) => return self.refuse(target, r, reply, handle).await,
        };
        let id = channel.id();
        let (tx, rx) = mpsc::unbounded_channel();
        let replies: Replies = Default::default();
        // A bridged channel has no target process of ours to wait for: its
        // socket closes with the bridge.
        let upstream_done = CancellationToken::new();
        upstream_done.cancel();
        let up = Arc::new(UpChannel {
            tx,
            replies: replies.clone(),
            up_budget: Arc::new(Semaphore::new(UP_CAP)),
            upstream_done,
            exited: CancellationToken::new(),
            pty: Default::default(),
            command: Default::default(),
        });
        // Registered under the lock a hang-up is ordered by: an open that
        // raced with it is refused, its fresh session ended unused.
        let registered = match self.shared.channels.lock() {
            Ok(mut m) if !self.shared.ending.is_cancelled() => {
                m.insert(id, up.clone());
                true
            }
            _ => false,
        };
        if !registered {
            guard.set_cause(EndCause::new(EndReason::ClientClosed));
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
        // Only now may target bytes flow: the open is confirmed first.
        reply.accept().await;
        let ended = bridge(channel, tcp, rx, &up, &replies, &guard, idle, &self.kill).await;
        // The target's socket is closed here (the bridge owned it). A
        // handler waiting for budget to queue more bytes must not wait
        // forever: that would stall the whole connection.
        up.up_budget.close();
        if let Ok(mut m) = self.shared.channels.lock() {
            m.remove(&id);
        }
        match ended {
            Some(cause) => {
                let text = format!("jitgate: access to {target} ended: {cause}");
                tracing::info!(user = %self.user, %target, "ssh jump channel closed: {text}");
                self.close_all_or_channel(handle, id, text).await;
            }
            None => {
                let _ = tokio::time::timeout(FAREWELL_LIMIT, handle.close(id)).await;
            }
        }
        drop(guard);
    }

    /// The grant ended: when this is the connection's only channel the
    /// whole connection goes, with the reason as its disconnect message,
    /// and its socket is killed after a short grace whatever the client
    /// does; else only this channel is closed.
    async fn close_all_or_channel(
        &self,
        handle: &server::Handle,
        id: russh::ChannelId,
        text: String,
    ) {
        if self.alone() {
            hang_up(&self.shared, handle, &self.kill, text).await;
        } else {
            let _ = tokio::time::timeout(FAREWELL_LIMIT, handle.close(id)).await;
        }
    }

    async fn refuse(
        &self,
        target: &str,
        r: Refused,
        reply: ChannelOpenHandle,
        handle: &server::Handle,
    ) {
        let why = r.why;
        tracing::info!(user = %self.user, %target, reason = r.reason, "ssh jump refused: {why}");
        self.fe.grants.count_rejected("ssh", r.reason);
        if r.counted {
            self.fe.limiter.failed(&self.keys());
            audit_failure(&self.fe, self.peer, &self.user, target, &why);
        }
        // OpenSSH shows a channel open failure only as "administratively
        // prohibited" and exits; a disconnect message it prints in full.
        if self.alone() {
            let text = format!("jitgate: access to {target} refused: {why}");
            hang_up(&self.shared, handle, &self.kill, text).await;
        }
        let failure = match r.reason {
            "upstream_error" => ChannelOpenFailure::ConnectFailed,
            _ => ChannelOpenFailure::AdministrativelyProhibited,
        };
        reply.reject(failure).await;
    }

    async fn admit(
        &self,
        target: &str,
    ) -> Result<(SessionGuard, TcpStream, Option<Duration>), Refused> {
        if let Err(left) = self.fe.limiter.check(&self.keys()) {
            return Err(Refused {
                why: format!(
                    "too many refused jumps; try again in {}s",
                    left.as_secs().max(1)
                ),
                reason: "auth_failed",
                counted: false,
            });
        }
        let admitted = self
            .fe
            .grants
            .admit_identified(target, TargetKind::Ssh, &self.user)
            .await
            .map_err(|r| Refused {
                why: r.to_string(),
                reason: r.metric_reason(),
                counted: true,
            })?;
        let guard = self
            .fe
            .grants
            .open_session(&admitted, TargetKind::Ssh, self.peer.to_string(), None)
            .await
            .map_err(|e| Refused {
                why: e.to_string(),
                reason: e.metric_reason(),
                counted: true,
            })?;
        let address = admitted.target.address.clone();
        let tcp = tokio::time::timeout(
            super::upstream::CONNECT_TIMEOUT,
            TcpStream::connect(&address),
        )
        .await;
        let tcp = match tcp {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(unreachable(&guard, target, &e.to_string())),
            Err(_) => return Err(unreachable(&guard, target, "connect timed out")),
        };
        let _ = tcp.set_nodelay(true);
        guard.start(Some(json!({"jump": true, "address": address})));
        let idle = admitted.policy.as_ref().and_then(|p| p.idle_timeout);
        Ok((guard, tcp, idle))
    }
}

fn unreachable(guard: &SessionGuard, target: &str, e: &str) -> Refused {
    tracing::warn!(%target, "ssh jump to the target failed: {e}");
    guard.set_cause(EndCause::new(EndReason::Error));
    let r = Refusal::Unreachable(format!("cannot reach {target}: {e}"));
    Refused {
        why: r.to_string(),
        reason: r.metric_reason(),
        counted: false,
    }
}

/// Relays raw bytes until either side closes (None) or the session's grant
/// ends (Some(cause)). Returns with the target's socket closed. The
/// engineer's bytes arrive through the handler into `rx`, capped by the
/// channel's budget; the target's are written as the engineer's window
/// allows, so neither direction buffers without bound.
#[allow(clippy::too_many_arguments)]
async fn bridge(
    down: Channel<Msg>,
    tcp: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    up: &UpChannel,
    replies: &Replies,
    guard: &SessionGuard,
    idle: Option<Duration>,
    kill: &CancellationToken,
) -> Option<EndCause> {
    let info = guard.info().clone();
    let (dr, dw) = down.split();
    // The engineer's data comes through the handler, not this read half.
    drop(dr);
    let (mut tr, mut tw) = tcp.into_split();
    let engineer_eof = AtomicBool::new(false);
    let to_target = async {
        while let Some(c) = rx.recv().await {
            match c {
                Cmd::Data(b) => {
                    let n = b.len();
                    let r = tw.write_all(&b).await;
                    up.up_budget.add_permits(n.clamp(1, UP_CAP));
                    r?;
                    info.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    info.touch();
                }
                Cmd::Ext(_, b) => up.up_budget.add_permits(b.len().clamp(1, UP_CAP)),
                Cmd::Eof => {
                    engineer_eof.store(true, Ordering::Release);
                    let _ = tw.shutdown().await;
                }
                Cmd::Close => return Ok(()),
                Cmd::Pty(..) | Cmd::Env(..) | Cmd::Shell | Cmd::Exec(_) | Cmd::Subsystem(_) => {
                    // Requests on a raw stream: refused.
                    let next = replies.lock().ok().and_then(|mut r| r.pop_front());
                    if let Some(tx) = next {
                        let _ = tx.send(false);
                    }
                }
                Cmd::Window(..) | Cmd::Signal(_) => {}
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let to_engineer = async {
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let n = tr.read(&mut buf).await?;
            if n == 0 {
                let _ = dw.eof().await;
                return Ok::<(), std::io::Error>(());
            }
            dw.data_bytes(Bytes::copy_from_slice(&buf[..n]))
                .await
                .map_err(std::io::Error::other)?;
            info.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            info.touch();
        }
    };
    tokio::pin!(to_target, to_engineer);
    let ending = guard.ending(idle);
    tokio::pin!(ending);
    let mut target_eof = false;
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => {
                guard.set_cause(EndCause::new(EndReason::ClientClosed));
                return None;
            }
            cause = &mut ending => return Some(cause),
            // The engineer closed the channel, or the target stopped taking bytes.
            r = &mut to_target => {
                let reason = if r.is_ok() { EndReason::ClientClosed } else { EndReason::UpstreamClosed };
                guard.set_cause(EndCause::new(reason));
                return None;
            }
            r = &mut to_engineer, if !target_eof => {
                target_eof = true;
                if r.is_err() || engineer_eof.load(Ordering::Acquire) {
                    guard.set_cause(EndCause::new(EndReason::UpstreamClosed));
                    return None;
                }
            }
        }
    }
}
