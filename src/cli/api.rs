//! A minimal admin-API client on hyper (HTTP/1.1, optionally TLS), with
//! errors phrased for the person at the terminal.

use super::ApiArgs;
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::Arc;
use tokio::net::TcpStream;

pub struct Api {
    scheme_https: bool,
    host: String,
    port: u16,
    base_path: String,
    token: Option<String>,
    ca: Option<std::path::PathBuf>,
    pub url: String,
}

/// An API answer that is not 2xx, kept typed so commands can decide exit codes.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {}{hint}", crate::text::escape(.message))]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    hint: &'static str,
}

impl Api {
    pub fn new(args: &ApiArgs) -> anyhow::Result<Api> {
        let url = args.url.trim_end_matches('/').to_string();
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("JITGATE_URL must start with http:// or https:// (got {url:?})");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().with_context(|| format!("bad port in {url}"))?,
            ),
            _ => (authority.to_string(), if https { 443 } else { 80 }),
        };
        Ok(Api {
            scheme_https: https,
            host,
            port,
            base_path: path.to_string(),
            token: args.token.clone(),
            ca: args.ca.clone(),
            url,
        })
    }

    /// The admin URL's host (no brackets for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        // The sign-in routes (/auth/*) take no token: they make one.
        let token = match self.token.as_deref() {
            Some(t) => Some(t),
            None if path.starts_with("/auth/") => None,
            None => {
                return Err(anyhow!(
                    "no API token: run `jitgate login`, or set JITGATE_TOKEN (or pass --token)"
                ))
            }
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| {
            anyhow!("cannot reach jitgate at {}: {e} (is the daemon running? is JITGATE_URL right?)", self.url)
        })?;
        let body_bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base_path, path))
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port));
        if let Some(token) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("jitgate-cli/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body_bytes)))?;
        let (status, bytes) = if self.scheme_https {
            let tls = self.tls(tcp).await?;
            send(TokioIo::new(tls), req).await?
        } else {
            send(TokioIo::new(tcp), req)
                .await
                .map_err(|e| not_http(&self.url, e))?
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let code = v["error"]["code"].as_str().unwrap_or("").to_string();
        let message = v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        let signed_in = self.token.as_deref().is_some_and(|t| t.starts_with("jgs_"));
        let hint = match status {
            // A sign-in token that ended (session_ttl, logout, a lock).
            StatusCode::UNAUTHORIZED if signed_in => {
                " (your sign-in has ended: run `jitgate login` again)"
            }
            StatusCode::UNAUTHORIZED => " (check JITGATE_TOKEN)",
            _ => "",
        };
        Err(ApiFailure {
            status,
            code,
            message,
            hint,
        }
        .into())
    }

    /// A GET whose body is read as it arrives (a recording, a live
    /// stream); a non-2xx answer is an error as for `get`.
    pub async fn get_stream(&self, path: &str) -> anyhow::Result<hyper::body::Incoming> {
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| anyhow!("no API token: set JITGATE_TOKEN (or pass --token)"))?;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| anyhow!("cannot reach jitgate at {}: {e}", self.url))?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{}", self.base_path, path))
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?;
        let resp = if self.scheme_https {
            open(TokioIo::new(self.tls(tcp).await?), req).await?
        } else {
            open(TokioIo::new(tcp), req).await?
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let bytes = resp.into_body().collect().await?.to_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(ApiFailure {
            status,
            code: v["error"]["code"].as_str().unwrap_or("").to_string(),
            message: v["error"]["message"].as_str().unwrap_or("").to_string(),
            hint: "",
        }
        .into())
    }

    async fn tls(
        &self,
        tcp: TcpStream,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading CA file {}", path.display()))?;
                for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                    roots.add(c?)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())?;
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| tls_failed(&self.url, e))
    }
}

/// A failed TLS handshake, said in terms of what to change. The usual cause
/// is an https:// URL for a plain-HTTP admin port: the first bytes back are
/// an HTTP answer, which rustls reports as a corrupt TLS record.
fn tls_failed(url: &str, e: std::io::Error) -> anyhow::Error {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidMessage(_)) => anyhow!(
            "{url} did not answer in TLS: this admin port seems to speak plain HTTP; \
             use an http:// URL (or set tls_cert and tls_key under [admin])"
        ),
        Some(rustls::Error::InvalidCertificate(c)) => anyhow!(
            "{url}: the server's certificate is not trusted ({c:?}); \
             pass the CA that signed it with --ca or JITGATE_CA"
        ),
        _ => anyhow!("TLS handshake with {url} failed: {e}"),
    }
}

/// A plain-HTTP exchange that got no HTTP answer: a TLS admin port reads the
/// request as a corrupt TLS record and answers with an alert or a close.
fn not_http(url: &str, e: anyhow::Error) -> anyhow::Error {
    let garbled = e.chain().any(|c| {
        c.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_parse() || h.is_incomplete_message())
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
    });
    if garbled {
        anyhow!(
            "{url} did not answer in HTTP: if this admin port uses TLS, use an https:// URL \
             (with --ca or JITGATE_CA for a private CA)"
        )
    } else {
        e
    }
}

async fn send<IO>(io: TokioIo<IO>, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .context("sending the API request")?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}

async fn open<IO>(
    io: TokioIo<IO>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .context("sending the API request")
}
