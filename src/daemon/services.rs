//! Everything a running daemon holds besides its listeners: the store and
//! its signer, the session table and who observes it, the cluster
//! membership, notifications, the control plane and the reloader.

use crate::admin::AdminState;
use crate::config::{self, SharedConfig};
use crate::grants::Grants;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::sessions::SessionTable;
use crate::store::Store;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(super) struct Services {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub sessions: SessionTable,
    pub recorder: Arc<crate::sessions::observer::Recorder>,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub shared: SharedConfig,
    pub periodic: tokio::task::JoinHandle<()>,
    pub notifier: crate::notify::Notifier,
    pub grants: Arc<Grants>,
    pub reloader: Arc<Reloader>,
    pub state: Arc<AdminState>,
    /// Cancelled at the stop: every listener and background task watches it.
    pub shutdown: CancellationToken,
}

impl Services {
    pub async fn start(cfg: &config::Config, config_path: &Path) -> anyhow::Result<Services> {
        let store = Store::connect(&cfg.store_url, cfg.store_max_connections)
            .await
            .with_context(|| "opening the store")?;
        // The key lives outside the store so that writing the store is not
        // enough to rewrite the audit history unnoticed.
        let anchor = crate::audit_anchor::Anchor::load(
            &cfg.data_dir,
            cfg.audit_signing_key.as_deref(),
            &cfg.instance,
        )?;
        tracing::info!(public_key = %anchor.public_key(), "audit checkpoints signed");
        store.set_anchor(Arc::new(anchor));
        let metrics = Arc::new(Metrics::new());
        let sessions = SessionTable::new(&cfg.instance);
        // Session start/end metrics and audit events; without it sessions
        // would relay and end correctly but leave no record.
        let recorder = crate::sessions::observer::Recorder::start(metrics.clone(), store.clone());
        let shutdown = CancellationToken::new();
        let cluster = join_cluster(&cfg.store_url, &store, &sessions, &shutdown).await?;
        let mut observers: Vec<Arc<dyn crate::sessions::SessionObserver>> = vec![recorder.clone()];
        if let Some(c) = &cluster {
            observers.push(Arc::new(c.rows.clone()));
        }
        sessions.set_observer(Arc::new(crate::sessions::Observers(observers)));
        let shared = SharedConfig::new(cfg.clone());
        let periodic = store.spawn_periodic_checkpoints(shutdown.clone());
        let notifier = crate::notify::start(&store, shared.clone(), metrics.clone());
        // After the notifier: a witness receiver gets this one too.
        checkpoint(&store, "start").await;
        let grants = Grants::new(
            store.clone(),
            shared.clone(),
            sessions.clone(),
            metrics.clone(),
        );
        if let Some(c) = &cluster {
            grants.join_cluster(c.clone());
        }
        grants.recordings().spawn_retention(shutdown.clone());
        grants
            .restore()
            .await
            .map_err(|e| anyhow::anyhow!("restoring grants: {e}"))?;
        let reloader = Arc::new(Reloader::new(
            config_path.to_path_buf(),
            shared.clone(),
            sessions.clone(),
            metrics.clone(),
        ));
        let state = Arc::new(AdminState {
            grants: grants.clone(),
            listeners_up: Default::default(),
            endpoints: Default::default(),
            reloader: Default::default(),
            ssh_ca: Default::default(),
            identity: Arc::new(crate::identity::flow::Identity::new(
                store.clone(),
                metrics.clone(),
            )),
        });
        let _ = state.reloader.set(reloader.clone());
        Ok(Services {
            store,
            metrics,
            sessions,
            recorder,
            cluster,
            shared,
            periodic,
            notifier,
            grants,
            reloader,
            state,
            shutdown,
        })
    }
}

/// Anchors the chain's tail; a failure is logged, the daemon goes on (the
/// tail stays protected by the plain chain only, which verify reports).
pub(super) async fn checkpoint(store: &Store, when: &str) {
    match store.audit_checkpoint().await {
        Ok(true) => tracing::info!(when, "audit checkpoint signed"),
        Ok(false) => {}
        Err(e) => tracing::warn!(when, error = %e, "cannot write an audit checkpoint"),
    }
}

/// With a PostgreSQL store this instance joins the others sharing it.
async fn join_cluster(
    url: &str,
    store: &Store,
    sessions: &SessionTable,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Arc<crate::cluster::Cluster>>> {
    if store.backend() != crate::store::Backend::Postgres {
        return Ok(None);
    }
    let c = crate::cluster::Cluster::start(store.clone(), sessions.clone(), url, shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!("registering this instance in the store: {e}"))?;
    Ok(Some(c))
}
