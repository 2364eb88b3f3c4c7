//! One engineer connection: a single task owns all of its state (login,
//! session guard, target connection, channel registry, jump channels,
//! farewell) and handles, one at a time, the events the russh handler and
//! its own helper tasks send it (`event`).
//!
//! Invariants:
//! - Only this task reads or changes the connection's state: there are no
//!   locks, and the order in which it handles events is the order of the
//!   connection's history (see `channels` for what that gives the end).
//! - It never awaits russh's session loop for this connection or the
//!   target, only the login (during which the engineer's client waits for
//!   the answer anyway): opens, answers from the target, writes of
//!   warnings and the farewell run in tasks it spawns. So the handler,
//!   which awaits this task's replies, can never wait on itself.
//! - The grant's end is acted on once: channels are ended (no more opens
//!   or requests), each target channel told to stop, and the farewell
//!   spawned; both sockets are killed when it is over, and at the latest
//!   FAREWELL_LIMIT * 2 after the engineer's connection has ended.
//! - A connection not authenticated within AUTH_TIMEOUT is killed.

use super::channel;
use super::channels::{Channels, REQUEST_REPLY_TIMEOUT};
use super::control::{Notice, Reason, Session, SshFrontEnd};
use super::event::{Direct, Event, EVENTS};
use super::farewell::{self, Farewell, FAREWELL_LIMIT};
use super::handler::Handler;
use super::jump::Jump;
use super::login::Login;
use super::names;
use super::open;
use super::socket::Killable;
use super::upstream::Upstream;
use russh::server::{self, ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Conn {
    fe: Arc<SshFrontEnd>,
    peer: SocketAddr,
    /// Kills both sockets, whatever state russh is in (`socket`).
    kill: CancellationToken,
    /// For the tasks this one spawns to report back.
    events: mpsc::Sender<Event>,
    login: Login,
    /// Held until authenticated: the accept loop's limit of connections
    /// not yet authenticated.
    permit: Option<OwnedSemaphorePermit>,
    authenticated: bool,
    handle: Option<server::Handle>,
    /// The admitted session of a terminating login.
    session: Option<Session>,
    /// Whether the session's warnings and end are being watched (from
    /// authentication until its end is acted on).
    watching: bool,
    upstream: Option<Arc<Upstream>>,
    channels: Channels,
    /// Jump channels being opened or relayed.
    jumps: usize,
    /// Cancelled when the engineer's connection has ended.
    client_gone: CancellationToken,
    /// Set when the farewell starts; cancelled when it is over.
    farewell: Option<CancellationToken>,
}

/// Runs one accepted connection to its end.
pub async fn run(
    fe: Arc<SshFrontEnd>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    auth_timeout: Duration,
) {
    let kill = CancellationToken::new();
    let (events, mut rx) = mpsc::channel(EVENTS);
    let handler = Handler::new(events.clone());
    let deadline = Instant::now() + auth_timeout;
    let mut conn = Conn {
        fe: fe.clone(),
        peer,
        kill: kill.clone(),
        events,
        login: Login::new(fe.clone(), peer, kill.clone()),
        permit: Some(permit),
        authenticated: false,
        handle: None,
        session: None,
        watching: false,
        upstream: None,
        channels: Channels::new(kill.clone()),
        jumps: 0,
        client_gone: CancellationToken::new(),
        farewell: None,
    };
    let session = async {
        match server::run_stream(fe.config.clone(), Killable::new(tcp, &kill), handler).await {
            Ok(session) => {
                if let Err(e) = session.await {
                    tracing::debug!(%peer, error = %e, "ssh session ended");
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "ssh handshake failed");
                fe.rejected("protocol_error");
            }
        }
    };
    tokio::pin!(session);
    loop {
        tokio::select! {
            biased;
            _ = &mut session => break,
            // The end before any queued event: what the engineer sent after
            // it must meet a connection that has already decided it.
            notice = next_notice(&mut conn.session), if conn.watching => conn.on_notice(notice),
            Some(event) = rx.recv() => conn.on_event(event, deadline).await,
            // A client that never finishes authenticating is cut off.
            _ = tokio::time::sleep_until(deadline), if !conn.authenticated && !kill.is_cancelled() => kill.cancel(),
        }
    }
    conn.finish().await;
}

async fn next_notice(session: &mut Option<Session>) -> Notice {
    match session {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Whether the session takes no more channels or requests: the end was
    /// acted on, or the grant ended and this task has not seen it yet.
    fn ended(&self) -> bool {
        self.channels.ended() || self.session.as_ref().is_some_and(|s| s.over())
    }

    async fn on_event(&mut self, event: Event, deadline: Instant) {
        match event {
            Event::KeyOffered { user, reply } => {
                let _ = reply.send(self.login.key_offered(&user));
            }
            Event::Login { user, key, reply } => {
                let kill = self.kill.clone();
                let login = self.login.login(&user, &key);
                tokio::pin!(login);
                // The deadline cuts the sockets (and so the target's login)
                // off; the admission itself finishes and is ended.
                let (ok, admission) = tokio::select! {
                    r = &mut login => r,
                    _ = tokio::time::sleep_until(deadline) => {
                        kill.cancel();
                        login.await
                    }
                };
                if let Some(a) = admission {
                    self.session = Some(a.session);
                    self.upstream = Some(a.upstream);
                }
                let _ = reply.send(ok);
            }
            Event::Authenticated { handle } => {
                self.authenticated = true;
                self.permit = None;
                self.handle = Some(handle);
                self.watching = self.session.is_some() && self.login.refusal.is_none();
            }
            Event::OpenSession { channel, reply } => self.open_session(channel, reply).await,
            Event::OpenDirect { channel, to, reply } => self.open_direct(channel, to, reply).await,
            Event::Opened {
                channel,
                result,
                reply,
            } => self.opened(channel, result, reply).await,
            Event::Request { id, cmd, reply } => {
                let over = self.session.as_ref().is_some_and(|s| s.over());
                let refusal = self.login.refusal.as_deref();
                self.channels.request(id, cmd, reply, refusal, over);
            }
            Event::Data {
                id,
                ext,
                data,
                queued,
            } => {
                let over = self.session.as_ref().is_some_and(|s| s.over());
                let info = self.session.as_ref().map(|s| &**s.info());
                self.channels.data(id, ext, data, queued, info, over);
            }
            Event::Send { id, cmd } => self.channels.send(id, cmd),
            Event::Close { id } => self.channels.close(id, self.login.jump_user.is_some()),
            Event::JumpRegister { id, channel, ok } => {
                let _ = ok.send(self.channels.add(id, channel));
            }
            Event::JumpDone { id, text, done } => self.jump_done(id, text, done),
        }
    }

    fn on_notice(&mut self, notice: Notice) {
        match notice {
            Notice::Warning(text) => {
                if let Some(handle) = self.handle.clone() {
                    tokio::spawn(farewell::warn(handle, self.channels.ids(), text));
                }
            }
            Notice::Ended(cause) => {
                let text = format!("access to {} ended: {cause}", self.login.target);
                self.begin_farewell(text);
            }
        }
    }

    /// The end of the grant (see the module doc): from here no channel
    /// opens and no request reaches the target.
    fn begin_farewell(&mut self, text: String) {
        self.watching = false;
        let Some(handle) = self.handle.clone() else {
            return;
        };
        let channels = self.channels.end();
        for (_, c) in &channels {
            // Commands without a pty survive a disconnect on OpenSSH:
            // signal them until sshd reports their end, then close
            // (`UpChannel::end`).
            c.end();
        }
        let farewell = Farewell {
            handle,
            channels,
            upstream: self.upstream.clone(),
            open: self.channels.open(),
            client_gone: self.client_gone.clone(),
            text,
        };
        let done = CancellationToken::new();
        self.farewell = Some(done.clone());
        let kill = self.kill.clone();
        tokio::spawn(async move {
            farewell.run().await;
            done.cancel();
            kill.cancel();
        });
    }

    /// The engineer's connection has ended. The client often hangs up on
    /// the farewell's disconnect before the target has acted on it:
    /// killing the sockets at once would cut the queued signal and close
    /// to the target and leave its commands running. So a session whose
    /// grant ended gets its farewell (started now if this task had not
    /// seen the end yet) before both sockets are killed.
    async fn finish(mut self) {
        self.client_gone.cancel();
        if self.farewell.is_none() && self.session.as_ref().is_some_and(|s| s.over()) {
            if let Some(s) = &self.session {
                let text = format!("access to {} ended: {}", self.login.target, s.cause());
                self.begin_farewell(text);
            }
        }
        if let Some(done) = &self.farewell {
            let _ = tokio::time::timeout(FAREWELL_LIMIT * 2, done.cancelled()).await;
        }
        self.kill.cancel();
        if let Some(s) = self.session.take() {
            s.end(Reason::ClientClosed);
            let sealing = s.seal(&self.fe.grants);
            sealing.await;
        }
    }

    async fn open_session(&mut self, channel: Channel<Msg>, reply: ChannelOpenHandle) {
        let Some(up) = self.upstream.clone() else {
            // A refused engineer still gets a channel, to read why.
            if self.login.refusal.is_some() {
                accept(reply).await;
            } else {
                reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
            }
            return;
        };
        if self.ended() {
            return reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
        }
        self.open_upstream(channel, reply, async move {
            up.handle.channel_open_session().await
        });
    }

    /// Opens the target's side in a task, bounded, and reports it as
    /// `Event::Opened`: a slow target or destination must not stall this
    /// connection or its other channels.
    fn open_upstream(
        &self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        open: impl std::future::Future<Output = Result<Channel<russh::client::Msg>, russh::Error>>
            + Send
            + 'static,
    ) {
        let events = self.events.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(REQUEST_REPLY_TIMEOUT, open).await {
                Ok(r) => r,
                Err(_) => Err(russh::Error::ConnectionTimeout),
            };
            let _ = events
                .send(Event::Opened {
                    channel,
                    result,
                    reply,
                })
                .await;
        });
    }

    async fn open_direct(&mut self, channel: Channel<Msg>, to: Direct, reply: ChannelOpenHandle) {
        let Direct {
            host,
            port,
            origin,
            origin_port,
        } = to;
        if let Some(user) = &self.login.jump_user {
            let target = names::bounded(&host);
            // A connection being hung up (its grant ended) opens nothing more.
            if self.channels.ended() {
                tracing::info!(%user, %target, "ssh jump refused: the connection is ending");
                return reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
            }
            self.jumps += 1;
            let jump = Jump {
                fe: self.fe.clone(),
                events: self.events.clone(),
                kill: self.kill.clone(),
                peer: self.peer,
                user: user.clone(),
            };
            jump.spawn(channel, target, reply);
            return;
        }
        let Some(up) = self.upstream.clone() else {
            // OpenSSH prints a refused open only as "administratively
            // prohibited"; the reason goes in the disconnect message.
            let text = self.login.refusal.as_ref().map(|r| format!("jitgate: {r}"));
            let (Some(text), Some(handle)) = (text, self.handle.clone()) else {
                return reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
            };
            self.channels.end();
            let kill = self.kill.clone();
            tokio::spawn(async move {
                farewell::hang_up(handle, kill, text).await;
                reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
            });
            return;
        };
        if self.ended() {
            return reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
        }
        // Only the destinations the target lists (see `open`).
        let target = &self.login.target;
        let cfg = self.fe.config_now();
        let listed = cfg.targets.get(target).map(|t| &t.forwarding[..]);
        let ok = open::allowed(listed.unwrap_or_default(), &host, port);
        let info = self.session.as_ref().map(|s| &**s.info());
        let dest = open::destination(&names::bounded(&host), port);
        self.fe.audit_forward(info, target, &dest, ok);
        if !ok {
            return reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
        }
        // The target's sshd opens the forwarded connection, as it would
        // without the proxy; one slow destination cannot freeze others.
        self.open_upstream(channel, reply, async move {
            up.handle
                .channel_open_direct_tcpip(host, port, origin, origin_port)
                .await
        });
    }

    /// The target's side of a channel opened: relay it, unless the session
    /// ended meanwhile (then it is closed on the target, where it has run
    /// nothing yet, and refused).
    async fn opened(
        &mut self,
        channel: Channel<Msg>,
        result: Result<Channel<russh::client::Msg>, russh::Error>,
        reply: ChannelOpenHandle,
    ) {
        let info = self.session.as_ref().map(|s| s.info().clone());
        match (result, info, self.handle.clone()) {
            (Ok(up), Some(info), Some(handle)) => {
                if self.ended() {
                    tracing::info!(target = %info.target, "ssh channel opened after the end: closed on the target and refused");
                    tokio::spawn(async move {
                        let _ = up.close().await;
                    });
                    return reject(reply, ChannelOpenFailure::AdministrativelyProhibited).await;
                }
                let id = channel.id();
                let rec = self.session.as_ref().and_then(|s| s.recording());
                let c = channel::start(channel, up, handle, info, &self.kill, rec);
                self.channels.add(id, c);
                accept(reply).await;
            }
            (Err(russh::Error::ChannelOpenFailure(f)), _, _) => reject(reply, f).await,
            (Err(e), _, _) => {
                tracing::debug!(error = %e, "the target refused a channel");
                reject(reply, ChannelOpenFailure::ConnectFailed).await;
            }
            (Ok(_), _, _) => reject(reply, ChannelOpenFailure::ConnectFailed).await,
        }
    }

    /// A jump channel's task is over (see `Event::JumpDone`).
    fn jump_done(
        &mut self,
        id: Option<russh::ChannelId>,
        text: Option<String>,
        done: tokio::sync::oneshot::Sender<()>,
    ) {
        if let Some(id) = id {
            self.channels.remove(id);
        }
        let alone = self.jumps == 1;
        self.jumps = self.jumps.saturating_sub(1);
        let Some(handle) = self.handle.clone() else {
            let _ = done.send(());
            return;
        };
        // Hung up: no channel opens from now on.
        let text = text.filter(|_| alone);
        if text.is_some() {
            self.channels.end();
        }
        let kill = self.kill.clone();
        tokio::spawn(async move {
            farewell::jump_closed(handle, kill, id, text).await;
            let _ = done.send(());
        });
    }
}

/// russh's open replies only queue a message for its session loop
/// (unbounded): they complete at once, so this task may await them, and
/// they keep their place among the connection's other messages.
async fn accept(reply: ChannelOpenHandle) {
    reply.accept().await
}

async fn reject(reply: ChannelOpenHandle, why: ChannelOpenFailure) {
    reply.reject(why).await
}
