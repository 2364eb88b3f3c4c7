//! Session recording (SPEC "Recording"): what happens inside SSH and
//! PostgreSQL sessions, written to one file per session under
//! `[recording] dir`, sealed into the audit chain at the session's end.
//!
//! Layout: `DIR/SESSION_ID.cast` (asciicast v2) or `DIR/SESSION_ID.ndjson`
//! (one statement per line), and `DIR/SESSION_ID.json`, the metadata the
//! listing reads (who, what, when; digest and size once sealed). Files are
//! 0600 in a 0700 dir.
//!
//! Invariants:
//! - The relay never waits on the disk (`writer`).
//! - A failure is acted on once per recording: `refuse` ends the session
//!   with reason `error` and says why (its farewell); `continue` audits
//!   `recording.failed`. Either way `jitgate_recording_failures_total`
//!   counts it.
//! - Live recordings are registered by session id until sealed, so a
//!   watcher finds them; sealing removes them.

pub mod access;
pub mod cast;
mod files;
mod pg_framer;
mod pg_messages;
pub mod retention;
pub mod statements;
mod writer;

pub use files::{Meta, RecordingKind};
pub use writer::{Recording, Sealed, WriteFailure};

use crate::audit::AuditEntry;
use crate::config::{Config, OnFailure, RecordingConfig, SharedConfig, SshRecording};
use crate::metrics::Metrics;
use crate::sessions::{EndCause, EndReason, SessionInfo, SessionTable};
use crate::store::Store;
use dashmap::DashMap;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long sealing may take at a session's end before it is given up
/// (the session then ends without a digest, and the failure is counted).
pub const SEAL_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot create the recording under {dir}: {source}")]
    Create { dir: String, source: std::io::Error },
}

/// The recording service: opens recordings, finds live ones, lists and
/// reads finished ones. One per daemon.
pub struct Recordings {
    config: SharedConfig,
    metrics: Arc<Metrics>,
    store: Store,
    sessions: SessionTable,
    /// Weak: the map never keeps a recording open (a session dropped
    /// without its seal still ends its writer, which then leaves the map).
    live: Arc<DashMap<String, writer::WeakRecording>>,
    instance: String,
}

/// What a front end asks for when a session starts.
pub struct Opened {
    pub recording: Recording,
    /// SSH: whether exec and subsystem channels are recorded too.
    pub full: bool,
}

impl Recordings {
    pub fn new(
        config: SharedConfig,
        metrics: Arc<Metrics>,
        store: Store,
        sessions: SessionTable,
    ) -> Arc<Recordings> {
        let instance = config.get().instance.clone();
        Arc::new(Recordings {
            config,
            metrics,
            store,
            sessions,
            live: Arc::new(DashMap::new()),
            instance,
        })
    }

    /// The `[recording]` section in force now.
    pub fn settings(&self) -> Option<RecordingConfig> {
        self.config.get().recording.clone()
    }

    pub fn config_now(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Opens the recording of a session about to start, if `[recording]`
    /// says this kind is recorded. An error is the caller's to act on with
    /// `on_failure` (refuse the session, or go on and `audit_failure`).
    pub fn open(
        self: &Arc<Self>,
        info: &Arc<SessionInfo>,
        kind: RecordingKind,
        policy: &str,
    ) -> Result<Option<Opened>, RecordingError> {
        let Some(cfg) = self.settings() else {
            return Ok(None);
        };
        let full = match kind {
            RecordingKind::Ssh => match cfg.ssh {
                SshRecording::Off => return Ok(None),
                SshRecording::Terminal => false,
                SshRecording::Full => true,
            },
            RecordingKind::Postgres if !cfg.postgres => return Ok(None),
            RecordingKind::Postgres => false,
        };
        let meta = Meta {
            id: info.id.clone(),
            user: info.user.clone(),
            target: info.target.clone(),
            kind,
            grant: info.grant_id.clone(),
            policy: policy.to_string(),
            instance: self.instance.clone(),
            started_at_ms: crate::clock::now_ms(),
            ended_at_ms: None,
            bytes: None,
            sha256: None,
        };
        let file = files::create(&cfg.dir, &meta).map_err(|source| RecordingError::Create {
            dir: cfg.dir.display().to_string(),
            source,
        })?;
        let header = match kind {
            RecordingKind::Ssh => cast::header(80, 24, None, None, meta.started_at_ms),
            RecordingKind::Postgres => Vec::new(),
        };
        let (tx, rx) = mpsc::channel(writer::QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let on_fail = self.failure_handler(info.clone(), kind, cfg.on_failure);
        let w = writer::Writer {
            file: Some(file),
            buf: Vec::new(),
            hash: Default::default(),
            written: 0,
            header_done: false,
            default_header: header,
            watchers: Vec::new(),
            counter: self
                .metrics
                .recording_bytes
                .with_label_values(&[kind.as_str()]),
            events: 0,
            files: vec![
                files::data_path(&cfg.dir, &info.id, kind),
                files::meta_path(&cfg.dir, &info.id),
            ],
        };
        let (live, id) = (self.live.clone(), info.id.clone());
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let run = w.run(rx, on_fail.clone(), failed.clone(), queued.clone());
        tokio::spawn(async move {
            run.await;
            live.remove(&id);
        });
        let recording = Recording {
            tx,
            start: std::time::Instant::now(),
            failed,
            on_fail,
            queued,
        };
        self.live.insert(info.id.clone(), recording.downgrade());
        tracing::info!(session = %info.id, kind = kind.as_str(), "session recorded");
        Ok(Some(Opened { recording, full }))
    }

    /// What happens when a recording fails, by `on_failure`.
    fn failure_handler(
        self: &Arc<Self>,
        info: Arc<SessionInfo>,
        kind: RecordingKind,
        on_failure: OnFailure,
    ) -> writer::OnFail {
        let me = Arc::downgrade(self);
        Arc::new(move |why: WriteFailure| {
            let Some(me) = me.upgrade() else { return };
            me.failed(&info, kind, on_failure, &why.to_string());
        })
    }

    /// Counts a failure and acts on it: ends the session (`refuse`) or
    /// audits it and lets the session go on (`continue`).
    pub fn failed(
        &self,
        info: &SessionInfo,
        kind: RecordingKind,
        on_failure: OnFailure,
        why: &str,
    ) {
        self.metrics
            .recording_failures
            .with_label_values(&[kind.as_str()])
            .inc();
        tracing::warn!(session = %info.id, user = %info.user, target = %info.target, "recording failed: {why}");
        match on_failure {
            OnFailure::Refuse => {
                let cause = EndCause {
                    reason: EndReason::Error,
                    by: None,
                    comment: Some(format!("the session could not be recorded: {why}")),
                    at: std::time::Instant::now(),
                };
                let sessions = self.sessions.clone();
                let id = info.id.clone();
                tokio::spawn(async move {
                    sessions.end_session(&id, cause).await;
                });
            }
            OnFailure::Continue => {
                let entry = AuditEntry::new(
                    &info.user,
                    "recording.failed",
                    &info.id,
                    json!({"target": info.target, "kind": kind.as_str(), "error": why, "on_failure": "continue"}),
                );
                self.audit(entry);
            }
        }
    }

    fn audit(&self, entry: AuditEntry) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.audit(&entry).await {
                tracing::warn!(action = entry.action, error = %e, "audit event not written");
            }
        });
    }

    /// Seals a session's recording (close, fsync, digest) and returns the
    /// detail for its `session.ended` audit event.
    pub async fn seal(
        &self,
        info: &SessionInfo,
        recording: &Recording,
        kind: RecordingKind,
    ) -> serde_json::Value {
        let sealed = recording.seal(SEAL_LIMIT).await;
        self.live.remove(&info.id);
        let Some(s) = sealed else {
            if !recording.failed() {
                self.metrics
                    .recording_failures
                    .with_label_values(&[kind.as_str()])
                    .inc();
            }
            return json!({"recording_error": "the recording was not sealed (it failed or the disk did not answer)"});
        };
        if let Some(cfg) = self.settings() {
            if let Err(e) = files::finish(&cfg.dir, &info.id, crate::clock::now_ms(), &s) {
                tracing::warn!(session = %info.id, error = %e, "cannot write the recording's metadata");
            }
        }
        json!({"recording_sha256": s.sha256, "recording_bytes": s.bytes})
    }

    /// The live recording of a session on this instance, if any.
    pub fn live(&self, session: &str) -> Option<Recording> {
        self.live.get(session).and_then(|r| r.upgrade())
    }

    /// The recordings under the dir in force, newest first.
    pub fn list(&self) -> Vec<Meta> {
        match self.settings() {
            Some(cfg) => files::list(&cfg.dir),
            None => Vec::new(),
        }
    }

    /// One recording's metadata and file path.
    pub fn find(&self, session: &str) -> Option<(Meta, PathBuf)> {
        let cfg = self.settings()?;
        files::find(&cfg.dir, session)
    }

    /// Starts the retention task (see `retention`).
    pub fn spawn_retention(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move { retention::run(me, stop).await });
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

impl Recordings {
    /// `open`, with a failure already acted on: `refuse` gives the words
    /// for the engineer (the session must not start), `continue` audits
    /// `recording.failed` and gives no recording.
    pub fn open_or_refuse(
        self: &Arc<Self>,
        info: &Arc<SessionInfo>,
        kind: RecordingKind,
        policy: &str,
    ) -> Result<Option<Opened>, String> {
        match self.open(info, kind, policy) {
            Ok(o) => Ok(o),
            Err(e) => {
                let on_failure = self
                    .settings()
                    .map(|c| c.on_failure)
                    .unwrap_or(OnFailure::Refuse);
                let why = e.to_string();
                match on_failure {
                    OnFailure::Refuse => {
                        self.metrics
                            .recording_failures
                            .with_label_values(&[kind.as_str()])
                            .inc();
                        tracing::warn!(session = %info.id, "session refused: {why}");
                        Err(format!(
                            "the session cannot be recorded, so it is refused: {why}"
                        ))
                    }
                    OnFailure::Continue => {
                        self.failed(info, kind, on_failure, &why);
                        Ok(None)
                    }
                }
            }
        }
    }
}
