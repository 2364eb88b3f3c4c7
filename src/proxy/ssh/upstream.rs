//! The proxy's SSH connection to a target: its host key pinned (a mismatch
//! refuses the connection and logs both fingerprints), logged in with the
//! target's credential, which the engineer never sees.

use super::keys;
use super::socket::Killable;
use crate::config::Target;
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {0}")]
    Connect(String),
    #[error("the target's host key {got} does not match the pinned {expected}")]
    HostKeyMismatch { got: String, expected: String },
    #[error("the target refused the proxy's credential")]
    AuthRejected,
    #[error("target misconfigured: {0}")]
    Config(String),
    #[error("ssh with the target failed: {0}")]
    Ssh(#[from] russh::Error),
    #[error("the target did not finish the login within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
}

pub struct Pinned {
    expected: PublicKey,
    /// The key the target presented, when it did not match.
    mismatch: Arc<std::sync::Mutex<Option<String>>>,
    /// Cancels `Upstream::closed` when russh drops the handler, which it
    /// does when the connection's session loop ends.
    _closed: tokio_util::sync::DropGuard,
}

/// The proxy's logged-in connection to a target.
pub struct Upstream {
    pub handle: client::Handle<Pinned>,
    /// Cancelled once the connection to the target has ended.
    pub closed: CancellationToken,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let ok = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => keys::same_key(key, &self.expected),
            PublicKeyOrCertificate::Certificate(_) => false,
        };
        if !ok {
            let got = match key {
                PublicKeyOrCertificate::PublicKey { key, .. } => keys::fingerprint(key),
                PublicKeyOrCertificate::Certificate(_) => "a certificate".to_string(),
            };
            if let Ok(mut m) = self.mismatch.lock() {
                *m = Some(got);
            }
        }
        Ok(ok)
    }
}

fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        // The grant bounds the session; keepalives notice a dead target.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        preferred: keys::modern_algorithms(false),
        ..Default::default()
    })
}

/// Connects and logs in; the socket dies with `kill`.
pub async fn connect(t: &Target, kill: &CancellationToken) -> Result<Upstream, UpstreamError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(t, kill))
        .await
        .map_err(|_| UpstreamError::Timeout)?
}

async fn connect_inner(t: &Target, kill: &CancellationToken) -> Result<Upstream, UpstreamError> {
    let expected = t
        .host_key
        .as_deref()
        .and_then(keys::public_key)
        .ok_or_else(|| UpstreamError::Config("no valid pinned host_key".into()))?;
    let user = t
        .upstream
        .user
        .clone()
        .ok_or_else(|| UpstreamError::Config("no upstream.user".into()))?;
    let tcp = TcpStream::connect(&t.address)
        .await
        .map_err(|e| UpstreamError::Connect(format!("{}: {e}", t.address)))?;
    let _ = tcp.set_nodelay(true);
    let mismatch = Arc::new(std::sync::Mutex::new(None));
    let closed = CancellationToken::new();
    let handler = Pinned {
        expected: expected.clone(),
        mismatch: mismatch.clone(),
        _closed: closed.clone().drop_guard(),
    };
    let mut h =
        match client::connect_stream(client_config(), Killable::new(tcp, kill), handler).await {
            Ok(h) => h,
            Err(e) => {
                if let Some(got) = mismatch.lock().ok().and_then(|m| m.clone()) {
                    return Err(UpstreamError::HostKeyMismatch {
                        got,
                        expected: keys::fingerprint(&expected),
                    });
                }
                return Err(e.into());
            }
        };
    let ok = if let Some(path) = &t.upstream.key_file {
        let key = russh::keys::load_secret_key(path, None)
            .map_err(|e| UpstreamError::Config(format!("key_file {}: {e}", path.display())))?;
        let hash = h.best_supported_rsa_hash().await?.flatten();
        h.authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await?
            .success()
    } else if let Some(var) = &t.upstream.password_env {
        let pw = std::env::var(var)
            .map_err(|_| UpstreamError::Config(format!("environment variable {var} is not set")))?;
        h.authenticate_password(user, pw).await?.success()
    } else {
        return Err(UpstreamError::Config("no upstream credential".into()));
    };
    if !ok {
        return Err(UpstreamError::AuthRejected);
    }
    Ok(Upstream { handle: h, closed })
}
