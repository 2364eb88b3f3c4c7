//! Break-glass review: an approver of the grant's policy, never its owner,
//! records whether taking access without approval was justified.

use super::policy::{is_policy_approver, Caller};
use super::service::*;
use super::GrantError;
use crate::store::GrantRecord;
use serde_json::json;

pub const VERDICTS: &[&str] = &["justified", "unjustified"];

impl Grants {
    pub async fn review(
        &self,
        caller: &Caller,
        id: &str,
        verdict: &str,
        comment: &str,
    ) -> Result<GrantRecord, GrantError> {
        if !VERDICTS.contains(&verdict) {
            return Err(GrantError::Invalid(
                "verdict must be \"justified\" or \"unjustified\"".into(),
            ));
        }
        if comment.len() > super::policy::MAX_REASON_LEN {
            return Err(GrantError::Invalid(format!(
                "comment is longer than {} bytes",
                super::policy::MAX_REASON_LEN
            )));
        }
        let cfg = self.config.get();
        let g = self.visible_grant(caller, id).await?;
        // The owner first: no group membership leads around it.
        if g.user == caller.user {
            return Err(GrantError::Forbidden(
                "you cannot review your own break-glass grant".into(),
            ));
        }
        if !is_policy_approver(&cfg, caller, &g.policy) {
            return Err(GrantError::Forbidden(format!(
                "{} is not an approver under policy {}",
                caller.user, g.policy
            )));
        }
        self.ensure_not_locked(&caller.user, "reviewing").await?;
        let entry = audit(
            &caller.user,
            "grant.reviewed",
            id,
            json!({"verdict": verdict, "comment": comment, "user": g.user, "target": g.target}),
        );
        let g = self
            .store
            .review_grant(
                id,
                verdict,
                &caller.user,
                comment,
                self.clock.now_ms(),
                &entry,
            )
            .await?;
        self.refresh_unreviewed().await;
        tracing::info!(grant = %id, by = %caller.user, verdict, "break-glass grant reviewed");
        Ok(g)
    }

    /// Sets the unreviewed gauge from the store (shared by all instances).
    pub(super) async fn refresh_unreviewed(&self) {
        match self.store.count_unreviewed().await {
            Ok(n) => self.metrics.break_glass_unreviewed.set(n),
            Err(e) => tracing::debug!(error = %e, "cannot count unreviewed break-glass grants"),
        }
    }
}
