//! Channel opens on a terminating connection (`TARGET@proxy`): no channel
//! after the grant's end, and direct-tcpip only to the destinations the
//! target's `forwarding` list names.
//!
//! Invariant (the end covers every channel): the farewell cancels
//! `Shared::ending` while it holds the `channels` lock and snapshots them
//! under that same lock (`Shared::freeze`). An open whose target side
//! completes inserts its channel under the lock only if the session has not
//! ended (`adopt`). So a channel is either in the farewell's snapshot, and
//! is signalled and closed on the target before the target's connection
//! is, or it never reaches the engineer and is closed on the target at
//! once, before any command can be started on it. Requests on a channel in
//! the snapshot are refused from then on: `Conn::forward` checks and
//! queues under the same lock, so the ones already queued are ahead of
//! the farewell's first signal. A command without a pty is signalled
//! until the target reports its end, and only then closed
//! (`UpChannel::end`: one signal can arrive too early to reach it).

use super::channel::{self, UpChannel};
use super::conn::Shared;
use super::names;
use russh::server::{self, ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The destination of a direct-tcpip open as written in `forwarding`: IPv6
/// literals in brackets.
pub fn destination(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether `forwarding` names `host:port` (host names compare without
/// case, as DNS does). Nothing is resolved: the list names exactly what the
/// target's sshd will be asked to connect to.
pub fn allowed(forwarding: &[String], host: &str, port: u32) -> bool {
    let dest = destination(host, port);
    forwarding.iter().any(|a| a.eq_ignore_ascii_case(&dest))
}

/// Audits a direct-tcpip open on a terminating connection: `ssh.forward`
/// when relayed, `ssh.forward_refused` when the target's list does not
/// name the destination. Written off the connection's path.
pub fn audit_forward(
    grants: &crate::grants::Grants,
    info: Option<&crate::sessions::SessionInfo>,
    target: &str,
    host: &str,
    port: u32,
    allowed: bool,
) {
    let user = info.map(|i| i.user.as_str()).unwrap_or("unknown");
    let session = info.map(|i| i.id.as_str()).unwrap_or("");
    let dest = destination(&names::bounded(host), port);
    let action = if allowed {
        tracing::info!(%user, %target, destination = %dest, "ssh forwarding opened");
        "ssh.forward"
    } else {
        tracing::info!(%user, %target, destination = %dest, "ssh forwarding refused: not in the target's forwarding list");
        "ssh.forward_refused"
    };
    let entry = crate::audit::AuditEntry::new(
        user,
        action,
        target,
        json!({"session": session, "destination": dest}),
    );
    grants.audit_detached(entry);
}

/// Opens the target's side in a task, then accepts the engineer's channel
/// and starts relaying, or rejects it with the target's reason. A channel
/// whose target side opens after the session ended is closed there and
/// refused (see the module doc).
pub fn attach(
    shared: Arc<Shared>,
    server: server::Handle,
    kill: CancellationToken,
    info: Option<Arc<crate::sessions::SessionInfo>>,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
    open: impl std::future::Future<Output = Result<Channel<russh::client::Msg>, russh::Error>>
        + Send
        + 'static,
) {
    tokio::spawn(async move {
        match (open.await, info) {
            (Ok(upc), Some(info)) => {
                if adopt(&shared, channel, upc, server, info, &kill).is_some() {
                    reply.accept().await;
                } else {
                    reply
                        .reject(ChannelOpenFailure::AdministrativelyProhibited)
                        .await;
                }
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

/// Starts relaying and registers the channel, unless the session has ended:
/// then the target's channel is closed (it has run nothing yet) and None.
fn adopt(
    shared: &Shared,
    down: Channel<Msg>,
    up: Channel<russh::client::Msg>,
    server: server::Handle,
    info: Arc<crate::sessions::SessionInfo>,
    kill: &CancellationToken,
) -> Option<Arc<UpChannel>> {
    let id = down.id();
    let mut m = shared.channels.lock().ok()?;
    if shared.ended() {
        drop(m);
        tracing::info!(target = %info.target, "ssh channel opened after the end: closed on the target and refused");
        tokio::spawn(async move {
            let _ = up.close().await;
        });
        return None;
    }
    let c = channel::start(down, up, server, info, kill);
    m.insert(id, c.clone());
    Some(c)
}
