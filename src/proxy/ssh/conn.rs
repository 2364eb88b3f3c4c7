//! The russh server handler for one engineer connection. Thin by design:
//! callbacks authenticate, admit, and queue work for per-channel tasks
//! (`channel`); nothing here awaits the target except the bounded reply to
//! a channel request, which must be answered in order inside the callback
//! (russh keeps one want-reply flag per channel).

use super::channel::{self, Cmd, UpChannel};
use super::keys;
use super::server::SshFrontEnd;
use super::upstream::{self, Upstream};
use crate::config::TargetKind;
use crate::sessions::{EndCause, EndReason, SessionGuard};
use russh::keys::PublicKey;
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty, Sig};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the target may take to answer a channel request.
const REQUEST_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the connection task and the grant watcher share with the handler.
#[derive(Default)]
pub struct Shared {
    pub guard: Mutex<Option<SessionGuard>>,
    pub authenticated: std::sync::atomic::AtomicBool,
    pub channels: Mutex<HashMap<ChannelId, Arc<UpChannel>>>,
    pub warnings: Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
    pub upstream: Mutex<Option<Arc<Upstream>>>,
    pub unauth_permit: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    pub idle_timeout: Mutex<Option<Duration>>,
    /// Jump channels being opened or relayed on this connection.
    pub jumps: std::sync::atomic::AtomicUsize,
    /// Cancelled once the farewell has reached both sides (the target's
    /// channels told to stop and closed); the connection task waits for it
    /// before killing the sockets.
    pub farewell_done: CancellationToken,
    /// Cancelled when the engineer's connection has ended: the farewell then
    /// stops waiting on that side.
    pub client_gone: CancellationToken,
}

pub struct Conn {
    pub fe: Arc<SshFrontEnd>,
    pub peer: SocketAddr,
    pub kill: CancellationToken,
    pub shared: Arc<Shared>,
    /// Set when the engineer is identified but gets no shell here (no
    /// grant, or a jump connection): shown on their channels, after
    /// "jitgate: ", instead of a bare "Permission denied".
    pub refusal: Option<String>,
    pub target: String,
    /// A jump connection (`ssh -J USER@proxy TARGET`): the jitgate user.
    pub jump_user: Option<String>,
    /// One rejected key offer per connection counts as a failed attempt:
    /// an agent offering several keys is not a brute force.
    pub offer_failed: bool,
}

impl Conn {
    fn channel(&self, id: ChannelId) -> Option<Arc<UpChannel>> {
        self.shared.channels.lock().ok()?.get(&id).cloned()
    }

    fn upstream(&self) -> Option<Arc<Upstream>> {
        self.shared.upstream.lock().ok()?.clone()
    }

    fn reject_metric(&self, reason: &str) {
        self.fe
            .grants
            .metrics
            .connections_rejected
            .with_label_values(&["ssh", reason])
            .inc();
    }

    /// Forwards a want-reply request and answers the engineer in order.
    async fn forward(&self, id: ChannelId, s: &mut Session, cmd: Cmd) -> Result<(), russh::Error> {
        let Some(c) = self.channel(id) else {
            return self.refused_request(id, s, cmd);
        };
        let answer = c.request(cmd);
        let ok = matches!(
            tokio::time::timeout(REQUEST_REPLY_TIMEOUT, answer).await,
            Ok(Ok(true))
        );
        if ok {
            s.channel_success(id)
        } else {
            s.channel_failure(id)
        }
    }

    /// A channel of a refused engineer: a shell, command or subsystem
    /// request gets the reason on stderr and exit status 1.
    fn refused_request(
        &self,
        id: ChannelId,
        s: &mut Session,
        cmd: Cmd,
    ) -> Result<(), russh::Error> {
        let Some(reason) = &self.refusal else {
            return s.channel_failure(id);
        };
        s.channel_success(id)?;
        if matches!(cmd, Cmd::Shell | Cmd::Exec(_) | Cmd::Subsystem(_)) {
            let line = format!("jitgate: {reason}\r\n");
            s.extended_data(id, 1, line.into_bytes())?;
            s.exit_status_request(id, 1)?;
            s.eof(id)?;
            s.close(id)?;
        }
        Ok(())
    }

    fn audit_failure(&self, user: &str, why: &str) {
        audit_failure(&self.fe, self.peer, user, &self.target, why);
    }

    /// Counts one failed attempt from this source (once per connection),
    /// audits it, and says whether the source is now blocked.
    fn unknown_key(&mut self, pk: &PublicKey) {
        self.reject_metric("auth_failed");
        if std::mem::replace(&mut self.offer_failed, true) {
            return;
        }
        let blocked = self.fe.limiter.failed(&self.limiter_keys());
        self.audit_failure(
            "unknown",
            &format!(
                "unknown key {}{}",
                keys::fingerprint(pk),
                if blocked { "; source blocked" } else { "" }
            ),
        );
    }

    fn limiter_keys(&self) -> Vec<String> {
        vec![format!("ip:{}", self.peer.ip())]
    }

    /// A source over the failure limit is refused without looking further.
    fn blocked(&self) -> bool {
        if self.fe.limiter.check(&self.limiter_keys()).is_err() {
            self.reject_metric("auth_failed");
            return true;
        }
        false
    }

    /// Identified engineer: admission, session, target login.
    async fn admit(&mut self, user: &str) -> Result<(), (String, &'static str)> {
        let admitted = self
            .fe
            .grants
            .admit_identified(&self.target, TargetKind::Ssh, user)
            .await
            .map_err(|r| (r.to_string(), r.metric_reason()))?;
        let (warn_tx, warn_rx) = tokio::sync::mpsc::channel(8);
        let guard = self
            .fe
            .grants
            .open_session(
                &admitted,
                TargetKind::Ssh,
                self.peer.to_string(),
                Some(warn_tx),
            )
            .await
            .map_err(|e| (e.to_string(), e.metric_reason()))?;
        match upstream::connect(&admitted.target, &self.kill).await {
            Ok(up) => {
                guard.start(Some(
                    json!({"upstream_user": admitted.target.upstream.user}),
                ));
                if let Ok(mut u) = self.shared.upstream.lock() {
                    *u = Some(Arc::new(up));
                }
                if let Ok(mut w) = self.shared.warnings.lock() {
                    *w = Some(warn_rx);
                }
                if let Ok(mut s) = self.shared.guard.lock() {
                    *s = Some(guard);
                }
                if let Ok(mut i) = self.shared.idle_timeout.lock() {
                    *i = admitted.policy.as_ref().and_then(|p| p.idle_timeout);
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target = %self.target, "ssh upstream failed: {e}");
                guard.set_cause(EndCause::new(EndReason::Error));
                Err((
                    format!("cannot reach {}: {e}", self.target),
                    "upstream_error",
                ))
            }
        }
    }
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        name: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.target = name.to_string();
        if self.blocked() {
            return Ok(Auth::reject());
        }
        let known = keys::user_for_key(&self.fe.grants.config.get(), offer.public_key).is_some();
        if !known {
            self.unknown_key(offer.public_key);
        }
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(
        &mut self,
        target: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.target = target.to_string();
        let pk: &PublicKey = key.public_key;
        if self.blocked() {
            return Ok(Auth::reject());
        }
        let cfg = self.fe.grants.config.get();
        let Some(user) = keys::user_for_key(&cfg, pk) else {
            self.unknown_key(pk);
            return Ok(Auth::reject());
        };
        // A target's name selects the terminating mode; the key owner's own
        // name (when no target has it) a jump connection.
        if !cfg.targets.contains_key(target) && target == user {
            tracing::info!(%user, key = %keys::fingerprint(pk), "ssh jump connection");
            self.refusal = Some(format!(
                "{user}@ is a jump login: it runs no shell or command; use `ssh -J {user}@PROXY TARGET`, or `ssh TARGET@PROXY` for a shell"
            ));
            self.jump_user = Some(user);
            return Ok(Auth::Accept);
        }
        match self.admit(&user).await {
            Ok(()) => {
                tracing::info!(%user, target = %self.target, key = %keys::fingerprint(pk), "ssh session admitted");
            }
            Err((why, reason)) => {
                tracing::info!(%user, target = %self.target, reason, "ssh access refused: {why}");
                self.reject_metric(reason);
                self.audit_failure(&user, &why);
                self.refusal = Some(format!("access to {} refused: {why}", self.target));
            }
        }
        Ok(Auth::Accept)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.shared
            .authenticated
            .store(true, std::sync::atomic::Ordering::Release);
        if let Ok(mut p) = self.shared.unauth_permit.lock() {
            p.take();
        }
        if self.refusal.is_none() {
            super::server::watch(
                self.shared.clone(),
                session.handle(),
                self.kill.clone(),
                self.target.clone(),
            );
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(up) = self.upstream() else {
            // A refused engineer still gets a channel, to read why.
            if self.refusal.is_some() {
                reply.accept().await;
            } else {
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
            }
            return Ok(());
        };
        // Opened in a task: a slow target must not stall this connection.
        self.attach(channel, reply, session, async move {
            up.channel_open_session().await
        });
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        origin: &str,
        origin_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(user) = &self.jump_user {
            let jump = super::jump::Jump {
                fe: self.fe.clone(),
                shared: self.shared.clone(),
                kill: self.kill.clone(),
                peer: self.peer,
                user: user.clone(),
            };
            jump.open(channel, host.to_string(), reply, session.handle());
            return Ok(());
        }
        let Some(up) = self.upstream() else {
            // OpenSSH prints a refused open only as "administratively
            // prohibited"; the reason goes in the disconnect message.
            let (handle, kill) = (session.handle(), self.kill.clone());
            let text = self.refusal.as_ref().map(|r| format!("jitgate: {r}"));
            tokio::spawn(async move {
                if let Some(text) = text {
                    super::server::hang_up(&handle, &kill, text).await;
                }
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
            });
            return Ok(());
        };
        let (host, origin) = (host.to_string(), origin.to_string());
        // The target's sshd opens the forwarded connection, as it would
        // without the proxy; one slow destination cannot freeze others.
        self.attach(channel, reply, session, async move {
            match tokio::time::timeout(
                REQUEST_REPLY_TIMEOUT,
                up.channel_open_direct_tcpip(host, port, origin, origin_port),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(russh::Error::ConnectionTimeout),
            }
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        id: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pw: u32,
        ph: u32,
        modes: &[(Pty, u32)],
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward(
            id,
            s,
            Cmd::Pty(term.into(), cols, rows, pw, ph, modes.to_vec()),
        )
        .await
    }

    async fn env_request(
        &mut self,
        id: ChannelId,
        name: &str,
        value: &str,
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward(id, s, Cmd::Env(name.into(), value.into()))
            .await
    }

    async fn shell_request(&mut self, id: ChannelId, s: &mut Session) -> Result<(), Self::Error> {
        self.forward(id, s, Cmd::Shell).await
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        command: &[u8],
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward(id, s, Cmd::Exec(command.to_vec())).await
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.forward(id, s, Cmd::Subsystem(name.into())).await
    }

    async fn window_change_request(
        &mut self,
        id: ChannelId,
        cols: u32,
        rows: u32,
        pw: u32,
        ph: u32,
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channel(id) {
            c.send(Cmd::Window(cols, rows, pw, ph));
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        id: ChannelId,
        sig: Sig,
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channel(id) {
            c.send(Cmd::Signal(sig));
        }
        Ok(())
    }

    /// Agent forwarding is refused: the engineer's agent must not be
    /// reachable from the target.
    async fn agent_request(
        &mut self,
        _id: ChannelId,
        _s: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn data(
        &mut self,
        id: ChannelId,
        data: &[u8],
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channel(id) {
            if let Some(info) = self.session_info() {
                info.touch();
            }
            c.send_bytes(data, Cmd::Data).await;
        }
        Ok(())
    }

    async fn extended_data(
        &mut self,
        id: ChannelId,
        code: u32,
        data: &[u8],
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channel(id) {
            c.send_bytes(data, |b| Cmd::Ext(code, b)).await;
        }
        Ok(())
    }

    async fn channel_eof(&mut self, id: ChannelId, _s: &mut Session) -> Result<(), Self::Error> {
        if let Some(c) = self.channel(id) {
            c.send(Cmd::Eof);
        }
        Ok(())
    }

    async fn channel_close(&mut self, id: ChannelId, _s: &mut Session) -> Result<(), Self::Error> {
        let removed = self
            .shared
            .channels
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&id));
        if let Some(c) = removed {
            c.send(Cmd::Close);
        }
        Ok(())
    }
}

impl Conn {
    /// Opens the target's side in a task, then accepts the engineer's
    /// channel and starts relaying, or rejects it with the target's reason.
    fn attach(
        &self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
        open: impl std::future::Future<Output = Result<Channel<russh::client::Msg>, russh::Error>>
            + Send
            + 'static,
    ) {
        let (shared, server, kill) = (self.shared.clone(), session.handle(), self.kill.clone());
        let info = self.session_info();
        tokio::spawn(async move {
            match (open.await, info) {
                (Ok(upc), Some(info)) => {
                    let id = channel.id();
                    let c = channel::start(channel, upc, server, info, &kill);
                    if let Ok(mut m) = shared.channels.lock() {
                        m.insert(id, c);
                    }
                    reply.accept().await;
                }
                (Err(russh::Error::ChannelOpenFailure(f)), _) => reply.reject(f).await,
                (Err(e), _) => {
                    tracing::debug!(error = %e, "the target refused a channel");
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                }
                (Ok(_), None) => reply.reject(ChannelOpenFailure::ConnectFailed).await,
            }
        });
    }

    fn session_info(&self) -> Option<Arc<crate::sessions::SessionInfo>> {
        self.shared
            .guard
            .lock()
            .ok()?
            .as_ref()
            .map(|g| g.info().clone())
    }
}

/// An `auth.failed` audit event, written off the connection's path.
pub fn audit_failure(fe: &SshFrontEnd, peer: SocketAddr, user: &str, target: &str, why: &str) {
    let entry = crate::audit::AuditEntry::new(
        user,
        "auth.failed",
        target,
        json!({"kind": "ssh", "client": peer.to_string(), "reason": why}),
    );
    let store = fe.grants.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.audit(&entry).await {
            tracing::warn!(error = %e, "could not audit a failed authentication");
        }
    });
}
