//! `jitgate serve`: wire the store, control plane, listeners and signals
//! together, and shut down in order.

use crate::admin::{self, AdminState};
use crate::cli::LogFormat;
use crate::config::{self, SharedConfig};
use crate::grants::Grants;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::sessions::{EndCause, EndReason, SessionTable};
use crate::store::Store;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Creates data_dir with mode 0700 (keys, certificates and the SQLite file live there).
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data_dir {}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting permissions on {}", dir.display()))?;
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

pub async fn run(config_path: &Path, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    crate::logging::init(log_format);
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.errors() {
                eprintln!("{line}");
            }
            eprintln!("jitgate: refusing to start with an invalid config");
            return Ok(ExitCode::from(1));
        }
    };
    prepare_data_dir(&cfg.data_dir)?;
    // Before anything opens the store: a second daemon on the same SQLite
    // file would hold sessions a revoke through this one cannot see.
    let _store_lock = match crate::store::lock_embedded_store(&cfg.store_url) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("jitgate: {e}");
            return Ok(ExitCode::from(1));
        }
    };
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
    // Session start/end metrics and audit events; without it sessions would
    // relay and end correctly but leave no record.
    let recorder = crate::sessions::observer::Recorder::start(metrics.clone(), store.clone());
    let shutdown = CancellationToken::new();
    let cluster = join_cluster(&cfg.store_url, &store, &sessions, &shutdown).await?;
    let mut observers: Vec<Arc<dyn crate::sessions::SessionObserver>> = vec![recorder.clone()];
    if let Some(c) = &cluster {
        observers.push(Arc::new(c.rows.clone()));
    }
    sessions.set_observer(Arc::new(crate::sessions::Observers(observers)));
    let shared = SharedConfig::new(cfg.clone());
    let periodic = crate::audit_anchor::spawn_periodic(store.clone(), shutdown.clone());
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
    grants
        .restore()
        .await
        .map_err(|e| anyhow::anyhow!("restoring grants: {e}"))?;

    let state = Arc::new(AdminState {
        grants: grants.clone(),
        listeners_up: Default::default(),
        endpoints: Default::default(),
        reloader: Default::default(),
    });
    let reloader = Arc::new(Reloader::new(
        config_path.to_path_buf(),
        shared.clone(),
        sessions.clone(),
        metrics.clone(),
    ));
    let _ = state.reloader.set(reloader.clone());

    let admin_listener = bind(cfg.admin.listen, "the admin API").await?;
    let admin_addr = admin_listener.local_addr()?;
    let mut tasks = tokio::task::JoinSet::new();
    // Only with configured files: a generated self-signed certificate would
    // break every client of the plain-HTTP default.
    let admin_tls = match &cfg.admin.tls {
        Some(t) => {
            let tls = crate::tls::server_tls(crate::tls::Source::Files {
                cert: &t.cert,
                key: &t.key,
            })?;
            tracing::info!(fingerprint = %tls.fingerprint, "admin API over TLS");
            Some(tokio_rustls::TlsAcceptor::from(tls.config))
        }
        None => None,
    };
    tasks.spawn(admin::serve(
        admin_listener,
        state.clone(),
        admin_tls,
        shutdown.clone(),
    ));
    if let Some(addr) = cfg.metrics_listen {
        let l = bind(addr, "metrics").await?;
        tracing::info!(addr = %l.local_addr()?, "metrics listening");
        tasks.spawn(crate::metrics_http::serve(
            l,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    let mut endpoints = crate::admin::Endpoints::default();
    if let Some(tcp) = &cfg.tcp {
        let tls = crate::tls::server_tls(tls_source(&cfg, "tcp", tcp.tls.as_ref(), tcp.listen))?;
        let l = bind(tcp.listen, "the TCP tunnel").await?;
        tracing::info!(addr = %l.local_addr()?, fingerprint = %tls.fingerprint, "tcp tunnel listening");
        endpoints.tcp_address = Some(l.local_addr()?.to_string());
        endpoints.tcp_tls_fingerprint = Some(tls.fingerprint.clone());
        endpoints.ca_pem = Some(tls.cert_pem.clone());
        let fe = Arc::new(crate::proxy::tcp::server::TcpFrontEnd {
            grants: grants.clone(),
            tls: tokio_rustls::TlsAcceptor::from(tls.config),
            ended: Default::default(),
        });
        tasks.spawn(crate::proxy::tcp::server::serve(l, fe, shutdown.clone()));
    }
    if let Some(pg) = &cfg.postgres {
        let tls = crate::tls::server_tls(tls_source(&cfg, "postgres", pg.tls.as_ref(), pg.listen))?;
        // libpq 17 direct TLS requires this ALPN protocol; others ignore it.
        let mut server = (*tls.config).clone();
        server.alpn_protocols = vec![b"postgresql".to_vec()];
        let cert_hash =
            hex::decode(tls.fingerprint.trim_start_matches("sha256:")).expect("fingerprint is hex");
        let l = bind(pg.listen, "the PostgreSQL").await?;
        tracing::info!(addr = %l.local_addr()?, fingerprint = %tls.fingerprint, "postgres listening");
        endpoints.postgres_address = Some(l.local_addr()?.to_string());
        endpoints.postgres_ca_pem = Some(tls.cert_pem.clone());
        let fe = Arc::new(crate::proxy::postgres::server::PgFrontEnd {
            grants: grants.clone(),
            tls: Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))),
            cert_hash,
            allow_plaintext: pg.allow_plaintext,
            cancels: Default::default(),
            limiter: Default::default(),
        });
        tasks.spawn(crate::proxy::postgres::server::serve(
            l,
            fe,
            shutdown.clone(),
        ));
    }
    if let Some(ssh) = &cfg.ssh {
        let key = crate::proxy::ssh::keys::host_key(&cfg.data_dir, ssh.host_key.as_deref())?;
        let public = key.public_key().clone();
        let l = bind(ssh.listen, "the SSH").await?;
        tracing::info!(
            addr = %l.local_addr()?,
            host_key = %crate::proxy::ssh::keys::fingerprint(&public),
            "ssh listening"
        );
        endpoints.ssh_address = Some(l.local_addr()?.to_string());
        endpoints.ssh_host_key = Some(crate::proxy::ssh::keys::openssh_line(&public));
        let fe = Arc::new(crate::proxy::ssh::server::SshFrontEnd {
            grants: grants.clone(),
            config: Arc::new(crate::proxy::ssh::server::server_config(key)),
            limiter: Default::default(),
        });
        tasks.spawn(crate::proxy::ssh::server::serve(l, fe, shutdown.clone()));
    }
    let _ = state.endpoints.set(endpoints);
    state.listeners_up.store(true, Ordering::Release);
    warn_about_demo_tokens(&cfg);
    tracing::info!(addr = %admin_addr, instance = %cfg.instance, store = store_kind(&cfg.store_url), "jitgate ready");
    crate::sd_notify::notify("READY=1\nSTATUS=serving");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let _ = reloader.reload("SIGHUP").await;
            }
        }
    }
    tracing::info!("shutting down: closing listeners and every session");
    crate::sd_notify::notify("STOPPING=1\nSTATUS=closing sessions");
    shutdown.cancel();
    // One deadline for the whole stop, so shutdown_timeout bounds it (and a
    // service manager's stop timeout can be set just above it).
    let deadline = tokio::time::Instant::now() + shared.get().shutdown_timeout;
    let ended = tokio::time::timeout_at(
        deadline,
        sessions.end_where(|_| true, EndCause::new(EndReason::Shutdown)),
    )
    .await;
    match ended {
        Ok(n) => tracing::info!(sessions = n, "sessions closed"),
        Err(_) => tracing::warn!("sessions did not all close within shutdown_timeout"),
    }
    let _ = tokio::time::timeout_at(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let unwritten = recorder
        .drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    if unwritten > 0 {
        tracing::warn!(
            events = unwritten,
            "session audit events not written before shutdown"
        );
    }
    let _ = periodic.await;
    checkpoint(&store, "shutdown").await;
    if let Some(c) = &cluster {
        c.leave().await;
    }
    notifier.stop().await;
    store.close().await;
    tracing::info!("jitgate stopped");
    Ok(ExitCode::SUCCESS)
}

/// The operator's certificate files, or one generated under data_dir for
/// this instance and the listener's address.
fn tls_source<'a>(
    cfg: &'a config::Config,
    stem: &'a str,
    files: Option<&'a config::TlsFiles>,
    listen: std::net::SocketAddr,
) -> crate::tls::Source<'a> {
    match files {
        Some(t) => crate::tls::Source::Files {
            cert: &t.cert,
            key: &t.key,
        },
        None => crate::tls::Source::Generated {
            data_dir: &cfg.data_dir,
            stem,
            instance: &cfg.instance,
            listen: Some(listen.ip()),
        },
    }
}

/// Anchors the chain's tail; a failure is logged, the daemon goes on (the
/// tail stays protected by the plain chain only, which verify reports).
async fn checkpoint(store: &Store, when: &str) {
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

fn store_kind(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// The example config ships demo tokens so the README walk-through works;
/// say so loudly whenever a daemon runs with them.
fn warn_about_demo_tokens(cfg: &config::Config) {
    for u in cfg.users.values() {
        if let Some(h) = &u.token_sha256 {
            if crate::secrets::DEMO_TOKEN_HASHES
                .iter()
                .any(|d| hex::encode(h) == *d)
            {
                tracing::warn!(user = %u.name, "user has a publicly known demo token from the example config; replace it (`jitgate token new`) before real use");
            }
        }
    }
}
