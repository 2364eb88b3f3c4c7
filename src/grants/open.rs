//! Opening a session: the one call every front end makes to enter the
//! session table once the engineer is authenticated.
//!
//! Admission (`admission.rs`) runs before authentication, and a login can
//! take as long as the client likes between the two (a PostgreSQL client can
//! pause after SCRAM server-first). A reload, revoke or lock in that gap must
//! not be missed, so the checks are made again *after* the session is in the
//! table:
//!
//! - reload: `Reloader` swaps the config, then ends every session in the
//!   table that the new one no longer allows. A session inserted before that
//!   scan is ended by it; one inserted after it reads the new config here.
//! - revoke and lock: `SessionTable::end_grant` leaves a tombstone before it
//!   scans, so the insert itself fails; the store re-read here also covers a
//!   peer instance's revoke whose notification has not arrived yet.
//!
//! Either way no window remains in which a session the current config or
//! store forbids can start relaying.

use super::admission::target_of;
use super::{Admitted, Grants, Refusal};
use crate::config::TargetKind;
use crate::sessions::{EndCause, EndReason, SessionGuard, WarningSink};

impl Grants {
    /// Enters the session table under `admitted`'s grant, then re-checks the
    /// config, the grant and the user's lock. On a refusal the guard is
    /// dropped before relaying starts, so nothing is reported as a session.
    pub async fn open_session(
        &self,
        admitted: &Admitted,
        kind: TargetKind,
        client_addr: String,
        warnings: Option<WarningSink>,
    ) -> Result<SessionGuard, Refusal> {
        let guard = self
            .sessions
            .admit(admitted.admission(kind, client_addr, warnings))?;
        if let Err(r) = self.recheck(admitted, kind).await {
            let reason = match &r {
                Refusal::Locked(_) => EndReason::Locked,
                Refusal::Unavailable => EndReason::Error,
                _ => EndReason::PolicyChanged,
            };
            guard.set_cause(EndCause::new(reason));
            tracing::info!(
                grant = %admitted.grant.id,
                "session refused at entry: {r}"
            );
            return Err(r);
        }
        Ok(guard)
    }

    async fn recheck(&self, admitted: &Admitted, kind: TargetKind) -> Result<(), Refusal> {
        let g = &admitted.grant;
        let cfg = self.config.get();
        target_of(&cfg, &g.target, kind)?;
        if !crate::reload::still_allowed(&cfg, &g.user, &g.target) {
            return Err(Refusal::NoGrant(format!(
                "the current policy no longer allows {} on {}",
                g.user, g.target
            )));
        }
        let now = self.clock.now_ms();
        // One read for the lock and the grant (a lock first: it is the
        // answer the engineer needs).
        match self.store.grant_check(&g.id).await {
            Ok(Some(cur)) if cur.user_locked => Err(Refusal::Locked(g.user.clone())),
            Ok(Some(cur)) if cur.grant.in_force(now) => Ok(()),
            Ok(Some(cur)) if cur.grant.starts_later(now).is_some() => Err(
                super::admission::not_started(&cur.grant.id, cur.grant.start_ms()),
            ),
            Ok(_) => Err(Refusal::NoGrant(format!(
                "grant {} has ended; request access again",
                g.id
            ))),
            Err(e) => {
                tracing::warn!(error = %e, "store error at session entry; refusing (fail closed)");
                Err(Refusal::Unavailable)
            }
        }
    }
}
