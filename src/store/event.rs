//! Notification events and their JSON bodies. They live with the store's
//! outbox: a state change queues its events in its own transaction
//! (notify_hook.rs), and src/notify only delivers what is queued.
//!
//! Every body has `id` (receivers deduplicate redeliveries by it), `event`,
//! `at` (RFC 3339 UTC, when the change happened) and `instance`; the other
//! keys describe the subject and are listed per event in
//! docs/operations.md ("Notifications"). The body is built once, when the
//! event is queued, and stored as text: the bytes signed at delivery are
//! the bytes the receiver gets, on every attempt.

use super::{GrantRecord, RequestRecord};
use crate::clock::rfc3339;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub use crate::config::events::*;

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub name: &'static str,
    pub at_ms: i64,
    pub fields: Map<String, Value>,
}

impl Event {
    fn new(name: &'static str, at_ms: i64, fields: Value) -> Event {
        Event {
            id: crate::ids::event_id(),
            name,
            at_ms,
            fields: match fields {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }

    /// The exact text POSTed (and signed). The envelope keys come first and
    /// cannot be overridden by a subject field.
    pub fn body(&self, instance: &str) -> String {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("event".into(), json!(self.name));
        m.insert("at".into(), json!(rfc3339(self.at_ms)));
        m.insert("instance".into(), json!(instance));
        for (k, v) in &self.fields {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m).to_string()
    }
}

fn duration_seconds(ms: i64) -> i64 {
    ms.max(0) / 1000
}

pub fn request_created(r: &RequestRecord, at_ms: i64) -> Event {
    Event::new(
        REQUEST_CREATED,
        at_ms,
        json!({
            "actor": r.requester,
            "request_id": r.id,
            "user": r.requester,
            "target": r.target,
            "policy": r.policy,
            "reason": r.reason,
            "duration_seconds": duration_seconds(r.duration_ms),
            "approvals_required": r.approvals_required,
            "pending_until": rfc3339(r.expires_at_ms),
        }),
    )
}

/// Raised when the request becomes a grant (the last needed approval, or
/// at creation under an auto-approving policy; actor "policy").
pub fn request_approved(r: &RequestRecord, g: &GrantRecord, actor: &str, at_ms: i64) -> Event {
    let comment = r
        .approvals
        .iter()
        .find(|a| a.approver == actor)
        .map(|a| a.comment.clone());
    Event::new(
        REQUEST_APPROVED,
        at_ms,
        json!({
            "actor": actor,
            "request_id": r.id,
            "grant_id": g.id,
            "user": r.requester,
            "target": r.target,
            "policy": r.policy,
            "reason": r.reason,
            "comment": comment,
            "approvers": r.approvals.iter().map(|a| a.approver.clone()).collect::<Vec<_>>(),
            "granted_at": rfc3339(g.granted_at_ms),
            "expires_at": rfc3339(g.expires_at_ms),
            "duration_seconds": duration_seconds(g.expires_at_ms - g.granted_at_ms),
        }),
    )
}

pub fn request_denied(r: &RequestRecord, actor: &str, at_ms: i64) -> Event {
    Event::new(
        REQUEST_DENIED,
        at_ms,
        json!({
            "actor": actor,
            "request_id": r.id,
            "user": r.requester,
            "target": r.target,
            "policy": r.policy,
            "reason": r.reason,
            "decision_reason": r.decision_reason,
        }),
    )
}

/// From the `grant.extended` audit event: its actor approved (or
/// "policy"), its detail carries the request, the old and the new end.
pub fn grant_extended(g: &GrantRecord, actor: &str, detail: &Value, at_ms: i64) -> Event {
    Event::new(
        GRANT_EXTENDED,
        at_ms,
        json!({
            "actor": actor,
            "grant_id": g.id,
            "request_id": detail["request"],
            "user": g.user,
            "target": g.target,
            "policy": g.policy,
            "reason": detail["reason"],
            "previous_expires_at": detail["previous_expires_at"],
            "expires_at": rfc3339(g.expires_at_ms),
            "added_seconds": detail["added_seconds"],
            "duration_seconds": duration_seconds(g.expires_at_ms - g.granted_at_ms),
        }),
    )
}

/// A break-glass grant was taken (raised at once: nobody approved it).
pub fn grant_break_glass(g: &GrantRecord, reason: &str, at_ms: i64) -> Event {
    Event::new(
        GRANT_BREAK_GLASS,
        at_ms,
        json!({
            "actor": g.user,
            "grant_id": g.id,
            "request_id": g.request_id,
            "user": g.user,
            "target": g.target,
            "policy": g.policy,
            "reason": reason,
            "granted_at": rfc3339(g.granted_at_ms),
            "expires_at": rfc3339(g.expires_at_ms),
            "duration_seconds": duration_seconds(g.expires_at_ms - g.granted_at_ms),
            "review": g.review,
        }),
    )
}

/// An approver recorded the verdict on a break-glass grant.
pub fn grant_reviewed(g: &GrantRecord, at_ms: i64) -> Event {
    Event::new(
        GRANT_REVIEWED,
        at_ms,
        json!({
            "actor": g.reviewed_by,
            "grant_id": g.id,
            "user": g.user,
            "target": g.target,
            "policy": g.policy,
            "verdict": g.review,
            "comment": g.review_comment,
            "granted_at": rfc3339(g.granted_at_ms),
        }),
    )
}

/// `reason` is the request's reason, for context in the receiver.
pub fn grant_ended(g: &GrantRecord, reason: Option<&str>, at_ms: i64) -> Event {
    Event::new(
        GRANT_ENDED,
        at_ms,
        json!({
            "actor": g.ended_by,
            "grant_id": g.id,
            "request_id": g.request_id,
            "user": g.user,
            "target": g.target,
            "policy": g.policy,
            "reason": reason,
            "end_reason": g.end_reason,
            "end_comment": g.end_comment,
            "granted_at": rfc3339(g.granted_at_ms),
            "expires_at": rfc3339(g.expires_at_ms),
            "ended_at": g.ended_at_ms.map(rfc3339),
        }),
    )
}

/// Raised at each of the policy's warn_before instants. The id is derived
/// from the grant and the warning, so every instance that holds a timer for
/// the grant queues the same event and the outbox keeps one copy.
pub fn grant_expiring(g: &GrantRecord, warn: Duration, at_ms: i64) -> Event {
    let mut e = Event::new(
        GRANT_EXPIRING,
        at_ms,
        json!({
            "actor": "system",
            "grant_id": g.id,
            "request_id": g.request_id,
            "user": g.user,
            "target": g.target,
            "policy": g.policy,
            "expires_at": rfc3339(g.expires_at_ms),
            "remaining_seconds": ((g.expires_at_ms - at_ms).max(0) + 999) / 1000,
        }),
    );
    // The end is part of the id: after an extension the same warning is
    // due again, for the new end.
    e.id = format!(
        "evt_{}_expiring_{}ms_{}",
        g.id,
        warn.as_millis(),
        g.expires_at_ms
    );
    e
}

/// From the `session.ended` audit event: its actor is the session's user,
/// its subject the session id.
pub fn session_ended(session_id: &str, user: &str, detail: &Value, at_ms: i64) -> Event {
    Event::new(
        SESSION_ENDED,
        at_ms,
        json!({
            "actor": "system",
            "session_id": session_id,
            "grant_id": detail["grant"],
            "user": user,
            "target": detail["target"],
            "kind": detail["kind"],
            "end_reason": detail["reason"],
            "message": detail["message"],
            "bytes_in": detail["bytes_in"],
            "bytes_out": detail["bytes_out"],
        }),
    )
}

/// From the `user.locked` audit event, which lists what the lock revoked.
pub fn user_locked(user: &str, actor: &str, detail: &Value, at_ms: i64) -> Event {
    Event::new(
        USER_LOCKED,
        at_ms,
        json!({
            "actor": actor,
            "user": user,
            "reason": detail["reason"],
            "grants_revoked": detail["grants_revoked"],
            "requests_cancelled": detail["requests_cancelled"],
        }),
    )
}

/// The checkpoint whole: a witness can check the signature itself (the
/// signed bytes are defined in src/audit_anchor.rs, `message`) and later
/// compare the chain with what it was sent.
pub fn audit_checkpoint(c: &crate::audit_anchor::Checkpoint) -> Event {
    Event::new(
        AUDIT_CHECKPOINT,
        c.at_ms,
        json!({
            "actor": "system",
            "seq": c.seq,
            "from_seq": c.from_seq,
            "at_ms": c.at_ms,
            "signed_by": c.instance,
            "head": c.head,
            "hashes": c.hashes,
            "public_key": c.public_key,
            "signature": c.signature,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_wins_over_subject_fields() {
        let mut e = Event::new(USER_LOCKED, 0, json!({"user": "alice"}));
        e.fields.insert("event".into(), json!("forged"));
        let v: Value = serde_json::from_str(&e.body("i1")).unwrap();
        assert_eq!(v["event"], "user.locked");
        assert_eq!(v["at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["instance"], "i1");
        assert_eq!(v["user"], "alice");
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    }

    #[test]
    fn expiring_ids_are_the_same_on_every_instance() {
        let g = GrantRecord {
            id: "gr_x".into(),
            request_id: "req_x".into(),
            user: "alice".into(),
            target: "cache".into(),
            policy: "p".into(),
            state: crate::store::GrantState::Active,
            granted_at_ms: 0,
            expires_at_ms: 600_000,
            ended_at_ms: None,
            end_reason: None,
            ended_by: None,
            end_comment: None,
            starts_at_ms: None,
            review: None,
            reviewed_by: None,
            review_comment: None,
            reviewed_at_ms: None,
        };
        let a = grant_expiring(&g, Duration::from_secs(60), 540_000);
        let b = grant_expiring(&g, Duration::from_secs(60), 540_003);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, grant_expiring(&g, Duration::from_secs(300), 0).id);
        assert_eq!(a.fields["remaining_seconds"], 60);
        // After an extension the same warning is due again, for the new end.
        let extended = GrantRecord {
            expires_at_ms: 900_000,
            ..g.clone()
        };
        assert_ne!(
            a.id,
            grant_expiring(&extended, Duration::from_secs(60), 840_000).id
        );
    }
}
