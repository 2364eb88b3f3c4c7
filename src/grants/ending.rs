//! Ending access: revoke a grant, terminate a session, lock and unlock a
//! user. Sessions close while the end is being recorded, never after.

use super::policy::{may_oversee, Caller};
use super::service::*;
use super::GrantError;
use crate::cluster::message::{short_comment, Op};
use crate::cluster::{Confirmed, Expect};
use crate::sessions::{EndCause, EndReason};
use crate::store::*;
use serde_json::json;

impl Grants {
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
        // A scheduled grant whose start has passed is in force before its
        // start timer has flipped its state (a late timer, a store outage:
        // grants/start.rs), so it may have sessions: only an ended grant
        // has none to close.
        let closing = async {
            if !matches!(g.state, GrantState::Active | GrantState::Scheduled) {
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
            self.clock.now_ms(),
            &entry,
        );
        let (recorded, (local, peers)) = tokio::join!(recording, closing);
        let n = local + peers.closed;
        match recorded {
            Ok(grant) => {
                self.timers.cancel(id);
                self.timers.cancel(&super::start::start_key(id));
                if g.state == GrantState::Active {
                    self.metrics.grants_active.dec();
                }
                self.cancel_extensions_of(id).await;
                tracing::info!(grant = %id, by = %caller.user, sessions = n, "grant revoked");
                Ok(RevokeResult {
                    grant,
                    sessions_terminated: n,
                    instances_unconfirmed: peers.unconfirmed,
                })
            }
            Err(e) if e.is_unavailable() => {
                tracing::error!(grant = %id, sessions = n, error = %e, "store unavailable during revoke; local sessions closed");
                Err(GrantError::Unavailable(format!(
                    "the store is unavailable: {n} live session(s) of grant {id} on this instance were closed, but the revoke was not recorded; retry"
                )))
            }
            Err(e) => Err(e.into()),
        }
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
                    .request_session_end(session_id, &caller.user, reason, self.clock.now_ms())
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
        if !self.config.get().knows_user(user) {
            return Err(GrantError::NotFound(format!("user {user}")));
        }
        let entry = audit(&caller.user, "user.locked", user, json!({"reason": reason}));
        let cause = EndCause::by(EndReason::Locked, &caller.user, reason);
        // As with revoke, the user's sessions close while the lock is being
        // recorded; the grants' tombstones afterwards catch any session
        // admitted in between.
        let recording =
            self.store
                .lock_user(user, &caller.user, reason, self.clock.now_ms(), &entry);
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
            Err(e) if e.is_unavailable() => {
                return Err(GrantError::Unavailable(format!(
                    "the store is unavailable: {n} live session(s) of {user} on this instance were closed, but the lock was not recorded; retry"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        for g in &out.revoked_grants {
            self.timers.cancel(g);
            self.timers.cancel(&super::start::start_key(g));
            n += self.sessions.end_grant(g, cause.clone()).await;
        }
        // Scheduled grants revoked by the lock were never counted as active.
        if let Ok(active) = self.store.count_active_grants().await {
            self.metrics.grants_active.set(active);
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
        if !self.config.get().knows_user(user) {
            return Err(GrantError::NotFound(format!("user {user}")));
        }
        Ok(self
            .store
            .unlock_user(
                user,
                self.clock.now_ms(),
                &audit(&caller.user, "user.unlocked", user, json!({})),
            )
            .await?)
    }
}
