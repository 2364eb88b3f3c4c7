//! One connection to the proxy's tunnel listener, as `jitgate connect`
//! opens it for a session, a status query or a grant check: TCP, TLS
//! verified against the CA or pin, the handshake, the reply.

use super::handshake::{self, Hello, Kind};
use crate::relay::readahead::ReadAhead;
use anyhow::Context;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The client's end of one tunnel connection.
pub type TunnelStream = tokio_rustls::client::TlsStream<ReadAhead<TcpStream>>;

/// What every connection of one `jitgate connect` shares.
pub struct Ctx {
    pub target: String,
    pub proxy: String,
    pub listen: SocketAddr,
    pub secret: String,
    pub tls: TlsConnector,
    pub server_name: rustls::pki_types::ServerName<'static>,
    /// Notified when no further session can succeed (the grant is over).
    pub ended: tokio::sync::Notify,
}

pub async fn open(
    ctx: &Ctx,
    kind: Kind,
    session_id: &str,
) -> anyhow::Result<(TunnelStream, handshake::Reply)> {
    let tcp = TcpStream::connect(&ctx.proxy)
        .await
        .with_context(|| format!("cannot reach the proxy at {}", ctx.proxy))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = ctx
        .tls
        .connect(ctx.server_name.clone(), ReadAhead::new(tcp))
        .await
        .context("TLS with the proxy failed (check --ca or --fingerprint)")?;
    let hello = Hello {
        kind,
        target: ctx.target.clone(),
        secret: ctx.secret.clone(),
        session_id: session_id.to_string(),
    };
    tls.write_all(&handshake::encode_hello(&hello)).await?;
    tls.flush().await?;
    let reply = handshake::read_reply(&mut tls)
        .await
        .context("the proxy did not answer the handshake")?;
    Ok((tls, reply))
}
