//! The three routes to the upstream server and what a client does on them.

use crate::stats::now_us;
use crate::TARGET;
use anyhow::ensure;
use jitgate::proxy::tcp::handshake::{self, Hello, Kind, Status};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Conn = Box<dyn Io>;

/// One way to reach the upstream server.
#[derive(Clone)]
pub enum Route {
    Direct {
        port: u16,
    },
    Haproxy {
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    },
    Jitgate {
        port: u16,
        tls: Arc<rustls::ClientConfig>,
        secret: String,
    },
}

pub async fn tcp(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub async fn tls_connect(
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let s = tcp(port).await?;
    Ok(tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, s)
        .await?)
}

/// Connects and, through jitgate, completes the tunnel handshake (OK reply).
pub async fn open(route: &Route) -> anyhow::Result<Conn> {
    match route {
        Route::Direct { port } => Ok(Box::new(tcp(*port).await?)),
        Route::Haproxy { port, tls } => Ok(Box::new(tls_connect(*port, tls).await?)),
        Route::Jitgate { port, tls, secret } => {
            let mut s = tls_connect(*port, tls).await?;
            let hello = Hello {
                kind: Kind::Connect,
                target: TARGET.into(),
                secret: secret.clone(),
                session_id: String::new(),
            };
            s.write_all(&handshake::encode_hello(&hello)).await?;
            s.flush().await?;
            let r = handshake::read_reply(&mut s).await?;
            ensure!(
                r.status == Status::Ok,
                "tunnel refused: {:?} {}",
                r.status,
                r.message
            );
            Ok(Box::new(s))
        }
    }
}

/// Starts echo mode tagged `idx` (u32::MAX: untracked) and checks one byte
/// comes back, so the session is known to be relaying end to end.
pub async fn echo_tagged(c: &mut Conn, idx: u32) -> anyhow::Result<()> {
    let mut m = [b'E', 0, 0, 0, 0, b'x'];
    m[1..5].copy_from_slice(&idx.to_be_bytes());
    c.write_all(&m).await?;
    c.flush().await?;
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await?;
    ensure!(b[0] == b'x', "echo returned {b:?}");
    Ok(())
}

/// Waits for EOF or a reset and returns the instant it was seen.
pub async fn wait_closed(c: &mut Conn) -> i64 {
    let mut b = [0u8; 64];
    loop {
        match c.read(&mut b).await {
            Ok(0) | Err(_) => return now_us(),
            Ok(_) => continue,
        }
    }
}

/// Protocol, cipher suite and key exchange a route negotiates.
pub async fn tls_params(port: u16, tls: &Arc<rustls::ClientConfig>) -> String {
    match tls_connect(port, tls).await {
        Ok(mut s) => {
            let c = s.get_ref().1;
            let p = format!(
                "{:?} {:?} {:?}",
                c.protocol_version(),
                c.negotiated_cipher_suite().map(|s| s.suite()),
                c.negotiated_key_exchange_group().map(|g| g.name())
            );
            let _ = s.shutdown().await;
            p
        }
        Err(e) => format!("handshake failed: {e:#}"),
    }
}
