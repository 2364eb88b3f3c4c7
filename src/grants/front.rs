//! The verbs the front ends (src/proxy) and the admin API (src/admin) use
//! besides admission and the control-plane operations: counting a refusal,
//! auditing off the connection's path, reading the config snapshot, and the
//! admin API's queries, each applying the caller's visibility itself. With
//! these, neither src/proxy nor src/admin reaches into the store, the
//! session table or the metrics.

use super::policy::{is_policy_approver, may_oversee, Caller};
use super::service::Grants;
use super::GrantError;
use crate::audit::{AuditEntry, AuditRecord, Verification};
use crate::audit_anchor::Checkpoint;
use crate::config::Config;
use crate::sessions::SessionSnapshot;
use crate::store::{GrantFilter, GrantRecord, RequestFilter, RequestRecord, RequestState};
use std::sync::Arc;
use std::time::Duration;

/// The most rows a query reads before visibility filtering for a caller
/// who may see other users' rows.
const WIDE_QUERY_ROWS: i64 = 1000;

impl Grants {
    /// The config in force now (a snapshot: a reload does not change it).
    pub fn config_now(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Counts one refused connection of `kind` under the `reason` label.
    pub fn count_rejected(&self, kind: &str, reason: &str) {
        self.rejected_counter(kind, reason).inc();
    }

    /// The counter of refused connections of `kind` for `reason`, for an
    /// accept loop that counts without knowing the control plane.
    pub fn rejected_counter(&self, kind: &str, reason: &str) -> prometheus::IntCounter {
        self.metrics
            .connections_rejected
            .with_label_values(&[kind, reason])
    }

    /// Counts one admin API answer by route pattern and status.
    pub fn count_admin_request(&self, route: &str, status: &str) {
        self.metrics
            .admin_requests
            .with_label_values(&[route, status])
            .inc();
    }

    /// Counts one admin API request without a valid token.
    pub fn count_unauthenticated(&self, reason: &str) {
        self.metrics
            .admin_unauthenticated
            .with_label_values(&[reason])
            .inc();
    }

    /// Appends an audit event on its own task: a connection's path must not
    /// wait on the store (failed logins, forwarding opens).
    pub fn audit_detached(&self, entry: AuditEntry) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.audit(&entry).await {
                tracing::warn!(action = entry.action, error = %e, "audit event not written");
            }
        });
    }

    /// Appends an audit event and waits for it: for an act that must not
    /// happen unrecorded (a certificate issued), the caller acts only after
    /// this succeeded.
    pub async fn audit_now(&self, entry: AuditEntry) -> Result<(), GrantError> {
        self.store.audit(&entry).await?;
        Ok(())
    }

    /// Whether a presented connect secret is some grant's in force (an
    /// authenticated client may be told a target is unknown; a retired
    /// secret, of an ended grant, does not count). Store errors count as
    /// "no".
    pub async fn holds_valid_secret(&self, secret: &str) -> bool {
        let presented = crate::secrets::sha256(secret.as_bytes());
        match self.store.grant_by_secret(&presented).await {
            Ok(Some((found, stored))) => {
                crate::secrets::digest_eq(&presented, &stored)
                    && found.grant.in_force(self.clock.now_ms())
            }
            _ => false,
        }
    }

    /// Whether the store answers within `within` (readiness).
    pub async fn store_ready(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.store.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub async fn is_locked(&self, user: &str) -> Result<bool, GrantError> {
        Ok(self.store.get_lock(user).await?.is_some())
    }

    /// Whether the IdP sign-in `id` is live now (not logged out, not past
    /// its end): an SSH certificate it obtained lives only as long.
    pub async fn signin_live(&self, id: &str) -> Result<bool, GrantError> {
        let now = self.clock.now_ms();
        Ok(self.store.signin_live_by_id(id, now).await?)
    }

    /// The grants `caller` may see, newest first: admins and approvers
    /// across users (those they oversee), others only their own.
    pub async fn visible_grants(
        &self,
        caller: &Caller,
        mut filter: GrantFilter,
    ) -> Result<Vec<GrantRecord>, GrantError> {
        let cfg = self.config.get();
        let limit = filter.limit;
        if sees_all(&cfg, caller) {
            filter.limit = WIDE_QUERY_ROWS;
        } else {
            filter.user = Some(caller.user.clone());
        }
        let rows = self.store.list_grants(&filter).await?;
        Ok(rows
            .into_iter()
            .filter(|g| may_oversee(&cfg, caller, &g.user, &g.policy))
            .take(limit.max(0) as usize)
            .collect())
    }

    /// One grant, if `caller` may see it; else "not found", as for a
    /// missing id (existence is not disclosed).
    pub async fn visible_grant(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<GrantRecord, GrantError> {
        let cfg = self.config.get();
        match self.store.get_grant(id).await? {
            Some(g) if may_oversee(&cfg, caller, &g.user, &g.policy) => Ok(g),
            _ => Err(GrantError::NotFound(format!("grant {id}"))),
        }
    }

    /// The requests `caller` may see, each with whether `caller` may decide
    /// it (the console shows the buttons only then).
    pub async fn visible_requests(
        &self,
        caller: &Caller,
        mut filter: RequestFilter,
    ) -> Result<Vec<(RequestRecord, bool)>, GrantError> {
        let cfg = self.config.get();
        let limit = filter.limit;
        if sees_all(&cfg, caller) {
            filter.limit = WIDE_QUERY_ROWS;
            filter.requester = None;
        } else {
            filter.requester = Some(caller.user.clone());
        }
        let rows = self.store.list_requests(&filter).await?;
        Ok(rows
            .into_iter()
            .filter(|r| may_oversee(&cfg, caller, &r.requester, &r.policy))
            .take(limit.max(0) as usize)
            .map(|r| {
                let can_decide = r.state == RequestState::Pending
                    && r.requester != caller.user
                    && is_policy_approver(&cfg, caller, &r.policy);
                (r, can_decide)
            })
            .collect())
    }

    /// One request, if `caller` may see it, with its grant if it has one.
    pub async fn visible_request(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(RequestRecord, Option<GrantRecord>), GrantError> {
        let cfg = self.config.get();
        let r = match self.store.get_request(id).await? {
            Some(r) if may_oversee(&cfg, caller, &r.requester, &r.policy) => r,
            _ => return Err(GrantError::NotFound(format!("request {id}"))),
        };
        let g = self.grant_of(&r).await?;
        Ok((r, g))
    }

    /// The grant a request led to, if any (for showing a request that the
    /// caller just decided or could already see).
    pub async fn grant_of(&self, r: &RequestRecord) -> Result<Option<GrantRecord>, GrantError> {
        match &r.grant_id {
            Some(g) => Ok(self.store.get_grant(g).await?),
            None => Ok(None),
        }
    }

    /// The live sessions `caller` may see (their own; all for admins; those
    /// under policies they approve), this instance's and, with several
    /// instances, the peers'. `true` with them when the peers' could not be
    /// read and the list is this instance's only.
    pub async fn visible_sessions(
        &self,
        caller: &Caller,
        user: Option<&str>,
        target: Option<&str>,
    ) -> (Vec<SessionSnapshot>, bool) {
        let cfg = self.config.get();
        let mut all = self.sessions.snapshot();
        let mut incomplete = false;
        if let Some(c) = self.cluster.get() {
            match c.remote_snapshots().await {
                Ok(remote) => all.extend(remote),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list peers' sessions");
                    incomplete = true;
                }
            }
        }
        let mut rows = Vec::new();
        for s in all
            .into_iter()
            .filter(|s| user.is_none_or(|u| s.user == u) && target.is_none_or(|t| s.target == t))
        {
            let visible = caller.admin
                || s.user == caller.user
                || match cfg.policy_for(&s.user, &s.target) {
                    Some(p) => is_policy_approver(&cfg, caller, &p.name),
                    // A user only the IdP knows: the config cannot say which
                    // policy covers them, their grant can.
                    None => match self.store.get_grant(&s.grant_id).await {
                        Ok(Some(g)) => is_policy_approver(&cfg, caller, &g.policy),
                        _ => false,
                    },
                };
            if visible {
                rows.push(s);
            }
        }
        (rows, incomplete)
    }

    /// A page of the audit chain, for admins and approvers.
    pub async fn audit_page(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, GrantError> {
        self.may_read_audit(caller)?;
        Ok(self.store.audit_page(after, limit).await?)
    }

    pub async fn audit_verify(&self, caller: &Caller) -> Result<Verification, GrantError> {
        self.may_read_audit(caller)?;
        Ok(self.store.audit_verify().await?)
    }

    pub async fn audit_checkpoints(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Checkpoint>, GrantError> {
        self.may_read_audit(caller)?;
        Ok(self.store.audit_checkpoints(after, limit).await?)
    }

    /// The key audit checkpoints are signed with, if this daemon signs any.
    pub fn audit_public_key(&self, caller: &Caller) -> Result<Option<String>, GrantError> {
        self.may_read_audit(caller)?;
        Ok(self.store.anchor().map(|a| a.public_key().to_string()))
    }

    fn may_read_audit(&self, caller: &Caller) -> Result<(), GrantError> {
        if sees_all(&self.config.get(), caller) {
            Ok(())
        } else {
            Err(GrantError::Forbidden(
                "the audit log is readable by admins and approvers".into(),
            ))
        }
    }
}

/// Admins and approvers see across users; others only their own.
fn sees_all(cfg: &Config, caller: &Caller) -> bool {
    caller.admin || cfg.is_any_approver(&caller.user, &caller.groups)
}
