//! Admission of a new connection under a grant, shared by the front ends:
//! the secret identifies the grant, the grant must be active, unexpired, for
//! this target and this kind, its user unlocked and still allowed by the
//! current config. Every check fails closed, a store error included.

use super::{Grants, Refusal};
use crate::config::{Policy, Target, TargetKind};
use crate::secrets::{digest_eq, sha256};
use crate::store::{GrantRecord, StoreError};

pub struct Admitted {
    pub grant: GrantRecord,
    pub target: Target,
    pub policy: Option<Policy>,
}

impl Admitted {
    /// The session-table entry for a connection admitted under this grant.
    pub fn admission(
        &self,
        kind: TargetKind,
        client_addr: String,
        warnings: Option<crate::sessions::WarningSink>,
    ) -> crate::sessions::Admission {
        let g = &self.grant;
        crate::sessions::Admission {
            grant_id: g.id.clone(),
            user: g.user.clone(),
            target: g.target.clone(),
            kind,
            client_addr,
            granted_at_ms: g.granted_at_ms,
            expires_at_ms: g.expires_at_ms,
            max_sessions: self.policy.as_ref().and_then(|p| p.max_sessions_per_grant),
            warnings,
        }
    }
}

/// The configured target of that name and kind.
pub(super) fn target_of(
    cfg: &crate::config::Config,
    target: &str,
    kind: TargetKind,
) -> Result<Target, Refusal> {
    cfg.targets
        .get(target)
        .filter(|t| t.kind == kind)
        .cloned()
        .ok_or_else(|| Refusal::UnknownTarget(target.to_string()))
}

/// Why a grant is over, in the farewell's words ("grant revoked by carol
/// (INC-42)"). A grant past its end time that no timer has ended yet
/// (nor any end recorded) has expired. The comment is the revoker's text:
/// whoever shows it escapes it.
fn end_of(g: &GrantRecord) -> crate::sessions::EndCause {
    use crate::sessions::{EndCause, EndReason};
    let reason = match g.end_reason.as_deref() {
        Some("revoked") => EndReason::Revoked,
        Some("locked") => EndReason::Locked,
        Some("policy_changed") => EndReason::PolicyChanged,
        _ => EndReason::Expired,
    };
    match (&g.ended_by, reason) {
        (Some(by), EndReason::Revoked | EndReason::Locked | EndReason::PolicyChanged) => {
            EndCause::by(reason, by, g.end_comment.as_deref().unwrap_or(""))
        }
        _ => EndCause::new(reason),
    }
}

/// The refusal of a connection under a scheduled grant before its start.
pub(super) fn not_started(id: &str, start_ms: i64) -> Refusal {
    Refusal::NoGrant(format!(
        "grant {id} is scheduled: access starts at {}; connect then",
        crate::clock::rfc3339(start_ms)
    ))
}

fn store_err(e: StoreError) -> Refusal {
    tracing::warn!(error = %e, "store error during admission; refusing (fail closed)");
    Refusal::Unavailable
}

impl Grants {
    pub async fn admit_by_secret(
        &self,
        target: &str,
        kind: TargetKind,
        secret: &str,
    ) -> Result<Admitted, Refusal> {
        let cfg = self.config.get();
        let t = target_of(&cfg, target, kind)?;
        let presented = sha256(secret.as_bytes());
        let (found, stored) = self
            .store
            .grant_by_secret(&presented)
            .await
            .map_err(store_err)?
            .ok_or(Refusal::BadSecret)?;
        if !digest_eq(&presented, &stored) {
            return Err(Refusal::BadSecret);
        }
        // A retired secret (its grant ended) is recognised for a bounded
        // time only (`store::retired`); after that it reads as unknown.
        let now = self.clock.now_ms();
        if found
            .grant
            .ended_at_ms
            .is_some_and(|end| end < now - crate::store::RETIRED_FOR_MS)
        {
            return Err(Refusal::BadSecret);
        }
        self.check_grant(&cfg, found.grant, found.user_locked, t, target, false)
    }

    /// Admission by user and target (PostgreSQL names both in its startup
    /// packet). Returns the candidate grants' SCRAM verifiers with the
    /// admission, newest grant first; the caller authenticates against them.
    pub async fn admit_by_user(
        &self,
        target: &str,
        kind: TargetKind,
        user: &str,
    ) -> Result<Vec<(Admitted, String)>, Refusal> {
        let cfg = self.config.get();
        let t = target_of(&cfg, target, kind)?;
        if !cfg.knows_user(user) {
            return Err(Refusal::NoGrant(format!(
                "no active grant for {user} on {target}"
            )));
        }
        let now = self.clock.now_ms();
        let grants = self
            .store
            .active_grants_with_scram(user, target)
            .await
            .map_err(store_err)?;
        self.unlocked(user, grants.first().map(|(c, _)| c.user_locked))
            .await?;
        let mut out = Vec::new();
        for (c, scram) in grants
            .into_iter()
            .filter(|(c, _)| c.grant.expires_at_ms > now)
        {
            // A scheduled grant not yet started is refused only after the
            // client has proven its secret (`open_session`): before
            // authentication every refusal reads the same.
            out.push((
                self.check_grant(&cfg, c.grant, c.user_locked, t.clone(), target, true)?,
                scram,
            ));
        }
        if out.is_empty() {
            return Err(Refusal::NoGrant(format!(
                "no active grant with a connect secret for {user} on {target}: request access (`jitgate request {target}`), then `jitgate secret GRANT_ID`"
            )));
        }
        Ok(out)
    }

    /// Admission of an engineer already identified (SSH public key): the
    /// newest active grant of `user` on `target`.
    pub async fn admit_identified(
        &self,
        target: &str,
        kind: TargetKind,
        user: &str,
    ) -> Result<Admitted, Refusal> {
        let cfg = self.config.get();
        let t = target_of(&cfg, target, kind)?;
        let now = self.clock.now_ms();
        let grants = self
            .store
            .active_grants_of(user, target)
            .await
            .map_err(store_err)?;
        self.unlocked(user, grants.first().map(|c| c.user_locked))
            .await?;
        // One in force now; else a scheduled one, refused with its start.
        let found = grants
            .iter()
            .find(|c| c.grant.in_force(now))
            .or_else(|| grants.iter().find(|c| c.grant.starts_later(now).is_some()))
            .cloned()
            .ok_or_else(|| {
                Refusal::NoGrant(format!(
                    "no active grant for {user} on {target}: request access with `jitgate request {target} --reason ...`"
                ))
            })?;
        self.check_grant(&cfg, found.grant, found.user_locked, t, target, false)
    }

    /// Refuses a locked user: `read` is the lock as read with the user's
    /// grants, None when there were none (a lock revokes every grant, so
    /// a locked user has none: the lock is then read on its own, so that
    /// "user locked" stays the answer).
    async fn unlocked(&self, user: &str, read: Option<bool>) -> Result<(), Refusal> {
        match read {
            Some(true) => Err(Refusal::Locked(user.to_string())),
            Some(false) => Ok(()),
            None => self.ensure_unlocked(user).await,
        }
    }

    pub(super) async fn ensure_unlocked(&self, user: &str) -> Result<(), Refusal> {
        match self.store.get_lock(user).await.map_err(store_err)? {
            Some(_) => Err(Refusal::Locked(user.to_string())),
            None => Ok(()),
        }
    }

    /// The checks every admission makes once it has a grant, and whether
    /// its user is locked (read with it).
    /// `defer_start`: a scheduled grant not yet started passes here and is
    /// refused by `open_session` (PostgreSQL authenticates in between).
    fn check_grant(
        &self,
        cfg: &crate::config::Config,
        grant: GrantRecord,
        user_locked: bool,
        t: Target,
        target: &str,
        defer_start: bool,
    ) -> Result<Admitted, Refusal> {
        if grant.target != target {
            return Err(Refusal::NoGrant(format!(
                "this secret belongs to a grant for {}, not {target}",
                grant.target
            )));
        }
        // Before the grant state: a lock revokes the grants, and "user locked"
        // is the answer the engineer needs, not "grant has ended".
        if user_locked {
            return Err(Refusal::Locked(grant.user));
        }
        let now = self.clock.now_ms();
        if let Some(start) = grant.starts_later(now) {
            if !defer_start {
                return Err(not_started(&grant.id, start));
            }
        } else if !grant.in_force(now) {
            return Err(Refusal::NoGrant(format!(
                "grant {} has ended: {}; request access again",
                grant.id,
                end_of(&grant)
            )));
        }
        if !crate::reload::still_allowed(cfg, &grant.user, target) {
            return Err(Refusal::NoGrant(format!(
                "the current policy no longer allows {} on {target}",
                grant.user
            )));
        }
        // The grant's own policy, else (renamed or removed by a reload) the
        // policy that now covers it, so its limits (idle_timeout,
        // max_sessions_per_grant) never silently fall away.
        let policy = cfg
            .policy(&grant.policy)
            .or_else(|| cfg.policy_for(&grant.user, target))
            .cloned();
        self.ensure_timer(&grant);
        Ok(Admitted {
            grant,
            target: t,
            policy,
        })
    }
}
