//! Extension in place: the grant's owner asks for more time; the request is
//! decided like any other under the grant's policy, and once approved the
//! grant's end moves out in the store, in this instance's session table
//! (every live session's timers follow, each session is told in-band) and
//! on every peer (as a revoke reaches them, with the re-check as backstop).
//! Sockets are never touched: nothing reconnects.

use super::policy::{check_reason, Caller};
use super::service::*;
use super::GrantError;
use crate::clock::rfc3339;
use crate::cluster::message::Op;
use crate::cluster::Expect;
use crate::ids;
use crate::store::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

impl Grants {
    /// Asks for `duration` more on grant `id` (the policy's default_duration
    /// when None). Returns the extension request and, when the policy needs
    /// no approval, the grant as extended.
    pub async fn extend(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        duration: Option<&str>,
        reason: &str,
    ) -> Result<(RequestRecord, Option<GrantRecord>), GrantError> {
        let cfg = self.config.get();
        let g = self.visible_grant(caller, id).await?;
        if g.user != caller.user {
            return Err(GrantError::Forbidden(
                "only the grant's owner can ask to extend it".into(),
            ));
        }
        let now = self.clock.now_ms();
        if let Some(start) = g.starts_later(now) {
            return Err(GrantError::Conflict(format!(
                "grant {id} starts at {}; extend it once it has started",
                rfc3339(start)
            )));
        }
        if g.state != GrantState::Active || g.expires_at_ms <= now {
            return Err(GrantError::Conflict(format!(
                "grant {id} has ended; an ended grant cannot be extended: request access again"
            )));
        }
        let policy = cfg.policy(&g.policy).ok_or_else(|| {
            GrantError::Conflict(format!(
                "policy {} no longer exists; grant {id} cannot be extended",
                g.policy
            ))
        })?;
        if !crate::reload::still_allowed(&cfg, &g.user, &g.target) {
            return Err(GrantError::Forbidden(format!(
                "the current policy no longer allows {} on {}",
                g.user, g.target
            )));
        }
        let added = match duration {
            None => policy.default_duration,
            Some(s) => crate::duration::parse(s).map_err(|e| GrantError::Invalid(e.to_string()))?,
        };
        if added.is_zero() {
            return Err(GrantError::Invalid(
                "duration must be greater than zero".into(),
            ));
        }
        if policy.require_reason && reason.trim().is_empty() {
            return Err(GrantError::Invalid(format!(
                "policy {} requires a reason",
                policy.name
            )));
        }
        check_reason(policy, reason)?;
        let added_ms = added.as_millis() as i64;
        let total = g.expires_at_ms + added_ms - g.start_ms();
        let max_total_ms = policy.max_total.as_millis() as i64;
        if total > max_total_ms {
            let room = (max_total_ms - (g.expires_at_ms - g.start_ms())).max(0);
            return Err(GrantError::Invalid(format!(
                "extending grant {id} by {} would make it last {}, past policy {}'s max_total of {}; at most {} more can be asked",
                human(added_ms),
                human(total),
                policy.name,
                humantime::format_duration(policy.max_total),
                human(room)
            )));
        }
        self.ensure_not_locked(&caller.user, "extending access")
            .await?;
        let new = NewRequest {
            id: ids::request_id(),
            requester: caller.user.clone(),
            target: g.target.clone(),
            policy: policy.name.clone(),
            reason: reason.to_string(),
            duration_ms: added_ms,
            approvals_required: policy.approvals_required as i64,
            created_at_ms: now,
            expires_at_ms: (now + cfg.request_ttl.as_millis() as i64).min(g.expires_at_ms),
            extends_grant: Some(id.to_string()),
            starts_at_ms: None,
            break_glass: false,
        };
        let mut events = vec![audit(
            &caller.user,
            "request.created",
            &new.id,
            json!({"kind": "extension", "grant": id, "target": g.target, "policy": policy.name, "duration_seconds": added.as_secs(), "reason": reason}),
        )];
        let auto = policy.approvals_required == 0;
        if auto {
            events.push(audit(
                "policy",
                "request.approved",
                &new.id,
                json!({"policy": policy.name, "auto": true}),
            ));
        }
        let (rec, extended) = self
            .store
            .create_extension(&new, auto.then_some(max_total_ms), &events)
            .await?;
        match extended {
            Some((g, before)) => {
                self.metrics.requests.with_label_values(&["approved"]).inc();
                self.extended(&g, before).await;
                Ok((rec, Some(g)))
            }
            None => {
                self.metrics.requests_pending.inc();
                self.schedule_request(&rec.id, rec.expires_at_ms);
                tracing::info!(request = %rec.id, grant = %id, user = %caller.user, "extension requested");
                Ok((rec, None))
            }
        }
    }

    /// After the store moved a grant's end: this instance's sessions and
    /// grant timer follow at once, the peers are told, and the count goes
    /// up. Called once per applied extension.
    pub(super) async fn extended(self: &Arc<Self>, g: &GrantRecord, before: i64) {
        self.metrics.grants_extended.inc();
        let told = self.sessions.extend_grant(&g.id, g.expires_at_ms);
        if !self.timers.contains(&g.id) {
            self.schedule_grant(g);
        }
        let op = Op::ExtendGrant {
            grant: g.id.clone(),
            expires_at_ms: g.expires_at_ms,
        };
        let peers = self.tell_peers(op, Expect::Peers).await;
        tracing::info!(
            grant = %g.id,
            from = %rfc3339(before),
            until = %rfc3339(g.expires_at_ms),
            sessions_told = told + peers.closed,
            "grant extended"
        );
    }

    /// Cancels the pending extensions of a grant that just ended.
    pub(super) async fn cancel_extensions_of(&self, grant_id: &str) {
        match self
            .store
            .cancel_extensions(grant_id, self.clock.now_ms())
            .await
        {
            Ok(ids) => {
                for r in &ids {
                    self.after_request_closed(r, "cancelled");
                }
            }
            Err(e) => {
                tracing::warn!(grant = %grant_id, error = %e, "pending extensions of an ended grant not cancelled")
            }
        }
    }
}

fn human(ms: i64) -> String {
    humantime::format_duration(Duration::from_secs((ms.max(0) / 1000) as u64)).to_string()
}
