//! The proxy's own connection to a PostgreSQL target, with the target's
//! credential: SSL negotiation per the target's `tls` mode, startup with the
//! engineer's parameters (user replaced, application_name tagged), and
//! SCRAM-SHA-256 (with channel binding when offered over TLS; the server's
//! signature is always verified), md5 or cleartext password.

use super::codec::{self, CodecError, MAX_AUTH_MESSAGE, SSL_REQUEST};
use super::scram_client::{Binding, ScramClient};
use super::stream::PgStream;
use super::upstream_tls;
use crate::config::{Target, UpstreamTls};
use crate::relay::readahead::ReadAhead;
use bytes::BytesMut;
use postgres_protocol::authentication::sasl;
use postgres_protocol::message::frontend;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {0}")]
    Connect(String),
    #[error("{0}")]
    Tls(String),
    /// The target refused the login; the fields are the server's ErrorResponse.
    #[error("{}", message_of(.0))]
    Rejected(Vec<(u8, String)>),
    #[error("target authentication failed: {0}")]
    Auth(String),
    #[error("target protocol error: {0}")]
    Protocol(#[from] CodecError),
    #[error("target did not finish the login within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
}

fn message_of(fields: &[(u8, String)]) -> String {
    let get = |t: u8| fields.iter().find(|f| f.0 == t).map(|f| f.1.as_str());
    format!(
        "the target refused the login: {} ({})",
        get(b'M').unwrap_or("no message"),
        get(b'C').unwrap_or("no code")
    )
}

impl UpstreamError {
    /// The target's SQLSTATE, passed through to the engineer where it helps
    /// (a missing database is 3D000 either way).
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            UpstreamError::Rejected(f) => f.iter().find(|x| x.0 == b'C').map(|x| x.1.as_str()),
            _ => None,
        }
    }
}

/// Where and how to send a CancelRequest for this connection's backend.
#[derive(Clone)]
pub struct CancelTarget {
    pub address: String,
    pub tls: Option<(Arc<rustls::ClientConfig>, UpstreamTls)>,
    pub pid: i32,
    pub key: [u8; 4],
}

pub struct Upstream {
    pub stream: PgStream,
    pub parameters: Vec<(String, String)>,
    pub cancel: CancelTarget,
}

fn host_of(address: &str) -> String {
    address
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(address)
        .trim_matches(['[', ']'])
        .to_string()
}

/// TCP connect plus SSL negotiation as the target's mode asks.
async fn open(
    address: &str,
    tls: &Option<(Arc<rustls::ClientConfig>, UpstreamTls)>,
) -> Result<(PgStream, Option<Vec<u8>>), UpstreamError> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| UpstreamError::Connect(format!("{address}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let Some((cfg, mode)) = tls else {
        return Ok((PgStream::Plain(tcp), None));
    };
    let mut tcp = tcp;
    let mut req = Vec::with_capacity(8);
    req.extend_from_slice(&8i32.to_be_bytes());
    req.extend_from_slice(&SSL_REQUEST.to_be_bytes());
    tcp.write_all(&req).await.map_err(CodecError::from)?;
    // One byte, unbuffered: nothing the server sends after it may be read
    // as plaintext (CVE-2021-23222).
    match tcp.read_u8().await.map_err(CodecError::from)? {
        b'S' => {
            let name = rustls::pki_types::ServerName::try_from(host_of(address))
                .map_err(|e| UpstreamError::Tls(format!("invalid host name: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, ReadAhead::new(tcp))
                .await
                .map_err(|e| UpstreamError::Tls(format!("TLS with the target failed: {e}")))?;
            let hash = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::secrets::sha256(c.as_ref()).to_vec());
            Ok((
                PgStream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))),
                hash,
            ))
        }
        b'N' if *mode == UpstreamTls::Prefer => Ok((PgStream::Plain(tcp), None)),
        b'N' => Err(UpstreamError::Tls(
            "the target does not support TLS but its tls mode requires it".into(),
        )),
        other => Err(UpstreamError::Tls(format!(
            "unexpected answer {other:#x} to SSLRequest"
        ))),
    }
}

/// Connects and logs in; returns once the target is ready for queries.
pub async fn connect(
    target: &Target,
    params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(target, params))
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

async fn connect_inner(
    target: &Target,
    params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let tls = upstream_tls::client_config(target)
        .map_err(|e| UpstreamError::Tls(format!("target TLS settings: {e:#}")))?
        .map(|c| (c, target.upstream.tls));
    let (mut s, cert_hash) = open(&target.address, &tls).await?;
    let user = target.upstream.user.clone().unwrap_or_default();
    let password = target
        .upstream
        .password_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok());
    let mut buf = BytesMut::new();
    let mut startup: Vec<(&str, &str)> = vec![("user", user.as_str())];
    startup.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    frontend::startup_message(startup, &mut buf).map_err(CodecError::from)?;
    s.write_all(&buf).await.map_err(CodecError::from)?;

    let mut scram: Option<ScramClient> = None;
    let mut authenticated = false;
    let mut parameters = Vec::new();
    let mut key = None;
    loop {
        let (tag, body) = codec::read_message(&mut s, MAX_AUTH_MESSAGE).await?;
        buf.clear();
        match tag {
            b'R' => {
                let code = body
                    .get(..4)
                    .map(|c| i32::from_be_bytes(c.try_into().expect("4 bytes")))
                    .ok_or(CodecError::Malformed("authentication request"))?;
                let data = &body[4..];
                let need_pw = || {
                    password.clone().ok_or_else(|| {
                        UpstreamError::Auth("the target asks for a password and none is configured (upstream.password_env)".into())
                    })
                };
                match code {
                    0 => {
                        if scram.is_some() {
                            return Err(UpstreamError::Auth(
                                "the target skipped the SCRAM server signature".into(),
                            ));
                        }
                        authenticated = true;
                    }
                    3 => frontend::password_message(need_pw()?.as_bytes(), &mut buf)
                        .map_err(CodecError::from)?,
                    5 => {
                        let salt: [u8; 4] = data
                            .try_into()
                            .map_err(|_| CodecError::Malformed("md5 salt"))?;
                        let h = postgres_protocol::authentication::md5_hash(
                            user.as_bytes(),
                            need_pw()?.as_bytes(),
                            salt,
                        );
                        frontend::password_message(h.as_bytes(), &mut buf)
                            .map_err(CodecError::from)?;
                    }
                    10 => {
                        let mechs: Vec<&str> = data
                            .split(|&b| b == 0)
                            .filter(|m| !m.is_empty())
                            .filter_map(|m| std::str::from_utf8(m).ok())
                            .collect();
                        let plus = mechs.contains(&sasl::SCRAM_SHA_256_PLUS);
                        let (binding, mech) = match (&cert_hash, plus) {
                            (Some(h), true) => (
                                Binding::TlsServerEndPoint(h.clone()),
                                sasl::SCRAM_SHA_256_PLUS,
                            ),
                            (Some(_), false) => (Binding::Unrequested, sasl::SCRAM_SHA_256),
                            (None, _) => (Binding::Unsupported, sasl::SCRAM_SHA_256),
                        };
                        if !plus && !mechs.contains(&sasl::SCRAM_SHA_256) {
                            return Err(UpstreamError::Auth(format!(
                                "no supported SASL mechanism among {mechs:?}"
                            )));
                        }
                        let scope = format!("{}\0{user}", target.name);
                        let sc = ScramClient::new(&scope, need_pw()?.as_bytes(), binding);
                        frontend::sasl_initial_response(mech, sc.message(), &mut buf)
                            .map_err(CodecError::from)?;
                        scram = Some(sc);
                    }
                    11 => {
                        let sc = scram
                            .as_mut()
                            .ok_or(CodecError::Malformed("unexpected SASL continue"))?;
                        sc.update(data)
                            .await
                            .map_err(|e| UpstreamError::Auth(e.to_string()))?;
                        frontend::sasl_response(sc.message(), &mut buf)
                            .map_err(CodecError::from)?;
                    }
                    12 => {
                        let mut sc = scram
                            .take()
                            .ok_or(CodecError::Malformed("unexpected SASL final"))?;
                        // Verifies the server signature: a server that does
                        // not know the password cannot pass.
                        sc.finish(data)
                            .map_err(|e| UpstreamError::Auth(e.to_string()))?;
                    }
                    other => {
                        return Err(UpstreamError::Auth(format!(
                            "unsupported authentication method {other}"
                        )))
                    }
                }
                if !buf.is_empty() {
                    s.write_all(&buf).await.map_err(CodecError::from)?;
                }
            }
            b'E' => return Err(UpstreamError::Rejected(codec::error_fields(&body))),
            b'S' => {
                let (name, rest) =
                    codec::cstr(&body).ok_or(CodecError::Malformed("parameter status"))?;
                let (value, _) =
                    codec::cstr(rest).ok_or(CodecError::Malformed("parameter status"))?;
                parameters.push((name.to_string(), value.to_string()));
            }
            b'K' => {
                if body.len() != 8 {
                    return Err(CodecError::Malformed("backend key data").into());
                }
                let pid = i32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
                key = Some((pid, <[u8; 4]>::try_from(&body[4..8]).expect("4 bytes")));
            }
            b'N' | b'v' => {}
            b'Z' if authenticated => {
                let (pid, key) = key.ok_or(CodecError::Malformed("no backend key data"))?;
                return Ok(Upstream {
                    stream: s,
                    parameters,
                    cancel: CancelTarget {
                        address: target.address.clone(),
                        tls,
                        pid,
                        key,
                    },
                });
            }
            other => {
                return Err(CodecError::Unexpected {
                    expected: "login response",
                    got: other as char,
                }
                .into())
            }
        }
    }
}

/// Asks the target to cancel whatever the backend is running. Waits for the
/// server to close the cancel connection, which it does once the request
/// has been delivered to the backend.
pub async fn cancel(t: &CancelTarget) -> Result<(), UpstreamError> {
    let (mut s, _) = open(&t.address, &t.tls).await?;
    let mut buf = BytesMut::new();
    frontend::cancel_request(t.pid, i32::from_be_bytes(t.key), &mut buf);
    s.write_all(&buf).await.map_err(CodecError::from)?;
    s.flush().await.map_err(CodecError::from)?;
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut sink)).await;
    Ok(())
}
