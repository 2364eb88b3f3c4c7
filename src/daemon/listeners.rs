//! Binds every listener the config names and spawns its accept loop: the
//! admin API and metrics, then the three front ends. A listener that cannot
//! bind stops the start: an operator would rather see the error than run
//! half a proxy.

use super::services::Services;
use crate::config;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub(super) struct Listeners {
    pub admin_addr: SocketAddr,
    /// The accept loops; each ends when the shutdown token fires.
    pub tasks: JoinSet<()>,
}

pub(super) async fn start(cfg: &config::Config, svc: &Services) -> anyhow::Result<Listeners> {
    let shutdown = &svc.shutdown;
    let admin_listener = bind(cfg.admin.listen, "the admin API").await?;
    let admin_addr = admin_listener.local_addr()?;
    let mut tasks = JoinSet::new();
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
    tasks.spawn(crate::admin::serve(
        admin_listener,
        svc.state.clone(),
        admin_tls,
        shutdown.clone(),
    ));
    if let Some(addr) = cfg.metrics_listen {
        let l = bind(addr, "metrics").await?;
        tracing::info!(addr = %l.local_addr()?, "metrics listening");
        tasks.spawn(crate::metrics_http::serve(
            l,
            svc.metrics.clone(),
            shutdown.clone(),
        ));
    }
    let mut endpoints = crate::admin::Endpoints::default();
    if let Some(tcp) = &cfg.tcp {
        let tls = crate::tls::server_tls(tls_source(cfg, "tcp", tcp.tls.as_ref(), tcp.listen))?;
        let l = bind(tcp.listen, "the TCP tunnel").await?;
        tracing::info!(addr = %l.local_addr()?, fingerprint = %tls.fingerprint, "tcp tunnel listening");
        endpoints.tcp_address = Some(l.local_addr()?.to_string());
        endpoints.tcp_tls_fingerprint = Some(tls.fingerprint.clone());
        endpoints.ca_pem = Some(tls.cert_pem.clone());
        let fe = Arc::new(crate::proxy::tcp::server::TcpFrontEnd {
            grants: svc.grants.clone(),
            tls: tokio_rustls::TlsAcceptor::from(tls.config),
            ended: Default::default(),
        });
        tasks.spawn(crate::proxy::tcp::server::serve(l, fe, shutdown.clone()));
    }
    if let Some(pg) = &cfg.postgres {
        let tls = crate::tls::server_tls(tls_source(cfg, "postgres", pg.tls.as_ref(), pg.listen))?;
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
            grants: svc.grants.clone(),
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
        let ca = Arc::new(crate::ssh_ca::UserCa::load(
            &cfg.data_dir,
            ssh.user_ca_key.as_deref(),
        )?);
        tracing::info!(ca = %ca.fingerprint(), "ssh user CA loaded");
        endpoints.ssh_user_ca = Some(ca.public_line());
        let _ = svc.state.ssh_ca.set(ca.clone());
        let fe = Arc::new(crate::proxy::ssh::server::SshFrontEnd {
            grants: svc.grants.clone(),
            ca,
            config: Arc::new(crate::proxy::ssh::server::server_config(key)),
            limiter: Default::default(),
        });
        tasks.spawn(crate::proxy::ssh::server::serve(l, fe, shutdown.clone()));
    }
    let _ = svc.state.endpoints.set(endpoints);
    svc.state.listeners_up.store(true, Ordering::Release);
    Ok(Listeners { admin_addr, tasks })
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

/// The operator's certificate files, or one generated under data_dir for
/// this instance and the listener's address.
fn tls_source<'a>(
    cfg: &'a config::Config,
    stem: &'a str,
    files: Option<&'a config::TlsFiles>,
    listen: SocketAddr,
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
