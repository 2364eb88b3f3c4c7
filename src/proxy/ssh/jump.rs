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

use super::channel::{Replies, UpChannel, UP_CAP};
use super::cmd::Cmd;
use super::control::{self, Blame, Cause, Reason, Session, SshFrontEnd};
use super::event::Event;
use bytes::Bytes;
use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

/// Bytes read from the target per write to the engineer's channel.
const READ_BUF: usize = 32 * 1024;

/// One jump channel's task: what it needs from its connection. The
/// connection's task counts the channel from the open until `JumpDone`.
pub struct Jump {
    pub fe: Arc<SshFrontEnd>,
    /// The connection's task, which registers the channel and closes it or
    /// hangs the connection up at the end.
    pub events: mpsc::Sender<Event>,
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
    blame: Blame,
}

impl Jump {
    /// Admits and bridges in a task: a slow store or target must not stall
    /// the connection, and one hanging open must not freeze the others.
    /// `target` is bounded already.
    pub fn spawn(self, channel: Channel<Msg>, target: String, reply: ChannelOpenHandle) {
        tokio::spawn(async move {
            self.run(channel, &target, reply).await;
        });
    }

    fn keys(&self) -> [String; 1] {
        [format!("ssh-jump:{}", self.user)]
    }

    /// Tells the connection's task this channel's task is over, and waits
    /// until it has closed the channel or hung the connection up.
    async fn done(&self, id: Option<ChannelId>, text: Option<String>) {
        let (done, over) = oneshot::channel();
        if self
            .events
            .send(Event::JumpDone { id, text, done })
            .await
            .is_ok()
        {
            let _ = over.await;
        }
    }

    async fn run(&self, channel: Channel<Msg>, target: &str, reply: ChannelOpenHandle) {
        let (mut session, tcp) = match self.admit(target).await {
            Ok(x) => x,
            Err(r) => return self.refuse(target, r, reply).await,
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
            ending: CancellationToken::new(),
            // Bridged channels are not recorded (the far connection is).
            rec: None,
            down: mpsc::unbounded_channel().0,
        });
        // Registered by the connection's task, which refuses it once the
        // connection is being hung up: an open that raced with that is
        // refused, its fresh session ended unused.
        let (ok, registered) = oneshot::channel();
        let channel_up = up.clone();
        let sent = self.events.send(Event::JumpRegister {
            id,
            channel: channel_up,
            ok,
        });
        let registered = sent.await.is_ok() && registered.await.unwrap_or(false);
        if !registered {
            session.end(Reason::ClientClosed);
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return self.done(None, None).await;
        }
        // Only now may target bytes flow: the open is confirmed first.
        reply.accept().await;
        let ended = bridge(channel, tcp, rx, &up, &replies, &mut session, &self.kill).await;
        // The target's socket is closed here (the bridge owned it). Bytes
        // waiting for budget, and the engineer's connection held back
        // behind them, must not wait forever.
        up.up_budget.close();
        let text = ended.map(|cause| {
            let text = format!("jitgate: access to {target} ended: {cause}");
            tracing::info!(user = %self.user, %target, "ssh jump channel closed: {text}");
            text
        });
        self.done(Some(id), text).await;
        drop(session);
    }

    async fn refuse(&self, target: &str, r: Refused, reply: ChannelOpenHandle) {
        let why = r.why;
        tracing::info!(user = %self.user, %target, reason = r.reason, "ssh jump refused: {why}");
        self.fe.rejected(r.reason);
        if r.counted {
            self.fe.limiter.failed(&self.keys());
            self.fe.audit_failure(self.peer, &self.user, target, &why);
        }
        // OpenSSH shows a channel open failure only as "administratively
        // prohibited" and exits; a disconnect message it prints in full.
        // The connection is hung up with it when this was its only channel.
        let text = format!("jitgate: access to {target} refused: {why}");
        self.done(None, Some(text)).await;
        let failure = if r.blame == Blame::Upstream {
            ChannelOpenFailure::ConnectFailed
        } else {
            ChannelOpenFailure::AdministrativelyProhibited
        };
        reply.reject(failure).await;
    }

    async fn admit(&self, target: &str) -> Result<(Session, TcpStream), Refused> {
        if let Err(left) = self.fe.limiter.check(&self.keys()) {
            return Err(Refused {
                why: format!(
                    "too many refused jumps; try again in {}s",
                    left.as_secs().max(1)
                ),
                reason: "auth_failed",
                counted: false,
                blame: Blame::Downstream,
            });
        }
        let (session, t) = self
            .fe
            .admit(target, &self.user, self.peer, false)
            .await
            .map_err(|r| Refused {
                why: r.why,
                reason: r.reason,
                // Only the engineer's own refusals are audited as failed
                // authentications and count against their limit.
                counted: r.blame == Blame::Downstream,
                blame: r.blame,
            })?;
        let address = t.address.clone();
        let tcp = tokio::time::timeout(
            super::upstream::CONNECT_TIMEOUT,
            TcpStream::connect(&address),
        )
        .await;
        let tcp = match tcp {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(unreachable(&session, target, &e.to_string())),
            Err(_) => return Err(unreachable(&session, target, "connect timed out")),
        };
        let _ = tcp.set_nodelay(true);
        session.start(json!({"jump": true, "address": address}));
        Ok((session, tcp))
    }
}

fn unreachable(session: &Session, target: &str, e: &str) -> Refused {
    tracing::warn!(%target, "ssh jump to the target failed: {e}");
    session.end(Reason::Error);
    let r = control::Refused::unreachable(format!("cannot reach {target}: {e}"));
    Refused {
        why: r.why,
        reason: r.reason,
        counted: false,
        blame: r.blame,
    }
}

/// Relays raw bytes until either side closes (None) or the session's grant
/// ends (Some(cause)). Returns with the target's socket closed. The
/// engineer's bytes arrive through the handler into `rx`, capped by the
/// channel's budget; the target's are written as the engineer's window
/// allows, so neither direction buffers without bound.
async fn bridge(
    down: Channel<Msg>,
    tcp: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    up: &UpChannel,
    replies: &Replies,
    session: &mut Session,
    kill: &CancellationToken,
) -> Option<Cause> {
    let info = session.info().clone();
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
    let mut target_eof = false;
    loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => {
                session.end(Reason::ClientClosed);
                return None;
            }
            cause = session.ended() => return Some(cause),
            // The engineer closed the channel, or the target stopped taking bytes.
            r = &mut to_target => {
                let reason = if r.is_ok() { Reason::ClientClosed } else { Reason::UpstreamClosed };
                session.end(reason);
                return None;
            }
            r = &mut to_engineer, if !target_eof => {
                target_eof = true;
                if r.is_err() || engineer_eof.load(Ordering::Acquire) {
                    session.end(Reason::UpstreamClosed);
                    return None;
                }
            }
        }
    }
}
