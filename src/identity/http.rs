//! The HTTP client openidconnect calls for discovery, the JWKS and the token
//! endpoint: hyper over TCP, rustls for https (the system's roots, or
//! `ca_file`), no redirects followed, bounded in time and size.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// One IdP exchange may take this long, connect included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents, key sets and token responses are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad IdP URL {0}")]
    Url(String),
    #[error("cannot reach the IdP: {0}")]
    Connect(std::io::Error),
    #[error("TLS with the IdP failed: {0}")]
    Tls(String),
    #[error("HTTP with the IdP failed: {0}")]
    Http(String),
    #[error("the IdP did not answer within {0:?}")]
    Timeout(Duration),
}

#[derive(Clone)]
pub struct IdpHttp {
    tls: Arc<rustls::ClientConfig>,
}

impl IdpHttp {
    pub fn new(ca_file: Option<&PathBuf>) -> Result<IdpHttp, HttpError> {
        let cfg = crate::tls::client::verified_config(ca_file.map(|p| p.as_path()))
            .map_err(|e| HttpError::Tls(e.to_string()))?;
        Ok(IdpHttp { tls: Arc::new(cfg) })
    }

    async fn exchange(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = req.uri().clone();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(HttpError::Url(uri.to_string())),
        };
        let host = uri
            .host()
            .ok_or_else(|| HttpError::Url(uri.to_string()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| HttpError::Url(uri.to_string()))?;
        let path = uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into());
        let (parts, body) = req.into_parts();
        let mut out = hyper::Request::builder()
            .method(parts.method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONNECTION, "close")
            .header(
                hyper::header::USER_AGENT,
                concat!("jitgate/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in parts.headers.iter() {
            out = out.header(k, v);
        }
        let out = out
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Http(e.to_string()))?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(HttpError::Connect)?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| HttpError::Url(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Tls(e.to_string()))?;
            send(TokioIo::new(tls), out).await
        } else {
            send(TokioIo::new(tcp), out).await
        }
    }
}

async fn send<IO>(
    io: TokioIo<IO>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<HttpResponse, HttpError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| HttpError::Http(e.to_string()))?;
    // Ends with the exchange; aborted below so nothing outlives the call.
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| HttpError::Http(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| HttpError::Http(e.to_string()))?
            .to_bytes();
        let mut out = hyper::http::Response::builder().status(parts.status);
        for (k, v) in parts.headers.iter() {
            out = out.header(k, v);
        }
        out.body(body.to_vec())
            .map_err(|e| HttpError::Http(e.to_string()))
    }
    .await;
    driver.abort();
    result
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            match tokio::time::timeout(TIMEOUT, self.exchange(request)).await {
                Ok(r) => r,
                Err(_) => Err(HttpError::Timeout(TIMEOUT)),
            }
        })
    }
}
