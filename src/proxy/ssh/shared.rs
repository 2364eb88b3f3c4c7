//! State the connection task, the grant watcher and the russh handler
//! share for one engineer connection.

use super::channel::UpChannel;
use super::upstream::Upstream;
use crate::sessions::SessionGuard;
use russh::ChannelId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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
    /// Cancelled the instant the session's grant ends (before the
    /// farewell), or when a jump connection is hung up: from then on no
    /// channel is opened and no request reaches the target. See `open`.
    pub ending: CancellationToken,
}

impl Shared {
    /// Whether this connection's session has ended or is ending: its grant
    /// ended (the guard's token, cancelled by the revoke itself, before any
    /// task of ours runs) or the farewell or a hang-up began.
    pub fn ended(&self) -> bool {
        self.ending.is_cancelled()
            || self
                .guard
                .lock()
                .map(|g| g.as_ref().is_some_and(|g| g.token().is_cancelled()))
                .unwrap_or(true)
    }

    /// Ends the session for channel opens and returns the channels to say
    /// farewell to: every channel that will ever be relayed on it.
    pub fn freeze(&self) -> Vec<Arc<UpChannel>> {
        match self.channels.lock() {
            Ok(m) => {
                self.ending.cancel();
                m.values().cloned().collect()
            }
            Err(_) => {
                self.ending.cancel();
                Vec::new()
            }
        }
    }
}
