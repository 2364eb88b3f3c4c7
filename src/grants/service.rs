//! The control-plane operations. Each checks permissions against the current
//! config snapshot, then makes one store transaction (which checks state),
//! then acts on live sessions and timers.

use super::policy::{check_approver, evaluate_request, may_oversee, Caller};
use super::timers::Timers;
use super::GrantError;
use crate::audit::AuditEntry;
use crate::clock::{deadline, now_ms, rfc3339};
use crate::cluster::message::{short_comment, Op};
use crate::cluster::{Cluster, Confirmed, Expect};
use crate::config::SharedConfig;
use crate::ids;
use crate::metrics::Metrics;
use crate::secrets;
use crate::sessions::{EndCause, EndReason, SessionTable};
use crate::store::*;
use serde_json::json;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub struct Grants {
    pub store: Store,
    pub config: SharedConfig,
    pub sessions: SessionTable,
    pub metrics: Arc<Metrics>,
    timers: Timers,
    /// Set when several instances share a PostgreSQL store.
    pub cluster: OnceLock<Arc<Cluster>>,
    /// For timers started from `&self` paths (admission on a peer's grant).
    me: Weak<Grants>,
}

/// How many connect secrets one grant may hold at once: enough for an
/// engineer's terminals and tools, few enough that a leaked token cannot
/// mint an unbounded number of credentials.
pub const MAX_SECRETS_PER_GRANT: usize = 8;

/// A newly issued connect secret, shown once.
#[derive(Debug)]
pub struct IssuedSecret {
    pub secret: String,
    /// Secrets the grant now holds, this one included.
    pub held: usize,
    /// Whether the earlier secrets were revoked.
    pub rotated: bool,
}

#[derive(Debug)]
pub struct RevokeResult {
    pub grant: GrantRecord,
    pub sessions_terminated: usize,
    /// Peers that did not confirm within the bound (several instances only).
    pub instances_unconfirmed: Vec<String>,
}

#[derive(Debug)]
pub struct LockResult {
    pub grants_revoked: usize,
    pub sessions_terminated: usize,
    pub instances_unconfirmed: Vec<String>,
}

#[derive(Debug)]
pub struct TerminateResult {
    pub sessions_terminated: usize,
    pub instances_unconfirmed: Vec<String>,
}

fn audit(
    actor: &str,
    action: &'static str,
    subject: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry::new(actor, action, subject, detail)
}

impl Grants {
    pub fn new(
        store: Store,
        config: SharedConfig,
        sessions: SessionTable,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Grants {
            store,
            config,
            sessions,
            metrics,
            timers: Timers::default(),
            cluster: OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Asks the peers to apply `op` and waits for their counts; a single
    /// instance has nothing to ask.
    async fn tell_peers(&self, op: Op, expect: Expect) -> Confirmed {
        match self.cluster.get() {
            Some(c) => c.request(op, expect).await,
            None => Confirmed::default(),
        }
    }

    /// A grant approved on a peer has no timer here until its first session
    /// arrives; its warn_before notices need one.
    pub(super) fn ensure_timer(&self, g: &GrantRecord) {
        if self.cluster.get().is_some() && !self.timers.contains(&g.id) {
            if let Some(me) = self.me.upgrade() {
                me.schedule_grant(g);
            }
        }
    }

    async fn ensure_not_locked(&self, user: &str, what: &str) -> Result<(), GrantError> {
        if let Some(l) = self.store.get_lock(user).await? {
            return Err(GrantError::Forbidden(format!(
                "user {user} is locked ({}); {what} is refused until an admin unlocks them",
                l.reason
            )));
        }
        Ok(())
    }

    pub async fn create_request(
        self: &Arc<Self>,
        caller: &Caller,
        target: &str,
        duration: Option<&str>,
        reason: &str,
    ) -> Result<(RequestRecord, Option<GrantRecord>), GrantError> {
        let cfg = self.config.get();
        let evaluated = evaluate_request(&cfg, &caller.user, target, duration, reason);
        let (policy, duration) = match evaluated {
            Ok(x) => x,
            Err(e) => {
                self.metrics.requests.with_label_values(&["rejected"]).inc();
                return Err(e);
            }
        };
        self.ensure_not_locked(&caller.user, "requesting access")
            .await?;
        let now = now_ms();
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
        };
        let mut events = vec![audit(
            &caller.user,
            "request.created",
            &new.id,
            json!({"target": target, "policy": policy.name, "duration_seconds": duration.as_secs(), "reason": reason}),
        )];
        let auto = if policy.approvals_required == 0 {
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
                json!({"request": new.id, "user": caller.user, "target": target, "expires_at": rfc3339(now + new.duration_ms)}),
            ));
            Some((gid, now + new.duration_ms))
        } else {
            None
        };
        let timer = self.metrics.request_approve_seconds.start_timer();
        let (rec, grant) = self
            .store
            .create_request(&new, auto.as_ref().map(|(g, e)| (g.as_str(), *e)), &events)
            .await?;
        timer.observe_duration();
        match &grant {
            Some(g) => {
                self.metrics.requests.with_label_values(&["approved"]).inc();
                self.metrics.grants_active.inc();
                self.schedule_grant(g);
            }
            None => {
                self.metrics.requests_pending.inc();
                self.schedule_request(&rec.id, rec.expires_at_ms);
            }
        }
        tracing::info!(request = %rec.id, user = %caller.user, target, state = rec.state.as_str(), "access requested");
        Ok((rec, grant))
    }

    async fn load_request(&self, id: &str) -> Result<RequestRecord, GrantError> {
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
        let now = now_ms();
        let gid = ids::grant_id();
        let entry = audit(
            &caller.user,
            "request.approved",
            id,
            json!({"comment": comment}),
        );
        let timer = self.metrics.request_approve_seconds.start_timer();
        let outcome = self
            .store
            .approve(id, &caller.user, comment, now, &gid, &entry)
            .await?;
        timer.observe_duration();
        Ok(match outcome {
            ApproveOutcome::Recorded(r) => *r,
            ApproveOutcome::Granted(r, g) => {
                self.metrics.requests.with_label_values(&["approved"]).inc();
                self.metrics.requests_pending.dec();
                self.metrics.grants_active.inc();
                self.timers.cancel(id);
                self.schedule_grant(&g);
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
                now_ms(),
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
                now_ms(),
                &entry,
            )
            .await?;
        self.after_request_closed(id, "cancelled");
        Ok(r)
    }

    fn after_request_closed(&self, id: &str, outcome: &str) {
        self.metrics.requests.with_label_values(&[outcome]).inc();
        self.metrics.requests_pending.dec();
        self.timers.cancel(id);
    }

    pub async fn get_grant(&self, id: &str) -> Result<GrantRecord, GrantError> {
        self.store
            .get_grant(id)
            .await?
            .ok_or_else(|| GrantError::NotFound(format!("grant {id}")))
    }

    /// Revokes a grant. Security first: if the store is down, this instance's
    /// sessions are still closed, and the caller is told the revoke itself
    /// was not recorded.
    pub async fn revoke(
        &self,
        caller: &Caller,
        id: &str,
        reason: &str,
    ) -> Result<RevokeResult, GrantError> {
        let cfg = self.config.get();
        let g = self.get_grant(id).await?;
        if !may_oversee(&cfg, caller, &g.user, &g.policy) {
            return Err(GrantError::Forbidden(format!(
                "{} may not revoke grant {id}",
                caller.user
            )));
        }
        let cause = EndCause::by(EndReason::Revoked, &caller.user, reason);
        let entry = audit(
            &caller.user,
            "grant.revoked",
            id,
            json!({"reason": reason, "user": g.user, "target": g.target}),
        );
        // The sockets close while the revoke is being recorded, not after:
        // closing early is the safe direction if the write then fails, and
        // the termination latency does not include a store commit.
        let closing = async {
            if g.state != GrantState::Active {
                return (0, Confirmed::default());
            }
            let op = Op::EndGrant {
                grant: id.to_string(),
                reason: EndReason::Revoked,
                by: caller.user.clone(),
                comment: short_comment(reason),
            };
            tokio::join!(
                self.sessions.end_grant(id, cause),
                self.tell_peers(op, Expect::Peers)
            )
        };
        let recording = self.store.end_grant(
            id,
            GrantEnd::Revoked,
            &caller.user,
            reason,
            now_ms(),
            &entry,
        );
        let (recorded, (local, peers)) = tokio::join!(recording, closing);
        let n = local + peers.closed;
        match recorded {
            Ok(grant) => {
                self.timers.cancel(id);
                self.metrics.grants_active.dec();
                tracing::info!(grant = %id, by = %caller.user, sessions = n, "grant revoked");
                Ok(RevokeResult {
                    grant,
                    sessions_terminated: n,
                    instances_unconfirmed: peers.unconfirmed,
                })
            }
            Err(StoreError::Unavailable(m)) => {
                tracing::error!(grant = %id, sessions = n, error = %m, "store unavailable during revoke; local sessions closed");
                Err(GrantError::Unavailable(format!(
                    "the store is unavailable: {n} live session(s) of grant {id} on this instance were closed, but the revoke was not recorded; retry"
                )))
            }
            Err(e) => Err(e.into()),
        }
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
        if g.state != GrantState::Active || g.expires_at_ms <= now_ms() {
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
        // The grant's secrets share one SCRAM salt (see
        // `secrets::scram_verifier_with_salt`).
        let salt = if rotate {
            None
        } else {
            self.store
                .secrets_of(id)
                .await?
                .first()
                .and_then(|s| secrets::scram_salt(&s.scram))
        };
        let scram = match salt {
            Some(salt) => secrets::scram_verifier_with_salt(&secret, &salt),
            None => secrets::scram_verifier(&secret),
        };
        let rec = SecretRecord {
            grant_id: id.to_string(),
            sha256: secrets::sha256(secret.as_bytes()),
            scram,
            issued_at_ms: now_ms(),
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

    /// Terminates one session, on this instance or (several instances) on
    /// the peer that owns it.
    pub async fn terminate(
        &self,
        caller: &Caller,
        session_id: &str,
        reason: &str,
    ) -> Result<TerminateResult, GrantError> {
        let cfg = self.config.get();
        let not_found = || GrantError::NotFound(format!("session {session_id}"));
        let (user, grant_id, owner) = match self.sessions.get(session_id) {
            Some(s) => (s.user.clone(), s.grant_id.clone(), None),
            None => {
                let row = match self.cluster.get() {
                    Some(_) => self.store.live_session(session_id).await?,
                    None => None,
                };
                let row = row.ok_or_else(not_found)?;
                (row.user, row.grant_id, Some(row.instance))
            }
        };
        let policy = self
            .store
            .get_grant(&grant_id)
            .await?
            .map(|g| g.policy)
            .unwrap_or_default();
        if !may_oversee(&cfg, caller, &user, &policy) {
            return Err(GrantError::Forbidden(format!(
                "{} may not terminate session {session_id}",
                caller.user
            )));
        }
        let out = match owner {
            None => {
                let cause = EndCause::by(EndReason::Terminated, &caller.user, reason);
                TerminateResult {
                    sessions_terminated: self
                        .sessions
                        .end_session(session_id, cause)
                        .await
                        .unwrap_or(0),
                    instances_unconfirmed: Vec::new(),
                }
            }
            Some(owner) => {
                // The row keeps the request for the owner's re-check in case
                // the notification is lost.
                self.store
                    .request_session_end(session_id, &caller.user, reason, now_ms())
                    .await?;
                let op = Op::EndSession {
                    session: session_id.to_string(),
                    instance: owner.clone(),
                    by: caller.user.clone(),
                    comment: short_comment(reason),
                };
                let c = self.tell_peers(op, Expect::Owner(owner)).await;
                TerminateResult {
                    sessions_terminated: c.closed,
                    instances_unconfirmed: c.unconfirmed,
                }
            }
        };
        let _ = self
            .store
            .audit(&audit(
                &caller.user,
                "session.terminate",
                session_id,
                json!({"reason": reason, "grant": grant_id}),
            ))
            .await;
        Ok(out)
    }

    pub async fn lock(
        &self,
        caller: &Caller,
        user: &str,
        reason: &str,
    ) -> Result<LockResult, GrantError> {
        if !caller.admin {
            return Err(GrantError::Forbidden("only admins can lock users".into()));
        }
        if !self.config.get().users.contains_key(user) {
            return Err(GrantError::NotFound(format!("user {user}")));
        }
        let entry = audit(&caller.user, "user.locked", user, json!({"reason": reason}));
        let cause = EndCause::by(EndReason::Locked, &caller.user, reason);
        // As with revoke, the user's sessions close while the lock is being
        // recorded; the grants' tombstones afterwards catch any session
        // admitted in between.
        let recording = self
            .store
            .lock_user(user, &caller.user, reason, now_ms(), &entry);
        let op = Op::EndUser {
            user: user.to_string(),
            grants: Vec::new(),
            by: caller.user.clone(),
            comment: short_comment(reason),
        };
        let closing = async {
            tokio::join!(
                self.sessions.end_where(|s| s.user == user, cause.clone()),
                self.tell_peers(op, Expect::Peers)
            )
        };
        let (recorded, (local, peers)) = tokio::join!(recording, closing);
        let mut n = local + peers.closed;
        let out = match recorded {
            Ok(o) => o,
            Err(StoreError::Unavailable(_)) => {
                return Err(GrantError::Unavailable(format!(
                    "the store is unavailable: {n} live session(s) of {user} on this instance were closed, but the lock was not recorded; retry"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        for g in &out.revoked_grants {
            self.timers.cancel(g);
            self.metrics.grants_active.dec();
            n += self.sessions.end_grant(g, cause.clone()).await;
        }
        for r in &out.cancelled_requests {
            self.after_request_closed(r, "cancelled");
        }
        tracing::warn!(user, by = %caller.user, grants = out.revoked_grants.len(), sessions = n, "user locked");
        Ok(LockResult {
            grants_revoked: out.revoked_grants.len(),
            sessions_terminated: n,
            instances_unconfirmed: peers.unconfirmed,
        })
    }

    pub async fn unlock(&self, caller: &Caller, user: &str) -> Result<bool, GrantError> {
        if !caller.admin {
            return Err(GrantError::Forbidden("only admins can unlock users".into()));
        }
        if !self.config.get().users.contains_key(user) {
            return Err(GrantError::NotFound(format!("user {user}")));
        }
        Ok(self
            .store
            .unlock_user(
                user,
                now_ms(),
                &audit(&caller.user, "user.unlocked", user, json!({})),
            )
            .await?)
    }

    /// Rebuilds timers at start. Grants whose end passed while the daemon was
    /// down are expired now, recording their own end instant.
    pub async fn restore(self: &Arc<Self>) -> Result<(), GrantError> {
        let now = now_ms();
        let mut active = 0;
        for g in self.store.active_grants().await? {
            if g.expires_at_ms <= now {
                self.expire_grant(&g.id).await;
            } else {
                active += 1;
                self.schedule_grant(&g);
            }
        }
        let pending = self.store.pending_requests().await?;
        for (id, at) in &pending {
            self.schedule_request(id, *at);
        }
        self.metrics.grants_active.set(active);
        self.metrics.requests_pending.set(pending.len() as i64);
        tracing::info!(
            active_grants = active,
            pending_requests = pending.len(),
            "restored timers from the store"
        );
        Ok(())
    }

    fn schedule_grant(self: &Arc<Self>, g: &GrantRecord) {
        let me = self.clone();
        let id = g.id.clone();
        let end = g.expires_at_ms;
        let warn_before = self
            .config
            .get()
            .policy(&g.policy)
            .map(|p| p.warn_before.clone())
            .unwrap_or_default();
        let grant = g.clone();
        let task = tokio::spawn(async move {
            for w in warn_before {
                let at = end - w.as_millis() as i64;
                if at > now_ms() {
                    tokio::time::sleep_until(deadline(at)).await;
                    let msg = format!(
                        "access to {} ends in {}",
                        grant.target,
                        humantime::format_duration(w)
                    );
                    me.sessions.warn_grant(&id, &msg);
                    me.notify_expiring(&grant, w);
                }
            }
            sleep_precisely_until(end).await;
            me.timers.done(&id);
            me.expire_grant(&id).await;
        });
        self.timers.set(&g.id, task.abort_handle());
    }

    /// Queues `grant.expiring` on its own task: the timer that ends the
    /// grant must never wait on the store.
    fn notify_expiring(&self, g: &GrantRecord, warn: Duration) {
        let store = self.store.clone();
        let event = crate::notify::event::grant_expiring(g, warn, now_ms());
        tokio::spawn(async move {
            if let Err(e) = store.enqueue_event(&event).await {
                tracing::warn!(grant = %event.fields["grant_id"], error = %e, "grant.expiring notification not queued");
            }
        });
    }

    fn schedule_request(self: &Arc<Self>, id: &str, at: i64) {
        let me = self.clone();
        let rid = id.to_string();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(deadline(at)).await;
            me.timers.done(&rid);
            me.expire_request(&rid).await;
        });
        self.timers.set(id, task.abort_handle());
    }

    /// Ends a grant at its end instant. Sessions are closed first, from
    /// memory, so expiry never waits on the store; recording it is retried
    /// until the store answers.
    pub async fn expire_grant(&self, id: &str) {
        let n = self
            .sessions
            .end_grant(id, EndCause::new(EndReason::Expired))
            .await;
        let mut backoff = Duration::from_millis(200);
        loop {
            let entry = audit(
                "system",
                "grant.expired",
                id,
                json!({"sessions_terminated": n}),
            );
            match self
                .store
                .end_grant(id, GrantEnd::Expired, "system", "", now_ms(), &entry)
                .await
            {
                Ok(_) => {
                    self.metrics.grants_active.dec();
                    tracing::info!(grant = %id, sessions = n, "grant expired");
                    return;
                }
                Err(StoreError::Unavailable(m)) => {
                    tracing::warn!(grant = %id, error = %m, "cannot record expiry yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                // Already ended (revoked, or expired by another instance).
                Err(_) => return,
            }
        }
    }

    async fn expire_request(&self, id: &str) {
        let entry = audit("system", "request.expired", id, json!({}));
        if self
            .store
            .close_request(
                id,
                RequestState::Expired,
                "system",
                "pending too long",
                now_ms(),
                &entry,
            )
            .await
            .is_ok()
        {
            self.metrics.requests.with_label_values(&["expired"]).inc();
            self.metrics.requests_pending.dec();
        }
    }

    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}

/// Waits until the wall-clock instant `at_ms` with sub-millisecond
/// precision. tokio's timer works in whole-millisecond ticks and fires when
/// a worker next parks, which put grant ends ~2 ms late; the last stretch is
/// slept on a blocking thread, whose sleep is precise to tens of µs.
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

async fn sleep_precisely_until(at_ms: i64) {
    const COARSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(3);
    let target = deadline(at_ms);
    if let Some(early) = target.checked_sub(COARSE_MARGIN) {
        tokio::time::sleep_until(early).await;
    }
    let left = target.saturating_duration_since(tokio::time::Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}
