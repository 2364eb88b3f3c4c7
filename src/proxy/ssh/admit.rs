//! Identifying the engineer and admitting their session: failed-key
//! accounting against the source's limit, `auth.failed` audit events, and
//! admission to the session table with the login to the target.

use super::conn::Conn;
use super::keys;
use super::server::SshFrontEnd;
use super::upstream;
use crate::config::TargetKind;
use crate::grants::Refusal;
use crate::sessions::{EndCause, EndReason};
use russh::keys::PublicKey;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

impl Conn {
    pub(super) fn reject_metric(&self, reason: &str) {
        self.fe.grants.count_rejected("ssh", reason);
    }

    /// An `auth.failed` event about this connection's target.
    pub(super) fn audit_failure(&self, user: &str, why: &str) {
        audit_failure(&self.fe, self.peer, user, &self.target, why);
    }

    /// Counts one failed attempt from this source (once per connection),
    /// audits it, and says whether the source is now blocked.
    pub(super) fn unknown_key(&mut self, pk: &PublicKey) {
        self.reject_metric("auth_failed");
        if std::mem::replace(&mut self.offer_failed, true) {
            return;
        }
        let blocked = self.fe.limiter.failed(&self.limiter_keys());
        self.audit_failure(
            "unknown",
            &format!(
                "unknown key {}{}",
                keys::fingerprint(pk),
                if blocked { "; source blocked" } else { "" }
            ),
        );
    }

    fn limiter_keys(&self) -> Vec<String> {
        vec![format!("ip:{}", self.peer.ip())]
    }

    /// A source over the failure limit is refused without looking further.
    pub(super) fn blocked(&self) -> bool {
        if self.fe.limiter.check(&self.limiter_keys()).is_err() {
            self.reject_metric("auth_failed");
            return true;
        }
        false
    }

    /// Identified engineer: admission, session, target login.
    pub(super) async fn admit(&mut self, user: &str) -> Result<(), (String, &'static str)> {
        let admitted = self
            .fe
            .grants
            .admit_identified(&self.target, TargetKind::Ssh, user)
            .await
            .map_err(|r| (r.to_string(), r.metric_reason()))?;
        let (warn_tx, warn_rx) = tokio::sync::mpsc::channel(8);
        let guard = self
            .fe
            .grants
            .open_session(
                &admitted,
                TargetKind::Ssh,
                self.peer.to_string(),
                Some(warn_tx),
            )
            .await
            .map_err(|e| (e.to_string(), e.metric_reason()))?;
        match upstream::connect(&admitted.target, &self.kill).await {
            Ok(up) => {
                guard.start(Some(
                    json!({"upstream_user": admitted.target.upstream.user}),
                ));
                if let Ok(mut u) = self.shared.upstream.lock() {
                    *u = Some(Arc::new(up));
                }
                if let Ok(mut w) = self.shared.warnings.lock() {
                    *w = Some(warn_rx);
                }
                if let Ok(mut s) = self.shared.guard.lock() {
                    *s = Some(guard);
                }
                if let Ok(mut i) = self.shared.idle_timeout.lock() {
                    *i = admitted.policy.as_ref().and_then(|p| p.idle_timeout);
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target = %self.target, "ssh upstream failed: {e}");
                guard.set_cause(EndCause::new(EndReason::Error));
                let r = Refusal::Unreachable(format!("cannot reach {}: {e}", self.target));
                Err((r.to_string(), r.metric_reason()))
            }
        }
    }
}

/// An `auth.failed` audit event, written off the connection's path.
pub fn audit_failure(fe: &SshFrontEnd, peer: SocketAddr, user: &str, target: &str, why: &str) {
    let entry = crate::audit::AuditEntry::new(
        user,
        "auth.failed",
        target,
        json!({"kind": "ssh", "client": peer.to_string(), "reason": why}),
    );
    fe.grants.audit_detached(entry);
}
