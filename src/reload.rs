//! Config reload (SIGHUP and POST /v1/admin/reload): validate the whole new
//! file, then swap atomically. A bad file changes nothing. Live sessions that
//! the new config no longer allows (target, user or covering policy removed)
//! end with reason `policy_changed`.

use crate::config::{self, Config, SharedConfig};
use crate::metrics::Metrics;
use crate::sessions::{EndCause, EndReason, SessionTable};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct Reloader {
    path: PathBuf,
    config: SharedConfig,
    sessions: SessionTable,
    metrics: Arc<Metrics>,
    /// Serialises reloads so two of them cannot interleave validate and swap.
    lock: Mutex<()>,
}

/// Whether a live session of `user` on `target` is still allowed by `cfg`.
pub fn still_allowed(cfg: &Config, user: &str, target: &str) -> bool {
    cfg.targets.contains_key(target) && cfg.may_hold(user, target)
}

fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    if old.admin.listen != new.admin.listen {
        v.push("admin.listen");
    }
    if old.metrics_listen != new.metrics_listen {
        v.push("metrics.listen");
    }
    if old.store_url != new.store_url {
        v.push("store.url");
    }
    // The checkpoint key is loaded once, at start.
    if old.audit_signing_key != new.audit_signing_key {
        v.push("audit.signing_key");
    }
    if old.tcp.as_ref().map(|t| t.listen) != new.tcp.as_ref().map(|t| t.listen) {
        v.push("listeners.tcp");
    }
    if old.postgres.as_ref().map(|t| t.listen) != new.postgres.as_ref().map(|t| t.listen) {
        v.push("listeners.postgres");
    }
    if old.ssh.as_ref().map(|t| t.listen) != new.ssh.as_ref().map(|t| t.listen) {
        v.push("listeners.ssh");
    }
    v
}

struct NotifyReadyOnDrop;

impl Drop for NotifyReadyOnDrop {
    fn drop(&mut self) {
        crate::sd_notify::notify("READY=1");
    }
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        config: SharedConfig,
        sessions: SessionTable,
        metrics: Arc<Metrics>,
    ) -> Self {
        Reloader {
            path,
            config,
            sessions,
            metrics,
            lock: Mutex::new(()),
        }
    }

    /// Returns a summary on success, every error on failure.
    pub async fn reload(&self, actor: &str) -> Result<serde_json::Value, Vec<String>> {
        let _g = self.lock.lock().await;
        // Under systemd, `reload` shows the unit as reloading until this
        // returns, whatever the outcome.
        crate::sd_notify::notify("RELOADING=1");
        let _ready = NotifyReadyOnDrop;
        let new = match config::load(&self.path) {
            Ok(c) => c,
            Err(e) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
                let errors = e.errors();
                for line in &errors {
                    tracing::error!(by = actor, "config reload rejected: {line}");
                }
                return Err(errors);
            }
        };
        let old = self.config.get();
        let restart = restart_needed(&old, &new);
        self.config.replace(new);
        let cfg = self.config.get();
        let ended = self
            .sessions
            .end_where(
                |s| !still_allowed(&cfg, &s.user, &s.target),
                EndCause::by(EndReason::PolicyChanged, actor, "config reloaded"),
            )
            .await;
        self.metrics.config_reloads.with_label_values(&["ok"]).inc();
        tracing::info!(
            by = actor,
            sessions_ended = ended,
            ?restart,
            "config reloaded"
        );
        Ok(serde_json::json!({
            "reloaded": true,
            "sessions_terminated": ended,
            "restart_required_for": restart,
        }))
    }
}
