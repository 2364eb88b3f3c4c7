//! What reaches a connection's task (`conn`): the russh handler's callbacks,
//! each turned into one event, and the reports of the tasks the connection
//! spawned (a target channel opened, a jump channel registered or done).
//!
//! Invariants:
//! - Events from the handler arrive in the order russh called it, and the
//!   handler awaits the reply of an event that has one before it returns:
//!   so a reply is also the point from which the next callback may run
//!   (a request is queued for the target, or refused, before the next
//!   one is looked at; bytes are queued before the EOF that follows them).
//! - A reply sender dropped unanswered means "refused" (`false`, failure):
//!   a connection task that is gone fails closed.

use super::channel::UpChannel;
use super::cmd::Cmd;
use bytes::Bytes;
use russh::keys::{Certificate, PublicKey};
use russh::server::{self, ChannelOpenHandle, Msg};
use russh::{client, Channel, ChannelId};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Capacity of a connection's event queue. The handler waits when it is
/// full, which holds the engineer's connection back like any other
/// backpressure; the connection's own tasks send a few events each.
pub const EVENTS: usize = 64;

/// Where a direct-tcpip channel asks to go, and where it says it comes
/// from, as the engineer's client sent them (unchecked).
#[derive(Debug)]
pub struct Direct {
    pub host: String,
    pub port: u32,
    pub origin: String,
    pub origin_port: u32,
}

/// What an engineer proved to hold: a key listed in `users.ssh_keys`, or
/// a certificate (its key's possession proven by russh, its CA, validity
/// and principal not yet checked).
pub enum Credential {
    Key(PublicKey),
    Certificate(Box<Certificate>),
}

pub enum Event {
    /// A key offered unsigned for `user` (the target's name, or a jump
    /// login): `reply` says whether it may go on to a signed attempt (the
    /// key itself decides nothing yet, see `login`).
    KeyOffered {
        user: String,
        reply: oneshot::Sender<bool>,
    },
    /// A verified key or certificate for `user`: identify, admit, connect
    /// to the target. `reply` says whether the login is accepted (a refused
    /// engineer is accepted too, to read why on a channel).
    Login {
        user: String,
        key: Credential,
        reply: oneshot::Sender<bool>,
    },
    /// Authentication finished: from here the session is watched.
    Authenticated { handle: server::Handle },
    /// A session channel opened by the engineer; answered through `reply`.
    OpenSession {
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
    },
    /// A direct-tcpip channel (`ssh -L`, `ssh -J`).
    OpenDirect {
        channel: Channel<Msg>,
        to: Direct,
        reply: ChannelOpenHandle,
    },
    /// A want-reply channel request (pty, env, shell, exec, subsystem).
    Request {
        id: ChannelId,
        cmd: Cmd,
        reply: oneshot::Sender<Answer>,
    },
    /// The engineer's bytes; `queued` once they are queued for the target
    /// (past the channel's budget this waits: the backpressure).
    Data {
        id: ChannelId,
        ext: Option<u32>,
        data: Bytes,
        queued: oneshot::Sender<()>,
    },
    /// A request without a reply (window change, signal) or an EOF.
    Send { id: ChannelId, cmd: Cmd },
    /// The engineer closed a channel.
    Close { id: ChannelId },
    /// The target's side of a channel opened (or failed): accept or refuse
    /// the engineer's `channel`.
    Opened {
        channel: Channel<Msg>,
        result: Result<Channel<client::Msg>, russh::Error>,
        reply: ChannelOpenHandle,
    },
    /// A jump channel is admitted and bridged: `ok` says whether it may
    /// be relayed (false once the connection is ending).
    JumpRegister {
        id: ChannelId,
        channel: Arc<UpChannel>,
        ok: oneshot::Sender<bool>,
    },
    /// A jump channel's task ends: its channel (if it was registered) is
    /// forgotten and closed; with `text`, the whole connection is hung up
    /// with it when no other jump channel is open. `done` once that is over.
    JumpDone {
        id: Option<ChannelId>,
        text: Option<String>,
        done: oneshot::Sender<()>,
    },
}

/// The answer to a want-reply request.
pub enum Answer {
    Success,
    Failure,
    /// A channel of a refused engineer: accepted, and for a shell, command
    /// or subsystem, `Some(line)` is written to stderr, exit status 1, EOF
    /// and close.
    Refused(Option<String>),
}
