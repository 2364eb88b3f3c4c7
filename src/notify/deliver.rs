//! One webhook POST over a fresh HTTP/1.1 connection (plain, or TLS against
//! the webpki roots), bounded as a whole by the receiver's timeout.
//!
//! Only the response head is read: a 2xx status is success; anything else,
//! redirects included, is a failure to retry. A connection per delivery
//! keeps a hung or misbehaving receiver from affecting the next attempt.

use super::sign;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("bad receiver url: {0}")]
    BadUrl(String),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("receiver answered HTTP {0}")]
    Status(u16),
}

/// What is sent; the signature is computed here from `body`.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub event: &'a str,
    pub event_id: &'a str,
    pub body: &'a str,
    pub secret: Option<&'a [u8]>,
}

struct Endpoint {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

fn endpoint(url: &str) -> Result<Endpoint, DeliveryError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| DeliveryError::BadUrl(e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(DeliveryError::BadUrl("scheme must be http or https".into())),
    };
    let auth = uri
        .authority()
        .ok_or_else(|| DeliveryError::BadUrl("no host".into()))?;
    Ok(Endpoint {
        https,
        host: auth.host().trim_matches(['[', ']']).to_string(),
        port: auth.port_u16().unwrap_or(if https { 443 } else { 80 }),
        authority: auth.as_str().to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    })
}

/// Scheme and authority only: webhook paths often embed a token (Slack,
/// Teams), so logs never carry them.
pub fn redact(url: &str) -> String {
    match endpoint(url) {
        Ok(e) => format!(
            "{}://{}",
            if e.https { "https" } else { "http" },
            e.authority
        ),
        Err(_) => "<invalid url>".into(),
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, DeliveryError> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DeliveryError::Tls(std::io::Error::other(e)))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(cfg)).clone())
}

/// Returns the receiver's 2xx status, or why the delivery failed.
pub async fn post(d: &Delivery<'_>, timeout: Duration) -> Result<u16, DeliveryError> {
    match tokio::time::timeout(timeout, exchange(d)).await {
        Ok(r) => r,
        Err(_) => Err(DeliveryError::Timeout(timeout)),
    }
}

async fn exchange(d: &Delivery<'_>) -> Result<u16, DeliveryError> {
    let ep = endpoint(d.url)?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&ep.path)
        .header(hyper::header::HOST, &ep.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("jitgate/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .header("x-jitgate-event", d.event)
        .header("x-jitgate-delivery", d.event_id);
    if let Some(secret) = d.secret {
        req = req.header(sign::HEADER, sign::signature(secret, d.body.as_bytes()));
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(d.body.as_bytes())))
        .map_err(|e| DeliveryError::BadUrl(e.to_string()))?;
    let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(DeliveryError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let status = if ep.https {
        let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
            .map_err(|e| DeliveryError::BadUrl(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(DeliveryError::Tls)?;
        send(TokioIo::new(tls), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(DeliveryError::Status(status))
    }
}

async fn send<IO>(io: TokioIo<IO>, req: Request<Full<Bytes>>) -> Result<u16, DeliveryError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // The connection task ends when the exchange does, or is dropped with
    // the runtime; the caller's timeout bounds the wait for the head.
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = sender.send_request(req).await;
    driver.abort();
    Ok(result?.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_see_the_path() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            redact("http://127.0.0.1:9000/x?t=1"),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn ports_default_by_scheme() {
        assert_eq!(endpoint("https://h/x").map(|e| e.port).ok(), Some(443));
        let e = endpoint("http://[::1]:81").ok();
        assert_eq!(e.as_ref().map(|e| e.host.as_str()), Some("::1"));
        assert_eq!(e.as_ref().map(|e| e.path.as_str()), Some("/"));
    }
}
