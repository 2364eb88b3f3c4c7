//! The LISTEN side: one dedicated connection per instance. Notifications
//! sent while it is disconnected are lost, so every (re)connect is followed
//! by a re-check of the store (`upkeep::recheck`).

use super::message::{Envelope, Op, CHANNEL};
use super::Cluster;
use crate::sessions::EndCause;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(c: Arc<Cluster>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            l = connect(&c.url) => l,
        };
        let mut listener = match connected {
            Ok(l) => {
                backoff = Duration::from_millis(200);
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN on the store; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Anything sent before this LISTEN took effect is found here.
        super::upkeep::recheck(&c).await;
        loop {
            let n = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match n {
                Ok(Some(n)) => match Envelope::decode(n.payload()) {
                    Some(env) => dispatch(&c, env),
                    None => tracing::warn!("ignoring a malformed control message"),
                },
                Ok(None) => {
                    tracing::warn!("lost the LISTEN connection to the store; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}

/// Handles one message on its own task, so a slow close never delays the
/// next notification.
fn dispatch(c: &Arc<Cluster>, env: Envelope) {
    if env.from == c.me {
        return;
    }
    if let Op::Ack { to, closed } = &env.op {
        if *to == c.me {
            c.acknowledged(&env.req, &env.from, *closed);
        }
        return;
    }
    if let Op::EndSession { instance, .. } = &env.op {
        if *instance != c.me {
            return;
        }
    }
    let c = c.clone();
    tokio::spawn(async move {
        let closed = apply(&c, &env.op).await;
        let ack = Envelope {
            from: c.me.clone(),
            req: env.req,
            op: Op::Ack {
                to: env.from,
                closed,
            },
        };
        if let Err(e) = c.store.notify(CHANNEL, &ack.encode()).await {
            tracing::warn!(error = %e, "could not acknowledge a control message");
        }
    });
}

/// Closes what `op` names on this instance; returns how many closed.
pub async fn apply(c: &Cluster, op: &Op) -> usize {
    if let Op::ExtendGrant {
        grant,
        expires_at_ms,
    } = op
    {
        // The store is the authority: the end applied is the one it holds
        // (never later than the message says), and without an answer
        // nothing moves, so sessions keep their earlier end (fail closed).
        let end = match c.store.get_grant(grant).await {
            Ok(Some(g)) if g.state == crate::store::GrantState::Active => {
                g.expires_at_ms.min(*expires_at_ms)
            }
            Ok(_) => return 0,
            Err(e) => {
                tracing::warn!(grant = %grant, error = %e, "cannot confirm a peer's extension in the store; the re-check will retry");
                return 0;
            }
        };
        let n = c.sessions.extend_grant(grant, end);
        tracing::info!(grant = %grant, sessions = n, "a peer extended a grant; its sessions here follow the new end");
        return n;
    }
    let Some(cause) = op.cause() else { return 0 };
    let n = match op {
        Op::EndGrant { grant, .. } => c.sessions.end_grant(grant, cause).await,
        Op::EndUser { user, grants, .. } => {
            let mut n = c
                .sessions
                .end_where(|s| s.user == *user, cause.clone())
                .await;
            for g in grants {
                n += c.sessions.end_grant(g, cause.clone()).await;
            }
            n
        }
        Op::EndSession { session, .. } => c.sessions.end_session(session, cause).await.unwrap_or(0),
        Op::Ack { .. } | Op::ExtendGrant { .. } => 0,
    };
    if n > 0 {
        tracing::info!(sessions = n, cause = %short(op), "closed sessions at a peer's request");
    }
    n
}

fn short(op: &Op) -> String {
    op.cause()
        .map(|c: EndCause| c.to_string())
        .unwrap_or_default()
}
