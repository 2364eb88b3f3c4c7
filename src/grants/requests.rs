//! Requests and approvals: asking for access, approving, denying and
//! cancelling requests, and issuing a grant's connect secrets.

use super::policy::{check_approver, evaluate_request, Caller};
use super::service::*;
use super::GrantError;
use crate::clock::rfc3339;
use crate::ids;
use crate::secrets;
use crate::store::*;
use serde_json::json;
use std::sync::Arc;

/// What a requester asks for (`POST /v1/requests`).
#[derive(Debug, Clone, Default)]
pub struct Ask<'a> {
    pub target: &'a str,
    /// Default: the policy's default_duration.
    pub duration: Option<&'a str>,
    pub reason: &'a str,
    /// RFC 3339; None: from approval.
    pub starts_at: Option<&'a str>,
    /// Take access at once under a `break_glass` policy, reviewed later.
    pub break_glass: bool,
}

impl Grants {
    pub async fn create_request(
        self: &Arc<Self>,
        caller: &Caller,
        target: &str,
        duration: Option<&str>,
        reason: &str,
    ) -> Result<(RequestRecord, Option<GrantRecord>), GrantError> {
        let ask = Ask {
            target,
            duration,
            reason,
            starts_at: None,
            break_glass: false,
        };
        self.request_access(caller, &ask).await
    }

    pub async fn request_access(
        self: &Arc<Self>,
        caller: &Caller,
        ask: &Ask<'_>,
    ) -> Result<(RequestRecord, Option<GrantRecord>), GrantError> {
        let (target, reason) = (ask.target, ask.reason);
        let cfg = self.config.get();
        let now = self.clock.now_ms();
        let evaluated = evaluate_request(&cfg, caller, target, ask.duration, reason)
            .and_then(|(p, d)| Ok((p, d, starts_at(p, ask.starts_at, now)?)));
        let evaluated = evaluated.and_then(|(p, d, s)| {
            if ask.break_glass {
                check_break_glass(p, reason, s)?;
            }
            Ok((p, d, s))
        });
        let (policy, duration, starts_at_ms) = match evaluated {
            Ok(x) => x,
            Err(e) => {
                self.metrics.requests.with_label_values(&["rejected"]).inc();
                return Err(e);
            }
        };
        self.ensure_not_locked(&caller.user, "requesting access")
            .await?;
        let new = NewRequest {
            id: ids::request_id(),
            requester: caller.user.clone(),
            target: target.to_string(),
            policy: policy.name.clone(),
            reason: reason.to_string(),
            duration_ms: duration.as_millis() as i64,
            approvals_required: policy.approvals_required as i64,
            created_at_ms: now,
            expires_at_ms: now + cfg.request_ttl.as_millis() as i64,
            extends_grant: None,
            starts_at_ms,
            break_glass: ask.break_glass,
        };
        let start = starts_at_ms.unwrap_or(now);
        let mut created = json!({"target": target, "policy": policy.name, "duration_seconds": duration.as_secs(), "reason": reason});
        if let Some(s) = starts_at_ms {
            created["starts_at"] = rfc3339(s).into();
        }
        if ask.break_glass {
            created["break_glass"] = true.into();
        }
        let mut events = vec![audit(&caller.user, "request.created", &new.id, created)];
        let auto = if ask.break_glass {
            let gid = ids::grant_id();
            let expires_at = rfc3339(start + new.duration_ms);
            events.push(audit(
                &caller.user,
                "grant.created",
                &gid,
                json!({"request": new.id, "user": caller.user, "target": target, "expires_at": expires_at, "break_glass": true}),
            ));
            events.push(audit(
                &caller.user,
                "grant.break_glass",
                &gid,
                json!({"request": new.id, "target": target, "policy": policy.name, "reason": reason, "expires_at": expires_at}),
            ));
            Some(gid)
        } else if policy.approvals_required == 0 {
            let gid = ids::grant_id();
            events.push(audit(
                "policy",
                "request.approved",
                &new.id,
                json!({"policy": policy.name, "auto": true}),
            ));
            events.push(audit(
                "policy",
                "grant.created",
                &gid,
                json!({"request": new.id, "user": caller.user, "target": target, "starts_at": rfc3339(start), "expires_at": rfc3339(start + new.duration_ms)}),
            ));
            Some(gid)
        } else {
            None
        };
        let timer = self.metrics.request_approve_seconds.start_timer();
        let (rec, grant) = self
            .store
            .create_request(&new, auto.as_deref(), &events)
            .await?;
        timer.observe_duration();
        match &grant {
            Some(g) => {
                self.metrics.requests.with_label_values(&["approved"]).inc();
                self.grant_created(g);
                if ask.break_glass {
                    tracing::warn!(grant = %g.id, user = %caller.user, target, "break-glass access taken; review pending");
                    self.refresh_unreviewed().await;
                }
            }
            None => {
                self.metrics.requests_pending.inc();
                self.schedule_request(&rec.id, rec.expires_at_ms);
            }
        }
        tracing::info!(request = %rec.id, user = %caller.user, target, state = rec.state.as_str(), "access requested");
        Ok((rec, grant))
    }

    /// A grant was just created: an active one counts and gets its end
    /// timer; a scheduled one gets its start timer.
    pub(super) fn grant_created(self: &Arc<Self>, g: &GrantRecord) {
        if g.state == GrantState::Scheduled {
            self.schedule_start(g);
        } else {
            self.metrics.grants_active.inc();
            self.schedule_grant(g);
        }
    }

    pub(super) async fn load_request(&self, id: &str) -> Result<RequestRecord, GrantError> {
        self.store
            .get_request(id)
            .await?
            .ok_or_else(|| GrantError::NotFound(format!("request {id}")))
    }

    pub async fn approve(
        self: &Arc<Self>,
        caller: &Caller,
        id: &str,
        comment: &str,
    ) -> Result<RequestRecord, GrantError> {
        let cfg = self.config.get();
        let req = self.load_request(id).await?;
        check_approver(&cfg, caller, &req.requester, &req.policy, "approve")?;
        check_duration_still_allowed(&cfg, &req)?;
        self.ensure_not_locked(&caller.user, "approving").await?;
        self.ensure_not_locked(&req.requester, "granting access to them")
            .await?;
        let now = self.clock.now_ms();
        let gid = ids::grant_id();
        let entry = audit(
            &caller.user,
            "request.approved",
            id,
            json!({"comment": comment}),
        );
        let max_total_ms = cfg
            .policy(&req.policy)
            .map(|p| p.max_total.as_millis() as i64)
            .unwrap_or(0);
        let timer = self.metrics.request_approve_seconds.start_timer();
        let outcome = self
            .store
            .approve(id, &caller.user, comment, now, &gid, max_total_ms, &entry)
            .await?;
        timer.observe_duration();
        Ok(match outcome {
            ApproveOutcome::Recorded(r) => *r,
            ApproveOutcome::Extended(r, g, before) => {
                self.metrics.requests.with_label_values(&["approved"]).inc();
                self.metrics.requests_pending.dec();
                self.timers.cancel(id);
                self.extended(&g, before).await;
                tracing::info!(request = %id, grant = %g.id, approver = %caller.user, "extension approved");
                *r
            }
            ApproveOutcome::Granted(r, g) => {
                self.metrics.requests.with_label_values(&["approved"]).inc();
                self.metrics.requests_pending.dec();
                self.timers.cancel(id);
                self.grant_created(&g);
                tracing::info!(request = %id, grant = %g.id, approver = %caller.user, "request approved, grant active");
                *r
            }
        })
    }

    pub async fn deny(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<RequestRecord, GrantError> {
        let cfg = self.config.get();
        let req = self.load_request(id).await?;
        check_approver(&cfg, caller, &req.requester, &req.policy, "deny")?;
        self.ensure_not_locked(&caller.user, "denying").await?;
        let entry = audit(
            &caller.user,
            "request.denied",
            id,
            json!({"reason": reason}),
        );
        let r = self
            .store
            .close_request(
                id,
                RequestState::Denied,
                &caller.user,
                reason,
                self.clock.now_ms(),
                &entry,
            )
            .await?;
        self.after_request_closed(id, "denied");
        Ok(r)
    }

    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<RequestRecord, GrantError> {
        let req = self.load_request(id).await?;
        if req.requester != caller.user && !caller.admin {
            return Err(GrantError::Forbidden(
                "only the requester or an admin can cancel a request".into(),
            ));
        }
        let entry = audit(&caller.user, "request.cancelled", id, json!({}));
        let r = self
            .store
            .close_request(
                id,
                RequestState::Cancelled,
                &caller.user,
                "",
                self.clock.now_ms(),
                &entry,
            )
            .await?;
        self.after_request_closed(id, "cancelled");
        Ok(r)
    }

    pub(super) fn after_request_closed(&self, id: &str, outcome: &str) {
        self.metrics.requests.with_label_values(&[outcome]).inc();
        self.metrics.requests_pending.dec();
        self.timers.cancel(id);
    }

    /// Issues a connect secret; only the grant's owner gets it. Earlier
    /// secrets of the grant stay valid (a second terminal must not break
    /// the first one's session) unless `rotate`, which replaces them all.
    pub async fn issue_secret(
        &self,
        caller: &Caller,
        id: &str,
        rotate: bool,
    ) -> Result<IssuedSecret, GrantError> {
        let g = self.get_grant(id).await?;
        if g.user != caller.user {
            return Err(GrantError::Forbidden(
                "only the grant's owner can obtain its connect secret".into(),
            ));
        }
        let live = matches!(g.state, GrantState::Active | GrantState::Scheduled);
        if !live || g.expires_at_ms <= self.clock.now_ms() {
            return Err(GrantError::Conflict(format!(
                "grant {id} is {}; request access again",
                if g.state == GrantState::Active {
                    "expired"
                } else {
                    g.state.as_str()
                }
            )));
        }
        self.ensure_not_locked(&caller.user, "issuing a secret")
            .await?;
        let secret = secrets::new_connect_secret();
        // Every secret a user holds for one target shares one SCRAM salt
        // (see `secrets::scram_verifier_with_salt`): the grant's own, else
        // that of the user's other active grants on the target, so that a
        // second grant's secrets do not shut out the first one's.
        let own = if rotate {
            None
        } else {
            self.store
                .secrets_of(id)
                .await?
                .first()
                .and_then(|s| secrets::scram_salt(&s.scram))
        };
        let salt = match own {
            Some(salt) => Some(salt),
            None => self
                .store
                .active_grants_with_scram(&g.user, &g.target)
                .await?
                .iter()
                .filter(|(other, _)| other.grant.id != id)
                .find_map(|(_, v)| secrets::scram_salt(v)),
        };
        let scram = match salt {
            Some(salt) => secrets::scram_verifier_with_salt(&secret, &salt),
            None => secrets::scram_verifier(&secret),
        };
        let rec = SecretRecord {
            grant_id: id.to_string(),
            sha256: secrets::sha256(secret.as_bytes()),
            scram,
            issued_at_ms: self.clock.now_ms(),
        };
        let held = self
            .store
            .add_secret(
                &rec,
                rotate,
                MAX_SECRETS_PER_GRANT,
                &audit(
                    &caller.user,
                    "grant.secret_issued",
                    id,
                    json!({"rotated": rotate}),
                ),
            )
            .await?;
        Ok(IssuedSecret {
            secret,
            held,
            rotated: rotate,
        })
    }
}

/// Break-glass needs a policy that allows it, a reason (what the reviewer
/// judges), and no start time: it exists for access now.
fn check_break_glass(
    policy: &crate::config::Policy,
    reason: &str,
    starts_at: Option<i64>,
) -> Result<(), GrantError> {
    if !policy.break_glass {
        return Err(GrantError::Forbidden(format!(
            "policy {} does not allow break-glass access; request it normally",
            policy.name
        )));
    }
    if reason.trim().is_empty() {
        return Err(GrantError::Invalid(
            "break-glass access needs a reason: an approver reviews it afterwards".into(),
        ));
    }
    if starts_at.is_some() {
        return Err(GrantError::Invalid(
            "break-glass access starts at once; it takes no starts_at".into(),
        ));
    }
    Ok(())
}

/// A request's `starts_at`: RFC 3339, in the future, at most the policy's
/// `max_schedule_ahead` away. A start already passed is refused rather than
/// taken as "now", so a typo in the date is noticed.
fn starts_at(
    policy: &crate::config::Policy,
    given: Option<&str>,
    now: i64,
) -> Result<Option<i64>, GrantError> {
    let Some(s) = given else { return Ok(None) };
    let at = humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| {
            GrantError::Invalid(format!(
                "starts_at {s:?} is not an RFC 3339 time (e.g. 2026-12-05T09:00:00Z)"
            ))
        })?;
    if at <= now {
        return Err(GrantError::Invalid(format!(
            "starts_at {} has passed; leave it out to start at approval",
            rfc3339(at)
        )));
    }
    let ahead = policy.max_schedule_ahead.as_millis() as i64;
    if at - now > ahead {
        return Err(GrantError::Invalid(format!(
            "starts_at {} is more than policy {}'s max_schedule_ahead of {} away",
            rfc3339(at),
            policy.name,
            humantime::format_duration(policy.max_schedule_ahead)
        )));
    }
    Ok(Some(at))
}

/// A reload may lower a policy's max_duration while a request waits for
/// approval; approving it as asked would grant longer than the policy now
/// allows, so the requester must ask again.
fn check_duration_still_allowed(
    cfg: &crate::config::Config,
    req: &RequestRecord,
) -> Result<(), GrantError> {
    let Some(p) = cfg.policy(&req.policy) else {
        return Ok(());
    };
    let asked = std::time::Duration::from_millis(req.duration_ms.max(0) as u64);
    if asked > p.max_duration {
        return Err(GrantError::Conflict(format!(
            "request {} asks for {} but policy {} now allows at most {}; request access again",
            req.id,
            humantime::format_duration(asked),
            p.name,
            humantime::format_duration(p.max_duration)
        )));
    }
    Ok(())
}
