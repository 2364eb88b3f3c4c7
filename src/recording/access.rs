//! Who may list, fetch and watch a recording (SPEC "Recording"): admins,
//! and approvers of the policy that governed the session's grant; never
//! the engineer whose session it is (unless an admin). Takes the caller as
//! plain facts: this floor sits below the control plane.

use super::Meta;
use crate::config::Config;

/// `groups` are the caller's IdP groups (empty for a static token): an
/// approver may be one only through a group the IdP defines.
pub fn may_view(cfg: &Config, user: &str, groups: &[String], admin: bool, meta: &Meta) -> bool {
    let approver = cfg
        .policy(&meta.policy)
        .is_some_and(|p| cfg.is_member_with(user, groups, &p.approvers));
    admin || (user != meta.user && approver)
}

/// A recording's row in `GET /v1/recordings`.
pub fn row(m: &Meta) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "user": m.user,
        "target": m.target,
        "kind": m.kind.as_str(),
        "grant_id": m.grant,
        "policy": m.policy,
        "started_at": crate::clock::rfc3339(m.started_at_ms),
        "ended_at": m.ended_at_ms.map(crate::clock::rfc3339),
        "bytes": m.bytes,
        "sha256": m.sha256,
        "instance": m.instance,
    })
}
