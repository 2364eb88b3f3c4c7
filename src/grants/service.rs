//! The control plane's handle and what its operations share. Each operation
//! (requests.rs, ending.rs, schedule.rs) checks permissions against the
//! current config snapshot, then makes one store transaction (which checks
//! state), then acts on live sessions and timers.

use super::timers::Timers;
use super::GrantError;
use crate::audit::AuditEntry;
use crate::clock::SharedClock;
use crate::cluster::message::Op;
use crate::cluster::{Cluster, Confirmed, Expect};
use crate::config::SharedConfig;
use crate::metrics::Metrics;
use crate::sessions::SessionTable;
use crate::store::*;
use std::sync::{Arc, OnceLock, Weak};

/// The control plane's handle: a cheap `Arc` whose verbs (admission and
/// opening a session, requests, approvals, revokes, terminations, locks, and
/// the queries that apply visibility) are its whole surface. Its state is
/// private: front ends and the admin API never reach into the store, the
/// session table or the metrics.
pub struct Grants {
    pub(super) store: Store,
    pub(super) config: SharedConfig,
    pub(super) sessions: SessionTable,
    pub(super) metrics: Arc<Metrics>,
    /// The session table's clock: grant timers and every "now" here.
    pub(super) clock: SharedClock,
    pub(super) timers: Timers,
    /// Set when several instances share a PostgreSQL store.
    pub(super) cluster: OnceLock<Arc<Cluster>>,
    /// For timers started from `&self` paths (admission on a peer's grant).
    pub(super) me: Weak<Grants>,
    /// Session recording, made on first use from the handles above.
    pub(super) recordings: OnceLock<Arc<crate::recording::Recordings>>,
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

pub(super) fn audit(
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
            clock: sessions.clock().clone(),
            sessions,
            metrics,
            timers: Timers::default(),
            cluster: OnceLock::new(),
            me: me.clone(),
            recordings: OnceLock::new(),
        })
    }

    /// The recording service (SPEC "Recording"): front ends open a
    /// session's recording through it, the admin API lists and reads them.
    pub fn recordings(&self) -> &Arc<crate::recording::Recordings> {
        self.recordings.get_or_init(|| {
            crate::recording::Recordings::new(
                self.config.clone(),
                self.metrics.clone(),
                self.store.clone(),
                self.sessions.clone(),
            )
        })
    }

    /// Joins several instances over a shared store (once, at start).
    pub fn join_cluster(&self, c: Arc<Cluster>) {
        let _ = self.cluster.set(c);
    }

    /// The store, for wiring at start and for tests; front ends and the
    /// admin API use the verbs instead.
    #[doc(hidden)]
    pub fn store_handle(&self) -> &Store {
        &self.store
    }

    /// The shared config (a reload replaces what it holds), for wiring and
    /// tests; front ends read [`Grants::config_now`].
    #[doc(hidden)]
    pub fn config_handle(&self) -> &SharedConfig {
        &self.config
    }

    /// The session table, for wiring and tests.
    #[doc(hidden)]
    pub fn session_table(&self) -> &SessionTable {
        &self.sessions
    }

    /// The metrics, for wiring and tests.
    #[doc(hidden)]
    pub fn metrics_handle(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Asks the peers to apply `op` and waits for their counts; a single
    /// instance has nothing to ask.
    pub(super) async fn tell_peers(&self, op: Op, expect: Expect) -> Confirmed {
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

    pub(super) async fn ensure_not_locked(&self, user: &str, what: &str) -> Result<(), GrantError> {
        if let Some(l) = self.store.get_lock(user).await? {
            return Err(GrantError::Forbidden(format!(
                "user {user} is locked ({}); {what} is refused until an admin unlocks them",
                l.reason
            )));
        }
        Ok(())
    }

    pub async fn get_grant(&self, id: &str) -> Result<GrantRecord, GrantError> {
        self.store
            .get_grant(id)
            .await?
            .ok_or_else(|| GrantError::NotFound(format!("grant {id}")))
    }

    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }
}
