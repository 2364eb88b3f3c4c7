//! The concurrent session table (see the module doc of `sessions` for the
//! invariants this file keeps).

use super::{EndCause, EndReason, SessionSnapshot};
use crate::clock::SharedClock;
use crate::config::TargetKind;
use dashmap::DashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Where a front end wants warn_before notices delivered (PostgreSQL notices,
/// SSH stderr lines); TCP sessions have none and warnings are only logged.
pub type WarningSink = mpsc::Sender<String>;

/// Called on session start and end, synchronously; implementations must not
/// block (metrics, and a bounded hand-off to the audit writer).
pub trait SessionObserver: Send + Sync {
    fn started(&self, info: &SessionInfo);
    fn ended(&self, info: &SessionInfo, cause: &EndCause);
}

/// Several observers in order (audit and metrics, then the shared rows).
pub struct Observers(pub Vec<Arc<dyn SessionObserver>>);

impl SessionObserver for Observers {
    fn started(&self, info: &SessionInfo) {
        for o in &self.0 {
            o.started(info);
        }
    }

    fn ended(&self, info: &SessionInfo, cause: &EndCause) {
        for o in &self.0 {
            o.ended(info, cause);
        }
    }
}

struct GrantCell {
    token: CancellationToken,
    cause: OnceLock<EndCause>,
    live: AtomicUsize,
    /// The grant's end instant as this instance knows it. It only moves
    /// out (an extension): every session's expiry timer watches it, so an
    /// extension moves them all without touching their sockets.
    end: watch::Sender<i64>,
}

impl GrantCell {
    fn new(end_ms: i64) -> Arc<Self> {
        Arc::new(GrantCell {
            token: CancellationToken::new(),
            cause: OnceLock::new(),
            live: AtomicUsize::new(0),
            end: watch::Sender::new(end_ms),
        })
    }

    /// Moves the end to `end_ms` if that is later; true if it moved.
    fn raise_end(&self, end_ms: i64) -> bool {
        self.end.send_if_modified(|e| {
            let later = end_ms > *e;
            if later {
                *e = end_ms;
            }
            later
        })
    }
}

pub struct SessionInfo {
    pub id: String,
    pub grant_id: String,
    pub user: String,
    pub target: String,
    pub kind: TargetKind,
    pub client_addr: String,
    pub granted_at_ms: i64,
    pub started_at_ms: i64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub last_activity_ms: AtomicI64,
    /// Upstream identity worth auditing, e.g. {"backend_pid": 4242}.
    pub upstream_detail: OnceLock<serde_json::Value>,
    /// What the front end learned while ending the session, for the
    /// `session.ended` audit event (e.g. {"backend_confirmed_gone": true}).
    pub end_detail: OnceLock<serde_json::Value>,
    /// The sealed recording's digest and size (or why there is none), for
    /// the `session.ended` audit event; set before the guard drops.
    pub recording_detail: OnceLock<serde_json::Value>,
    /// Set once the upstream is connected and relaying begins; only started
    /// sessions are reported to the observer (metrics, audit).
    started: std::sync::atomic::AtomicBool,
    token: CancellationToken,
    cause: OnceLock<EndCause>,
    closed: CancellationToken,
    grant: Arc<GrantCell>,
    warnings: Option<WarningSink>,
    /// The table's clock: activity stamps and the session's own timers.
    pub(super) clock: SharedClock,
}

impl SessionInfo {
    /// The recorded end cause: the session's own, else its grant's.
    pub fn cause(&self) -> Option<EndCause> {
        self.cause.get().or_else(|| self.grant.cause.get()).cloned()
    }

    /// Records why this session ends, unless a cause is already known: its
    /// own, or its grant's (the grant's end came first, and "client closed"
    /// seen while the farewell runs must not replace "revoked").
    pub(super) fn record_cause(&self, cause: EndCause) {
        if self.grant.cause.get().is_none() {
            let _ = self.cause.set(cause);
        }
    }

    /// Whether the session is past its end from our side: a cause is
    /// recorded (a timer fired, or the grant was ended) or its expiry
    /// instant has passed, even if the timer that ends it has not run yet.
    pub fn past_end(&self) -> bool {
        self.cause().is_some() || self.clock.now_ms() >= self.expires_at_ms()
    }

    /// The grant's end as this instance knows it now (an extension moves it).
    pub fn expires_at_ms(&self) -> i64 {
        *self.grant.end.borrow()
    }

    /// Follows the grant's end: `changed()` completes when an extension
    /// moves it.
    pub fn watch_end(&self) -> watch::Receiver<i64> {
        self.grant.end.subscribe()
    }

    pub fn touch(&self) {
        self.last_activity_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
    }
}

pub struct Admission {
    pub grant_id: String,
    pub user: String,
    pub target: String,
    pub kind: TargetKind,
    pub client_addr: String,
    pub granted_at_ms: i64,
    pub expires_at_ms: i64,
    pub max_sessions: Option<u32>,
    pub warnings: Option<WarningSink>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("access ended: {0}")]
    GrantEnded(EndCause),
    #[error("the grant already has its maximum of {0} live sessions")]
    MaxSessions(u32),
}

struct Inner {
    sessions: DashMap<String, Arc<SessionInfo>>,
    grants: DashMap<String, Arc<GrantCell>>,
    instance: String,
    observer: OnceLock<Arc<dyn SessionObserver>>,
    clock: SharedClock,
}

#[derive(Clone)]
pub struct SessionTable {
    inner: Arc<Inner>,
}

/// Owned by the task that holds a session's sockets. Dropping it (after the
/// sockets are closed) removes the session and signals `closed`.
pub struct SessionGuard {
    info: Arc<SessionInfo>,
    inner: Arc<Inner>,
}

/// How long an end_* call waits for sessions to confirm they closed. Front
/// ends close within milliseconds; this only bounds a wedged task.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

impl SessionTable {
    pub fn new(instance: &str) -> Self {
        Self::with_clock(instance, crate::clock::system())
    }

    /// A table whose sessions read the time from `clock` (tests run it on
    /// tokio's paused clock).
    pub fn with_clock(instance: &str, clock: SharedClock) -> Self {
        SessionTable {
            inner: Arc::new(Inner {
                sessions: DashMap::new(),
                grants: DashMap::new(),
                instance: instance.to_string(),
                observer: OnceLock::new(),
                clock,
            }),
        }
    }

    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    pub fn set_observer(&self, o: Arc<dyn SessionObserver>) {
        let _ = self.inner.observer.set(o);
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    pub fn len(&self) -> usize {
        self.inner.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.sessions.is_empty()
    }

    /// Registers a session under its grant. Fails if the grant has ended
    /// (tombstone) or is at its session limit.
    pub fn admit(&self, a: Admission) -> Result<SessionGuard, AdmitError> {
        let cell = self
            .inner
            .grants
            .entry(a.grant_id.clone())
            .or_insert_with(|| GrantCell::new(a.expires_at_ms))
            .clone();
        // The store's end may be later than what this instance knew (an
        // extension whose message has not arrived yet).
        cell.raise_end(a.expires_at_ms);
        if let Some(c) = cell.cause.get() {
            return Err(AdmitError::GrantEnded(c.clone()));
        }
        let limit = a.max_sessions.map(|m| m as usize).unwrap_or(usize::MAX);
        if cell
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(AdmitError::MaxSessions(a.max_sessions.unwrap_or(0)));
        }
        let now = self.inner.clock.now_ms();
        let info = Arc::new(SessionInfo {
            id: crate::ids::session_id(),
            grant_id: a.grant_id,
            user: a.user,
            target: a.target,
            kind: a.kind,
            client_addr: a.client_addr,
            granted_at_ms: a.granted_at_ms,
            started_at_ms: now,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_activity_ms: AtomicI64::new(now),
            upstream_detail: OnceLock::new(),
            end_detail: OnceLock::new(),
            recording_detail: OnceLock::new(),
            started: std::sync::atomic::AtomicBool::new(false),
            token: cell.token.child_token(),
            cause: OnceLock::new(),
            closed: CancellationToken::new(),
            grant: cell,
            warnings: a.warnings,
            clock: self.inner.clock.clone(),
        });
        self.inner.sessions.insert(info.id.clone(), info.clone());
        // The connection's span (proxy/accept.rs) declares these fields;
        // elsewhere the record is a no-op.
        let span = tracing::Span::current();
        span.record("session_id", info.id.as_str());
        span.record("user", info.user.as_str());
        span.record("target", info.target.as_str());
        Ok(SessionGuard {
            info,
            inner: self.inner.clone(),
        })
    }

    /// Ends every session of a grant and leaves a tombstone so no new one is
    /// admitted. Returns the number confirmed closed.
    pub async fn end_grant(&self, grant_id: &str, cause: EndCause) -> usize {
        let cell = self
            .inner
            .grants
            .entry(grant_id.to_string())
            .or_insert_with(|| GrantCell::new(0))
            .clone();
        let _ = cell.cause.set(cause);
        // Collect before cancelling: a session that closes at once leaves
        // the table and would otherwise be missing from the count. Collect
        // again after, for a session admitted while the tombstone was set.
        let of_grant = |sessions: &DashMap<String, Arc<SessionInfo>>| -> Vec<Arc<SessionInfo>> {
            sessions
                .iter()
                .filter(|s| s.grant_id == grant_id)
                .map(|s| s.value().clone())
                .collect()
        };
        let mut affected = of_grant(&self.inner.sessions);
        cell.token.cancel();
        let seen: std::collections::HashSet<String> =
            affected.iter().map(|s| s.id.clone()).collect();
        let late = of_grant(&self.inner.sessions);
        affected.extend(late.into_iter().filter(|s| !seen.contains(&s.id)));
        wait_closed(&affected).await
    }

    pub async fn end_session(&self, id: &str, cause: EndCause) -> Option<usize> {
        let s = self.inner.sessions.get(id).map(|s| s.value().clone())?;
        s.record_cause(cause);
        s.token.cancel();
        Some(wait_closed(&[s]).await)
    }

    /// Ends sessions matching `pred` (a user's sessions, a removed target's, all at shutdown).
    pub async fn end_where(&self, pred: impl Fn(&SessionInfo) -> bool, cause: EndCause) -> usize {
        let affected: Vec<Arc<SessionInfo>> = self
            .inner
            .sessions
            .iter()
            .filter(|s| pred(s.value()))
            .map(|s| s.value().clone())
            .collect();
        for s in &affected {
            s.record_cause(cause.clone());
            s.token.cancel();
        }
        wait_closed(&affected).await
    }

    /// Sends a warn_before notice to every session of a grant that can show one.
    pub fn warn_grant(&self, grant_id: &str, message: &str) -> usize {
        let mut n = 0;
        for s in self
            .inner
            .sessions
            .iter()
            .filter(|s| s.grant_id == grant_id)
        {
            tracing::info!(session = %s.id, user = %s.user, target = %s.target, "{message}");
            if let Some(w) = &s.warnings {
                // A full queue means the session is already behind; dropping a
                // warning is better than blocking the timer.
                if w.try_send(message.to_string()).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Moves a grant's end out to `end_ms` (an extension): every live
    /// session's expiry timer follows, and each session that can show a
    /// notice is told in-band. A grant with no session here still gets its
    /// cell, so the grant timer and later sessions see the new end. Returns
    /// how many sessions were told; 0 (and nothing said) when the end was
    /// already that late or the grant has ended.
    pub fn extend_grant(&self, grant_id: &str, end_ms: i64) -> usize {
        let cell = self
            .inner
            .grants
            .entry(grant_id.to_string())
            .or_insert_with(|| GrantCell::new(end_ms))
            .clone();
        if cell.cause.get().is_some() || !cell.raise_end(end_ms) {
            return 0;
        }
        let until = crate::clock::rfc3339(end_ms);
        let mut n = 0;
        for s in self
            .inner
            .sessions
            .iter()
            .filter(|s| s.grant_id == grant_id)
        {
            let message = format!("access to {} extended until {until}", s.target);
            tracing::info!(session = %s.id, user = %s.user, target = %s.target, "{message}");
            if let Some(w) = &s.warnings {
                if w.try_send(message).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// The grant's end as this instance knows it, if it has a cell here.
    pub fn known_end(&self, grant_id: &str) -> Option<i64> {
        self.inner.grants.get(grant_id).map(|c| *c.end.borrow())
    }

    /// Forgets tombstones of grants that ended long enough ago that no
    /// admission can still be racing them (admission re-checks the store).
    pub fn forget_grant(&self, grant_id: &str) {
        self.inner.grants.remove_if(grant_id, |_, c| {
            c.cause.get().is_some() && c.live.load(Ordering::Acquire) == 0
        });
    }

    pub fn snapshot(&self) -> Vec<SessionSnapshot> {
        let mut v: Vec<SessionSnapshot> = self
            .inner
            .sessions
            .iter()
            .map(|s| s.snapshot(&self.inner.instance))
            .collect();
        v.sort_by(|a, b| a.started_at_ms.cmp(&b.started_at_ms).then(a.id.cmp(&b.id)));
        v
    }

    /// Sessions whose upstream is connected (those published to peers).
    pub fn started_sessions(&self) -> Vec<Arc<SessionInfo>> {
        self.inner
            .sessions
            .iter()
            .filter(|s| s.started.load(Ordering::Acquire))
            .map(|s| s.value().clone())
            .collect()
    }

    /// The grants that have live sessions here.
    pub fn grant_ids(&self) -> std::collections::HashSet<String> {
        self.inner
            .sessions
            .iter()
            .map(|s| s.grant_id.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<SessionInfo>> {
        self.inner.sessions.get(id).map(|s| s.value().clone())
    }
}

async fn wait_closed(sessions: &[Arc<SessionInfo>]) -> usize {
    let waits = sessions.iter().map(|s| s.closed.cancelled());
    let all = futures_join_all(waits);
    if tokio::time::timeout(CLOSE_WAIT, all).await.is_err() {
        let open = sessions.iter().filter(|s| !s.closed.is_cancelled()).count();
        tracing::warn!(open, "sessions did not confirm closing in time");
    }
    sessions.iter().filter(|s| s.closed.is_cancelled()).count()
}

/// Awaits all futures; small local helper to avoid a futures-util dependency.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

impl SessionGuard {
    pub fn info(&self) -> &Arc<SessionInfo> {
        &self.info
    }

    /// Cancelled when the session must end; relays select on it.
    pub fn token(&self) -> &CancellationToken {
        &self.info.token
    }

    /// Records a cause if none is recorded yet (the first cause wins).
    pub fn set_cause(&self, cause: EndCause) {
        self.info.record_cause(cause);
    }

    /// Adds to the `session.ended` audit detail (the first call wins).
    pub fn set_end_detail(&self, detail: serde_json::Value) {
        let _ = self.info.end_detail.set(detail);
    }

    /// The upstream is connected: from here the session counts as started
    /// (metrics, `session.started` audit event with `upstream`), and its end
    /// will be reported. A session admitted but never started (its upstream
    /// was unreachable) is reported as a rejected connection instead.
    pub fn start(&self, upstream: Option<serde_json::Value>) {
        if let Some(u) = upstream {
            let _ = self.info.upstream_detail.set(u);
        }
        self.info.started.store(true, Ordering::Release);
        if let Some(o) = self.inner.observer.get() {
            o.started(&self.info);
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let cause = self
            .info
            .cause()
            .unwrap_or_else(|| EndCause::new(EndReason::Error));
        self.inner.sessions.remove(&self.info.id);
        self.info.grant.live.fetch_sub(1, Ordering::AcqRel);
        if self.info.started.load(Ordering::Acquire) {
            if let Some(o) = self.inner.observer.get() {
                o.ended(&self.info, &cause);
            }
        }
        self.info.closed.cancel();
    }
}
