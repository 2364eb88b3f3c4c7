//! Webhook notifications (SPEC "Notifications").
//!
//! Queueing and delivery are split by the store: a state change queues its
//! notifications in its own transaction (store/notify_hook.rs maps audit
//! actions to events), and the workers here deliver them later. The API
//! and the proxy therefore never wait on a receiver: the most they pay is
//! one row insert per receiver in a transaction they make anyway. The
//! outbox lives in the store, so queued notifications survive a restart
//! and any instance sharing a PostgreSQL store can deliver them.

pub mod deliver;
/// The events themselves are the store's (they are queued with the change).
pub use crate::store::event;
pub mod sign;
pub mod slack;
pub mod worker;

use crate::config::SharedConfig;
use crate::metrics::Metrics;
use crate::store::{Routing, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Routing over the running config: a reload changes it for the next event.
struct ConfigRouting(SharedConfig);

impl Routing for ConfigRouting {
    fn receivers(&self, event: &str) -> Vec<String> {
        self.0
            .get()
            .notify
            .iter()
            .filter(|n| n.wants(event))
            .map(|n| n.url.clone())
            .collect()
    }

    fn instance(&self) -> String {
        self.0.get().instance.clone()
    }
}

/// The running delivery workers.
pub struct Notifier {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Routes the store's events to the configured receivers and starts
/// delivering. Call it before anything can change state (before grants
/// are restored: expiries noticed at start are events too).
pub fn start(store: &Store, config: SharedConfig, metrics: Arc<Metrics>) -> Notifier {
    let cfg = config.get();
    for n in cfg.notify.iter().filter(|n| n.secret_env.is_none()) {
        tracing::warn!(receiver = %deliver::redact(&n.url), "notify receiver has no secret_env: its deliveries are not signed");
    }
    store.set_routing(Arc::new(ConfigRouting(config.clone())));
    let ctx = Arc::new(worker::Ctx {
        store: store.clone(),
        owner: format!("{}:{}", cfg.instance, crate::ids::delivery_id()),
        config,
        metrics,
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker::supervise(ctx, stop.clone()));
    Notifier { stop, task }
}

impl Notifier {
    /// Stops delivering (in-flight posts are abandoned and retried later)
    /// and releases this instance's leases. Call before closing the store.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
