//! The channel registry of one engineer connection, owned by its task
//! (`conn`): the channels relayed to the target (or bridged by a jump), and
//! the instant from which the connection takes no more.
//!
//! Invariants (the end covers every channel):
//! - Once `end` is called (the grant ended, or the connection is being hung
//!   up), no channel is added and no request is queued for the target; the
//!   channels `end` returns are all the channels the session will ever have
//!   relayed. Since only the connection's task touches the registry, a
//!   request or an open is either handled before the end (and is in the
//!   snapshot, queued ahead of the farewell's first signal) or after it
//!   (and refused): there is no interleaving to lock against.
//! - A channel whose target side finishes opening after the end is closed
//!   on the target at once (it has run nothing) and refused (`conn`).
//! - After the end the engineer's close of a terminating channel is not
//!   passed on: the farewell closes the target's side itself, once what
//!   runs there has ended (`UpChannel::end`); a jump channel's close is
//!   (nothing runs on the target through it).
//! - `open` always holds the number of registered channels; the farewell
//!   waits on it rather than polling.

use super::channel::UpChannel;
use super::cmd::Cmd;
use super::control::SessionInfo;
use super::event::Answer;
use bytes::Bytes;
use russh::ChannelId;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How long the target may take to answer a channel request.
pub const REQUEST_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Channels {
    map: HashMap<ChannelId, Arc<UpChannel>>,
    open: watch::Sender<usize>,
    /// Cancelled by `end`; tasks waiting for a target's answer stop then.
    ending: CancellationToken,
    kill: CancellationToken,
}

impl Channels {
    pub fn new(kill: CancellationToken) -> Channels {
        Channels {
            map: HashMap::new(),
            open: watch::channel(0).0,
            ending: CancellationToken::new(),
            kill,
        }
    }

    /// Whether `end` was called.
    pub fn ended(&self) -> bool {
        self.ending.is_cancelled()
    }

    /// Registers a channel, unless the registry has ended (then false).
    pub fn add(&mut self, id: ChannelId, c: Arc<UpChannel>) -> bool {
        if self.ended() {
            return false;
        }
        self.map.insert(id, c);
        self.open.send_replace(self.map.len());
        true
    }

    pub fn remove(&mut self, id: ChannelId) -> Option<Arc<UpChannel>> {
        let c = self.map.remove(&id);
        self.open.send_replace(self.map.len());
        c
    }

    pub fn ids(&self) -> Vec<ChannelId> {
        self.map.keys().copied().collect()
    }

    /// The number of channels open, as it changes.
    pub fn open(&self) -> watch::Receiver<usize> {
        self.open.subscribe()
    }

    /// Takes no more channels or requests from now on, and returns every
    /// channel relayed (see the module doc).
    pub fn end(&mut self) -> Vec<(ChannelId, Arc<UpChannel>)> {
        self.ending.cancel();
        self.map.iter().map(|(id, c)| (*id, c.clone())).collect()
    }

    /// A want-reply request. `refusal`: the engineer was refused (their
    /// channels only show why); `over`: the session's grant has ended even
    /// if the connection's task has not seen it yet. The answer is sent
    /// once the target gives it; nothing waits here.
    pub fn request(
        &self,
        id: ChannelId,
        cmd: Cmd,
        reply: oneshot::Sender<Answer>,
        refusal: Option<&str>,
        over: bool,
    ) {
        let Some(c) = self.map.get(&id).cloned() else {
            let answer = match refusal {
                None => Answer::Failure,
                Some(why) => Answer::Refused(
                    matches!(cmd, Cmd::Shell | Cmd::Exec(_) | Cmd::Subsystem(_))
                        .then(|| format!("jitgate: {why}\r\n")),
                ),
            };
            let _ = reply.send(answer);
            return;
        };
        // Nothing starts on the target once the grant has ended.
        if over || self.ended() {
            let _ = reply.send(Answer::Failure);
            return;
        }
        let starts = matches!(cmd, Cmd::Exec(_) | Cmd::Shell);
        c.note(&cmd);
        let answer = c.request(cmd);
        let (ending, kill) = (self.ending.clone(), self.kill.clone());
        // A target channel whose writer has ended (the farewell closed it)
        // answers nothing more: waiting out the timeout would hold the
        // engineer's connection, and so the session's close and the revoke
        // call, for ten seconds.
        tokio::spawn(async move {
            let ok = tokio::select! {
                r = tokio::time::timeout(REQUEST_REPLY_TIMEOUT, answer) => {
                    // Refused by the target: nothing runs that the
                    // farewell would have to wait for.
                    if starts && matches!(r, Ok(Ok(false))) {
                        c.command.store(false, Ordering::Release);
                    }
                    matches!(r, Ok(Ok(true)))
                }
                _ = c.upstream_done.cancelled() => false,
                _ = ending.cancelled() => false,
                _ = kill.cancelled() => false,
            };
            let _ = reply.send(if ok { Answer::Success } else { Answer::Failure });
        });
    }

    /// The engineer's bytes for channel `id`; `queued` is answered once
    /// they are queued for the target, at once while the channel's budget
    /// allows, else from a task that waits for it. Once the end is decided
    /// (`over`: the session's grant has ended), they are dropped: a
    /// command that ignores SIGTERM lives on for up to a second while it
    /// is ended, and must not be fed input typed after the end.
    pub fn data(
        &self,
        id: ChannelId,
        ext: Option<u32>,
        data: Bytes,
        queued: oneshot::Sender<()>,
        info: Option<&SessionInfo>,
        over: bool,
    ) {
        let live = !over && !self.ended();
        let Some(c) = self.map.get(&id).cloned().filter(|_| live) else {
            let _ = queued.send(());
            return;
        };
        if ext.is_none() {
            if let Some(info) = info {
                info.touch();
            }
        }
        let cmd = move |b| match ext {
            None => Cmd::Data(b),
            Some(code) => Cmd::Ext(code, b),
        };
        if c.try_send_bytes(&data, cmd) {
            let _ = queued.send(());
            return;
        }
        tokio::spawn(async move {
            c.send_bytes(data, cmd).await;
            let _ = queued.send(());
        });
    }

    /// A message without a reply (window change, signal, EOF).
    pub fn send(&self, id: ChannelId, cmd: Cmd) {
        if let Some(c) = self.map.get(&id) {
            c.send(cmd);
        }
    }

    /// The engineer closed channel `id` (see the module doc).
    pub fn close(&mut self, id: ChannelId, jump: bool) {
        let ended = self.ended();
        if let Some(c) = self.remove(id) {
            if !ended || jump {
                c.send(Cmd::Close);
            }
        }
    }
}
