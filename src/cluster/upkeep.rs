//! Once per `HEARTBEAT`: heartbeat, re-check the store for ends this
//! instance may have missed (the backstop behind LISTEN/NOTIFY), republish
//! rows if they went stale, and every few ticks reap dead instances and
//! refresh the byte counters of this instance's rows.

use super::{Cluster, DEAD_AFTER, HEARTBEAT};
use crate::audit::AuditEntry;
use crate::sessions::{EndCause, EndReason};
use crate::store::{LiveSessionRow, RowChange};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Ticks between reaping dead instances and between counter refreshes.
const SLOW_EVERY: u64 = 5;
/// The re-check looks this far behind its last run, so a grant ended on a
/// peer whose clock is a little behind is still seen.
const RECHECK_MARGIN_MS: i64 = 30_000;

pub async fn run(c: Arc<Cluster>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    let mut synced: HashMap<String, (u64, u64)> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        heartbeat(&c).await;
        recheck(&c).await;
        if n.is_multiple_of(SLOW_EVERY) {
            reap(&c).await;
            refresh_counters(&c, &mut synced);
        }
    }
}

async fn heartbeat(c: &Cluster) {
    let now = crate::clock::now_ms();
    match c.store.heartbeat(&c.me, &c.incarnation, now).await {
        Ok(true) => {}
        Ok(false) => {
            // Another live process registered under this name since: never
            // take it back, or the two would reap each other every second.
            if let Ok(Some((other, at))) = c.store.instance_heartbeat(&c.me).await {
                if other != c.incarnation && now - at < super::DEAD_AFTER.as_millis() as i64 {
                    tracing::error!(instance = %c.me, "another live instance registered under this instance name; not taking it back: give each instance its own [server] instance name");
                    return;
                }
            }
            // A peer took this instance for dead (a long store outage) and
            // reaped its rows: take the name back and republish.
            tracing::warn!("this instance's registration was reaped; registering again");
            if c.store
                .register_instance(&c.me, &c.incarnation, now)
                .await
                .is_ok()
            {
                republish(c);
            }
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat failed; the store is unreachable"),
    }
    if c.rows.stale.swap(false, Ordering::AcqRel) {
        republish(c);
    }
}

/// Replaces this instance's rows with the live table.
fn republish(c: &Cluster) {
    let live = c.sessions.started_sessions();
    tracing::info!(
        sessions = live.len(),
        "republishing this instance's session rows"
    );
    c.rows.push(RowChange::DeleteInstance(c.me.clone()));
    for s in live {
        c.rows
            .push(RowChange::Insert(super::rows::row_of(&s, &c.me)));
    }
}

/// Ends local sessions whose grant ended, whose user is locked, or whose
/// row carries a terminate request, as recorded in the store.
pub async fn recheck(c: &Cluster) {
    if c.sessions.is_empty() {
        return;
    }
    let since = crate::clock::now_ms() - HEARTBEAT.as_millis() as i64 - RECHECK_MARGIN_MS;
    let local: HashSet<String> = c.sessions.grant_ids();
    match c.store.grants_ended_since(since).await {
        Ok(ended) => {
            for g in ended.into_iter().filter(|g| local.contains(&g.id)) {
                let reason = match g.reason.as_str() {
                    "locked" => EndReason::Locked,
                    "expired" => EndReason::Expired,
                    _ => EndReason::Revoked,
                };
                let n = c
                    .sessions
                    .end_grant(&g.id, cause(reason, &g.by, &g.comment))
                    .await;
                tracing::info!(grant = %g.id, sessions = n, "re-check: closed sessions of a grant that ended in the store");
            }
        }
        Err(e) => tracing::debug!(error = %e, "re-check of ended grants failed"),
    }
    // Extensions whose message this instance missed: its sessions (and
    // the grant timer, which reads the table) follow the store's end.
    match c.store.grants_extended_since(since).await {
        Ok(extended) => {
            for (id, end) in extended.into_iter().filter(|(id, _)| local.contains(id)) {
                if c.sessions.extend_grant(&id, end) > 0 {
                    tracing::info!(grant = %id, "re-check: sessions follow an extension made on a peer");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "re-check of extended grants failed"),
    }
    if let Ok(locked) = c.store.locked_users().await {
        for (user, reason, by) in locked {
            let n = c
                .sessions
                .end_where(|s| s.user == user, cause(EndReason::Locked, &by, &reason))
                .await;
            if n > 0 {
                tracing::info!(
                    user,
                    sessions = n,
                    "re-check: closed sessions of a locked user"
                );
            }
        }
    }
    if let Ok(reqs) = c.store.end_requests(&c.me).await {
        for r in reqs {
            if let Some(n) = c
                .sessions
                .end_session(&r.session, cause(EndReason::Terminated, &r.by, &r.comment))
                .await
            {
                tracing::info!(session = %r.session, sessions = n, "re-check: terminated a session as requested in the store");
            }
        }
    }
}

fn cause(reason: EndReason, by: &str, comment: &str) -> EndCause {
    if by.is_empty() {
        EndCause::new(reason)
    } else {
        EndCause::by(reason, by, comment)
    }
}

/// Takes over the rows of instances that stopped heartbeating: their
/// sockets died with them, so the rows end with reason `error`.
async fn reap(c: &Cluster) {
    let cutoff = crate::clock::now_ms() - DEAD_AFTER.as_millis() as i64;
    let Ok(dead) = c.store.dead_instances(cutoff).await else {
        return;
    };
    for name in dead.into_iter().filter(|d| *d != c.me) {
        let audit_of = |r: &LiveSessionRow| {
            AuditEntry::new(
                &r.user,
                "session.ended",
                &r.id,
                json!({
                    "grant": r.grant_id, "target": r.target, "kind": r.kind,
                    "reason": EndReason::Error.as_str(),
                    "message": format!("instance {} stopped heartbeating; its connections died with it", r.instance),
                    "bytes_in": r.bytes_in, "bytes_out": r.bytes_out, "reaped_by": c.me,
                }),
            )
        };
        match c
            .store
            .reap_instance(&name, cutoff, crate::clock::now_ms(), audit_of)
            .await
        {
            Ok(rows) => {
                tracing::warn!(instance = %name, sessions = rows.len(), "reaped a dead instance's session rows")
            }
            Err(e) => {
                tracing::warn!(instance = %name, error = %e, "could not reap a dead instance")
            }
        }
    }
}

/// Queues the counters of sessions that moved since the last refresh.
fn refresh_counters(c: &Cluster, synced: &mut HashMap<String, (u64, u64)>) {
    let live = c.sessions.started_sessions();
    let ids: HashSet<&str> = live.iter().map(|s| s.id.as_str()).collect();
    synced.retain(|id, _| ids.contains(id.as_str()));
    for s in &live {
        let now = (
            s.bytes_in.load(Ordering::Relaxed),
            s.bytes_out.load(Ordering::Relaxed),
        );
        if synced.get(&s.id) != Some(&now) {
            synced.insert(s.id.clone(), now);
            c.rows.push(RowChange::Counters {
                id: s.id.clone(),
                bytes_in: now.0 as i64,
                bytes_out: now.1 as i64,
                last_activity_ms: s.last_activity_ms.load(Ordering::Relaxed),
            });
        }
    }
}
