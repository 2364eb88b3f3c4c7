//! JSON shapes of the API's objects. Times are RFC 3339 UTC.

use crate::clock::{now_ms, rfc3339};
use crate::grants::{GrantRecord, GrantState, RequestRecord};
use serde_json::{json, Value};

fn opt_time(ms: Option<i64>) -> Value {
    ms.map(|m| Value::String(rfc3339(m))).unwrap_or(Value::Null)
}

pub fn request(r: &RequestRecord, grant: Option<&GrantRecord>) -> Value {
    let d = std::time::Duration::from_millis(r.duration_ms.max(0) as u64);
    let mut v = json!({
        "id": r.id,
        "requester": r.requester,
        "target": r.target,
        "policy": r.policy,
        "reason": r.reason,
        "duration": humantime::format_duration(d).to_string(),
        "duration_seconds": r.duration_ms / 1000,
        "state": r.state.as_str(),
        "created_at": rfc3339(r.created_at_ms),
        "expires_at": rfc3339(r.expires_at_ms),
        "approvals_required": r.approvals_required,
        "approvals": r.approvals.iter().map(|a| json!({"approver": a.approver, "comment": a.comment, "at": rfc3339(a.at_ms)})).collect::<Vec<_>>(),
        "decided_at": opt_time(r.decided_at_ms),
        "decided_by": r.decided_by,
        "decision_reason": r.decision_reason,
        "grant_id": r.grant_id,
        "kind": r.kind.as_str(),
        "extends_grant": r.extends_grant,
        "starts_at": opt_time(r.starts_at_ms),
    });
    if let Some(g) = grant {
        v["grant"] = self::grant(g);
    }
    v
}

pub fn grant(g: &GrantRecord) -> Value {
    let remaining = if matches!(g.state, GrantState::Active | GrantState::Scheduled) {
        ((g.expires_at_ms - now_ms()).max(0) + 999) / 1000
    } else {
        0
    };
    json!({
        "id": g.id,
        "request_id": g.request_id,
        "user": g.user,
        "target": g.target,
        "policy": g.policy,
        "state": g.state.as_str(),
        "granted_at": rfc3339(g.granted_at_ms),
        "expires_at": rfc3339(g.expires_at_ms),
        "remaining_seconds": remaining,
        "ended_at": opt_time(g.ended_at_ms),
        "end_reason": g.end_reason,
        "ended_by": g.ended_by,
        "end_comment": g.end_comment,
        "starts_at": opt_time(g.starts_at_ms),
        "break_glass": g.review.is_some(),
        "review": g.review,
        "reviewed_by": g.reviewed_by,
        "review_comment": g.review_comment,
        "reviewed_at": opt_time(g.reviewed_at_ms),
    })
}
