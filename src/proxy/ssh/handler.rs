//! The russh server handler of one engineer connection. It owns nothing:
//! each callback becomes one event for the connection's task (`conn`),
//! and where russh needs an answer the callback awaits the task's reply and
//! hands it to russh. Fixed policy answers that need no state (no `none`
//! login, no X11, no agent forwarding) are given here.
//!
//! Invariant: the handler never awaits the target or the network itself,
//! only the connection's task, which never awaits this session's loop (it
//! spawns whatever needs it), so the two cannot wait on each other.

use super::cmd::Cmd;
use super::event::{Answer, Credential, Direct, Event};
use bytes::Bytes;
use russh::keys::Certificate;
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, Pty, Sig};
use tokio::sync::{mpsc, oneshot};

pub struct Handler {
    events: mpsc::Sender<Event>,
}

impl Handler {
    pub fn new(events: mpsc::Sender<Event>) -> Handler {
        Handler { events }
    }

    /// Sends an event; a connection task that is gone drops it (its
    /// replies then read as refusals).
    async fn send(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    async fn ask<T>(&self, event: impl FnOnce(oneshot::Sender<T>) -> Event) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(event(tx)).await;
        rx.await.ok()
    }

    async fn offered(&self, user: &str) -> Auth {
        let user = user.to_string();
        let ok = self.ask(|reply| Event::KeyOffered { user, reply }).await;
        if ok == Some(true) {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }

    async fn login(&self, user: &str, key: Credential) -> Auth {
        let user = user.to_string();
        let ok = self.ask(|reply| Event::Login { user, key, reply }).await;
        if ok == Some(true) {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }

    /// A want-reply request: answered in order inside the callback (russh
    /// keeps one want-reply flag per channel).
    async fn request(&self, id: ChannelId, s: &mut Session, cmd: Cmd) -> Result<(), russh::Error> {
        let answer = self.ask(|reply| Event::Request { id, cmd, reply }).await;
        match answer.unwrap_or(Answer::Failure) {
            Answer::Success => s.channel_success(id),
            Answer::Failure => s.channel_failure(id),
            Answer::Refused(line) => {
                s.channel_success(id)?;
                if let Some(line) = line {
                    s.extended_data(id, 1, line.into_bytes())?;
                    s.exit_status_request(id, 1)?;
                    s.eof(id)?;
                    s.close(id)?;
                }
                Ok(())
            }
        }
    }

    async fn data(&self, id: ChannelId, ext: Option<u32>, data: &[u8]) {
        let data = Bytes::copy_from_slice(data);
        let _ = self
            .ask(|queued| Event::Data {
                id,
                ext,
                data,
                queued,
            })
            .await;
    }
}

impl server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // The key decides nothing before it is signed (see `login`).
        Ok(self.offered(user).await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .login(user, Credential::Key(key.public_key.clone()))
            .await)
    }

    /// russh has checked the certificate's own signature, its validity
    /// and the possession of its key; whose CA signed it, its type,
    /// principal and options are checked by the connection's task.
    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .login(user, Credential::Certificate(Box::new(certificate.clone())))
            .await)
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let handle = session.handle();
        self.send(Event::Authenticated { handle }).await;
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send(Event::OpenSession { channel, reply }).await;
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
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let to = Direct {
            host: host.to_string(),
            port,
            origin: origin.to_string(),
            origin_port,
        };
        self.send(Event::OpenDirect { channel, to, reply }).await;
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
        let cmd = Cmd::Pty(term.into(), cols, rows, pw, ph, modes.to_vec());
        self.request(id, s, cmd).await
    }

    async fn env_request(
        &mut self,
        id: ChannelId,
        name: &str,
        value: &str,
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.request(id, s, Cmd::Env(name.into(), value.into()))
            .await
    }

    async fn shell_request(&mut self, id: ChannelId, s: &mut Session) -> Result<(), Self::Error> {
        self.request(id, s, Cmd::Shell).await
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        command: &[u8],
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.request(id, s, Cmd::Exec(command.to_vec())).await
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.request(id, s, Cmd::Subsystem(name.into())).await
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
        let cmd = Cmd::Window(cols, rows, pw, ph);
        self.send(Event::Send { id, cmd }).await;
        Ok(())
    }

    async fn signal(
        &mut self,
        id: ChannelId,
        sig: Sig,
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        let cmd = Cmd::Signal(sig);
        self.send(Event::Send { id, cmd }).await;
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
        tracing::debug!("x11 forwarding refused");
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
        Handler::data(self, id, None, data).await;
        Ok(())
    }

    async fn extended_data(
        &mut self,
        id: ChannelId,
        code: u32,
        data: &[u8],
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        Handler::data(self, id, Some(code), data).await;
        Ok(())
    }

    async fn channel_eof(&mut self, id: ChannelId, _s: &mut Session) -> Result<(), Self::Error> {
        self.send(Event::Send { id, cmd: Cmd::Eof }).await;
        Ok(())
    }

    async fn channel_close(&mut self, id: ChannelId, _s: &mut Session) -> Result<(), Self::Error> {
        self.send(Event::Close { id }).await;
        Ok(())
    }
}
