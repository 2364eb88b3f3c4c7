//! The russh server handler for one engineer connection. Thin by design:
//! callbacks authenticate, admit, and queue work for per-channel tasks
//! (`channel`); nothing here awaits the target except the bounded reply to
//! a channel request, which must be answered in order inside the callback
//! (russh keeps one want-reply flag per channel).

pub use super::admit::audit_failure;
use super::channel::{Cmd, UpChannel};
use super::keys;
use super::names;
use super::open;
use super::server::SshFrontEnd;
pub use super::shared::Shared;
use super::upstream::Upstream;
use russh::keys::PublicKey;
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Pty, Sig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the target may take to answer a channel request.
const REQUEST_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// Forwards a want-reply request and answers the engineer in order.
    async fn forward(&self, id: ChannelId, s: &mut Session, cmd: Cmd) -> Result<(), russh::Error> {
        let Some(c) = self.channel(id) else {
            return self.refused_request(id, s, cmd);
        };
        // Nothing starts on the target once the grant has ended. Checked and
        // queued under the lock `Shared::freeze` ends the session under: a
        // request is either ahead of the farewell's signal (and noted for
        // it) or refused, never queued behind it (see `open`).
        let starts = matches!(cmd, Cmd::Exec(_) | Cmd::Shell);
        let answer = {
            let Ok(_frozen) = self.shared.channels.lock() else {
                return s.channel_failure(id);
            };
            if self.shared.ended() {
                return s.channel_failure(id);
            }
            c.note(&cmd);
            c.request(cmd)
        };
        // A target channel whose writer has ended (the farewell closed it)
        // answers nothing more; waiting out the timeout here would hold
        // this connection's loop, and so the session's close and the
        // revoke call, for ten seconds (seen under load with a request
        // that arrived as the farewell began).
        let ok = tokio::select! {
            r = tokio::time::timeout(REQUEST_REPLY_TIMEOUT, answer) => {
                // Refused by the target: nothing runs that the farewell
                // would have to wait for.
                if starts && matches!(r, Ok(Ok(false))) {
                    c.command.store(false, std::sync::atomic::Ordering::Release);
                }
                matches!(r, Ok(Ok(true)))
            }
            _ = c.upstream_done.cancelled() => false,
            _ = self.shared.ending.cancelled() => false,
            _ = self.kill.cancelled() => false,
        };
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
        self.target = names::bounded(name);
        if self.blocked() {
            return Ok(Auth::reject());
        }
        let known = keys::user_for_key(&self.fe.grants.config_now(), offer.public_key).is_some();
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
        // Chosen by the client: bounded before it is logged, audited or shown.
        self.target = names::bounded(target);
        let target = self.target.clone();
        let target = target.as_str();
        let pk: &PublicKey = key.public_key;
        if self.blocked() {
            return Ok(Auth::reject());
        }
        let cfg = self.fe.grants.config_now();
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
        if self.shared.ended() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
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
            let shared = self.shared.clone();
            let text = self.refusal.as_ref().map(|r| format!("jitgate: {r}"));
            tokio::spawn(async move {
                if let Some(text) = text {
                    super::server::hang_up(&shared, &handle, &kill, text).await;
                }
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
            });
            return Ok(());
        };
        if self.shared.ended() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        // Only the destinations the target lists (see `open`).
        let cfg = self.fe.grants.config_now();
        let listed = cfg.targets.get(&self.target).map(|t| &t.forwarding[..]);
        let ok = open::allowed(listed.unwrap_or_default(), host, port);
        let info = self.session_info();
        open::audit_forward(
            &self.fe.grants,
            info.as_deref(),
            &self.target,
            host,
            port,
            ok,
        );
        if !ok {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
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

    /// X11 forwarding is refused, and said so: a request left unanswered
    /// keeps `ssh -X` waiting.
    async fn x11_request(
        &mut self,
        id: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(target = %self.target, "x11 forwarding refused");
        s.channel_failure(id)
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
        // Once the farewell has frozen the channels it closes the target's
        // side itself, after what runs there has ended (`UpChannel::end`):
        // the engineer's client answers the farewell's close at once, and
        // passing that on would close the channel before a command that
        // lost its first signal is signalled again.
        let (removed, frozen) = match self.shared.channels.lock() {
            Ok(mut m) => (m.remove(&id), self.shared.ending.is_cancelled()),
            Err(_) => (None, true),
        };
        if let Some(c) = removed {
            if !frozen || self.jump_user.is_some() {
                c.send(Cmd::Close);
            }
        }
        Ok(())
    }
}

impl Conn {
    /// See `open::attach`.
    fn attach(
        &self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
        open: impl std::future::Future<Output = Result<Channel<russh::client::Msg>, russh::Error>>
            + Send
            + 'static,
    ) {
        open::attach(
            self.shared.clone(),
            session.handle(),
            self.kill.clone(),
            self.session_info(),
            channel,
            reply,
            open,
        );
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
