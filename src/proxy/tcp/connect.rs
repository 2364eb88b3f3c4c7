//! `jitgate connect`: a local listener whose every connection becomes one
//! tunneled session. When the proxy ends a session the local socket is
//! closed and the reason is printed; when the grant itself has ended the
//! command exits 1, since no further connection can succeed.

use super::dial::{open, Ctx};
use super::handshake::{Kind, Status};
use super::verify::client_config;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// What `jitgate connect` was asked to do; the command line's spelling of
/// it (flags, defaults, help) belongs to the CLI, which converts.
#[derive(Clone, Debug)]
pub struct Options {
    pub target: String,
    /// The proxy's TCP tunnel listener, HOST:PORT.
    pub proxy: String,
    pub listen: SocketAddr,
    /// The secret is read from the environment, never from argv, where
    /// every local user could read it in /proc.
    pub secret_env: String,
    pub ca: Option<PathBuf>,
    pub fingerprint: Option<String>,
}

pub async fn run(args: Options) -> anyhow::Result<ExitCode> {
    let secret = std::env::var(&args.secret_env).with_context(|| {
        format!(
            "the connect secret is read from ${} (get one with `jitgate secret GRANT_ID`)",
            args.secret_env
        )
    })?;
    let cfg = client_config(args.ca.as_deref(), args.fingerprint.as_deref())?;
    let host = args
        .proxy
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&args.proxy)
        .trim_matches(['[', ']'])
        .to_string();
    let server_name =
        rustls::pki_types::ServerName::try_from(host).context("invalid proxy host name")?;
    let ctx = Arc::new(Ctx {
        target: args.target,
        proxy: args.proxy,
        listen: args.listen,
        secret,
        tls: TlsConnector::from(Arc::new(cfg)),
        server_name,
        ended: tokio::sync::Notify::new(),
    });
    // Target, secret, grant, proxy address and pin are all checked before
    // anything listens: a mistake fails here, not at the first connection.
    let grant = match super::watch::check(&ctx).await? {
        Ok(g) => g,
        Err(why) => {
            eprintln!(
                "jitgate: access to {} refused: {}",
                crate::text::escape(&ctx.target),
                crate::text::escape(&why)
            );
            return Ok(ExitCode::from(1));
        }
    };
    let listener = TcpListener::bind(ctx.listen)
        .await
        .with_context(|| format!("cannot listen on {}", ctx.listen))?;
    eprintln!(
        "jitgate: forwarding {} -> {} via {} (grant {}, access ends at {})",
        listener.local_addr()?,
        crate::text::escape(&ctx.target),
        crate::text::escape(&ctx.proxy),
        crate::text::escape(&grant.grant_id),
        crate::clock::rfc3339(grant.expires_at_ms)
    );
    tokio::spawn(super::watch::watch(ctx.clone(), grant));
    loop {
        tokio::select! {
            _ = ctx.ended.notified() => return Ok(ExitCode::from(1)),
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            r = listener.accept() => {
                let (local, _) = match r { Ok(x) => x, Err(_) => continue };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = tunnel(&ctx, local).await {
                        eprintln!("jitgate: {e:#}");
                    }
                });
            }
        }
    }
}

async fn tunnel(ctx: &Ctx, mut local: TcpStream) -> anyhow::Result<()> {
    let _ = local.set_nodelay(true);
    let (tls, reply) = open(ctx, Kind::Connect, "").await?;
    if reply.status != Status::Ok {
        let _ = local.shutdown().await;
        let fatal = matches!(
            reply.status,
            Status::NoGrant | Status::BadSecret | Status::Locked | Status::UnknownTarget
        );
        eprintln!(
            "jitgate: access to {} refused: {}",
            crate::text::escape(&ctx.target),
            crate::text::escape(&reply.message)
        );
        if fatal {
            ctx.ended.notify_one();
        }
        return Ok(());
    }
    let sid = reply.session_id;
    let (mut lr, mut lw) = tokio::io::split(local);
    let (mut pr, mut pw) = tokio::io::split(tls);
    // The daemon's copy loop: 16 KiB TLS records (tokio's copy would
    // send 8 KiB ones, twice the records for the proxy to open).
    let up = async {
        let r = crate::relay::copy(&mut lr, &mut pw, |_| ()).await;
        let _ = pw.shutdown().await;
        r
    };
    let down = async {
        let r = crate::relay::copy(&mut pr, &mut lw, |_| ()).await;
        let _ = lw.shutdown().await;
        r
    };
    tokio::pin!(up, down);
    // A clean EOF (TLS close_notify) from the proxy is the target's
    // half-close: keep sending. The proxy ending a session drops the
    // connection without close_notify, which reads as an error: ask why.
    let ended_by_proxy = tokio::select! {
        d = &mut down => match d {
            Err(_) => true,
            Ok(_) => up.await.is_err(),
        },
        _ = &mut up => down.await.is_err(),
    };
    if ended_by_proxy {
        match open(ctx, Kind::Status, &sid).await {
            Ok((_, r)) if matches!(r.status, Status::Ended | Status::GrantOver) => {
                // The proxy's message can quote a revoke reason: user text.
                eprintln!("jitgate: {}", crate::text::escape(&r.message));
                if r.status == Status::GrantOver {
                    ctx.ended.notify_one();
                }
            }
            Ok((_, r)) => eprintln!(
                "jitgate: the proxy closed the session to {} ({})",
                crate::text::escape(&ctx.target),
                crate::text::escape(&r.message)
            ),
            Err(e) => eprintln!(
                "jitgate: the proxy closed the session to {} and cannot say why: {e:#}",
                ctx.target
            ),
        }
    }
    Ok(())
}
