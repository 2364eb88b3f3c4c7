//! The one place where state changes become notifications: every audit
//! append goes through `Store::append`, which maps the audit action to
//! notification events and queues them in the same transaction. A change
//! and its notification therefore commit together or not at all, and no
//! code path that changes state can forget to notify.
//!
//! Subjects are re-read inside the transaction (it sees its own writes),
//! so bodies carry the committed state, e.g. a grant's end reason; the
//! reads happen only when some receiver wants the event.

use super::event::{self, Event};
use super::{audit_log, grants, request_rows, Store, StoreError};
use crate::audit::{AuditEntry, AuditRecord};
use sqlx::AnyConnection;
use std::sync::Arc;

impl Store {
    /// Appends to the audit chain and queues the notifications the event
    /// maps to, inside the caller's transaction.
    pub(super) async fn append(
        &self,
        conn: &mut AnyConnection,
        entry: &AuditEntry,
        at_ms: i64,
    ) -> Result<AuditRecord, StoreError> {
        let rec = audit_log::append(conn, entry, at_ms).await?;
        if rec.seq % crate::audit_anchor::CHECKPOINT_EVERY == 0 {
            if let Some(anchor) = self.anchor.get() {
                if let Some(c) = audit_log::checkpoint(conn, anchor, (rec.seq, &rec.hash)).await? {
                    self.witness(conn, &c).await?;
                }
            }
        }
        if let Some(routing) = self.routing() {
            queue_for(conn, routing, entry, &rec).await?;
        }
        Ok(rec)
    }
}

async fn queue_for(
    conn: &mut AnyConnection,
    routing: &Arc<dyn super::Routing>,
    entry: &AuditEntry,
    rec: &AuditRecord,
) -> Result<(), StoreError> {
    let wanted = |name: &str| routing.receivers(name);
    let at = rec.at_ms;
    let mut out: Vec<(Event, Vec<String>)> = Vec::new();
    match entry.action {
        "request.created" => {
            let to = wanted(event::REQUEST_CREATED);
            if !to.is_empty() {
                if let Some(r) = request_rows::load(conn, &entry.subject).await? {
                    out.push((event::request_created(&r, at), to));
                }
            }
        }
        // The request became a grant: the last needed approval, or an
        // auto-approving policy. Single approvals short of the quorum are
        // `request.approved` audit events but not notifications.
        "grant.created" => {
            let to = wanted(event::REQUEST_APPROVED);
            if !to.is_empty() {
                if let Some(g) = grants::load(conn, &entry.subject).await? {
                    if let Some(r) = request_rows::load(conn, &g.request_id).await? {
                        out.push((event::request_approved(&r, &g, &entry.actor, at), to));
                    }
                }
            }
        }
        "grant.extended" => {
            let to = wanted(event::GRANT_EXTENDED);
            if !to.is_empty() {
                if let Some(g) = grants::load(conn, &entry.subject).await? {
                    out.push((
                        event::grant_extended(&g, &entry.actor, &entry.detail, at),
                        to,
                    ));
                }
            }
        }
        "grant.break_glass" => {
            let to = wanted(event::GRANT_BREAK_GLASS);
            if !to.is_empty() {
                if let Some(g) = grants::load(conn, &entry.subject).await? {
                    let reason = entry.detail["reason"].as_str().unwrap_or_default();
                    out.push((event::grant_break_glass(&g, reason, at), to));
                }
            }
        }
        "grant.reviewed" => {
            let to = wanted(event::GRANT_REVIEWED);
            if !to.is_empty() {
                if let Some(g) = grants::load(conn, &entry.subject).await? {
                    out.push((event::grant_reviewed(&g, at), to));
                }
            }
        }
        "request.denied" => {
            let to = wanted(event::REQUEST_DENIED);
            if !to.is_empty() {
                if let Some(r) = request_rows::load(conn, &entry.subject).await? {
                    out.push((event::request_denied(&r, &entry.actor, at), to));
                }
            }
        }
        "grant.revoked" | "grant.expired" => {
            let to = wanted(event::GRANT_ENDED);
            if !to.is_empty() {
                if let Some(e) = grant_ended(conn, &entry.subject, at).await? {
                    out.push((e, to));
                }
            }
        }
        // A lock revokes the user's grants without a per-grant audit event;
        // each of them still gets its grant.ended.
        "user.locked" => {
            let to = wanted(event::USER_LOCKED);
            if !to.is_empty() {
                out.push((
                    event::user_locked(&entry.subject, &entry.actor, &entry.detail, at),
                    to,
                ));
            }
            let to = wanted(event::GRANT_ENDED);
            if !to.is_empty() {
                let revoked = entry.detail["grants_revoked"].as_array();
                for id in revoked.into_iter().flatten().filter_map(|v| v.as_str()) {
                    if let Some(e) = grant_ended(conn, id, at).await? {
                        out.push((e, to.clone()));
                    }
                }
            }
        }
        "session.ended" => {
            let to = wanted(event::SESSION_ENDED);
            if !to.is_empty() {
                out.push((
                    event::session_ended(&entry.subject, &entry.actor, &entry.detail, at),
                    to,
                ));
            }
        }
        _ => {}
    }
    if out.is_empty() {
        return Ok(());
    }
    let instance = routing.instance();
    for (mut e, to) in out {
        e.fields
            .insert("audit_seq".into(), serde_json::json!(rec.seq));
        super::outbox::insert(conn, &e, &instance, &to).await?;
    }
    Ok(())
}

async fn grant_ended(
    conn: &mut AnyConnection,
    id: &str,
    at: i64,
) -> Result<Option<Event>, StoreError> {
    let Some(g) = grants::load(conn, id).await? else {
        return Ok(None);
    };
    let r = request_rows::load(conn, &g.request_id).await?;
    Ok(Some(event::grant_ended(
        &g,
        r.as_ref().map(|r| r.reason.as_str()),
        at,
    )))
}
