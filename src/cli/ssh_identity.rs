//! The SSH identity a client keeps per server: an ed25519 key pair and a
//! certificate for it from the server's user CA (`POST /v1/ssh/certificate`),
//! under the server's directory (`client_dir`). `jitgate ssh` calls
//! [`ensure`] before each connection; `jitgate login` calls it after
//! signing in, so the first `jitgate ssh` needs no round trip.
//!
//! Invariants: the private key never leaves this machine (only its public
//! half is sent), and is written 0600; a certificate is reused only while
//! it is for this key, signed by the server's current CA and valid for at
//! least [`RENEW_BEFORE`] more; otherwise a new one is fetched.

use super::api::Api;
use super::client_dir::ServerDir;
use anyhow::{anyhow, Context};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, Certificate, PrivateKey, PublicKey};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// A certificate ending sooner than this is renewed: a session started
/// on it should not need a new one minutes later.
pub const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

pub const KEY_FILE: &str = "id_ed25519";
pub const CERT_FILE: &str = "id_ed25519-cert.pub";

/// The files ssh takes as `IdentityFile` and `CertificateFile`.
pub struct Identity {
    pub key: PathBuf,
    pub certificate: PathBuf,
    /// Unix seconds.
    pub valid_before: u64,
}

/// Makes sure the server at `api` has a key pair and a fresh certificate
/// here; reads the server's CA from `whoami`.
pub async fn ensure(api: &Api) -> anyhow::Result<Identity> {
    let dir = ServerDir::for_url(&api.url)?;
    let who = api.get("/v1/whoami").await?;
    let ca = who["ssh_user_ca"]
        .as_str()
        .ok_or_else(|| anyhow!("this jitgate has no SSH listener, so no SSH certificate"))?;
    ensure_in(api, &dir, ca).await
}

/// [`ensure`] with the directory and the CA's public key line known.
pub async fn ensure_in(api: &Api, dir: &ServerDir, ca_line: &str) -> anyhow::Result<Identity> {
    let ca = PublicKey::from_openssh(ca_line.trim())
        .map_err(|e| anyhow!("the server's SSH user CA key is not readable: {e}"))?;
    let key = key_pair(dir)?;
    let public = key.public_key().clone();
    let certificate = dir.file(CERT_FILE);
    let now = (crate::clock::now_ms() / 1000).max(0) as u64;
    if let Some(valid_before) = reusable(&certificate, &public, &ca, now) {
        return Ok(Identity {
            key: dir.file(KEY_FILE),
            certificate,
            valid_before,
        });
    }
    let line = public
        .to_openssh()
        .map_err(|e| anyhow!("encoding the public key: {e}"))?;
    let r = api
        .post("/v1/ssh/certificate", json!({ "public_key": line }))
        .await?;
    let text = r["certificate"]
        .as_str()
        .ok_or_else(|| anyhow!("the server's answer holds no certificate"))?;
    let cert = Certificate::from_openssh(text.trim())
        .map_err(|e| anyhow!("the server's certificate is not readable: {e}"))?;
    let certificate = dir.write_private(CERT_FILE, format!("{}\n", text.trim()).as_bytes())?;
    Ok(Identity {
        key: dir.file(KEY_FILE),
        certificate,
        valid_before: cert.valid_before(),
    })
}

/// The key pair under `dir`, made on first use.
fn key_pair(dir: &ServerDir) -> anyhow::Result<PrivateKey> {
    let path = dir.file(KEY_FILE);
    if path.exists() {
        return russh::keys::load_secret_key(&path, None)
            .with_context(|| format!("loading {}", path.display()));
    }
    let key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
        .map_err(|e| anyhow!("generating an SSH key: {e}"))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| anyhow!("encoding the SSH key: {e}"))?;
    dir.write_private(KEY_FILE, text.as_bytes())?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| anyhow!("encoding the public key: {e}"))?;
    dir.write_private(&format!("{KEY_FILE}.pub"), format!("{public}\n").as_bytes())?;
    Ok(key)
}

/// The end of the saved certificate when it can be used as it is.
fn reusable(path: &std::path::Path, key: &PublicKey, ca: &PublicKey, now: u64) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let cert = Certificate::from_openssh(text.trim()).ok()?;
    let fresh = cert.public_key() == key.key_data()
        && cert.signature_key() == ca.key_data()
        && cert.valid_after() <= now
        && cert.valid_before() > now.saturating_add(RENEW_BEFORE.as_secs());
    fresh.then_some(cert.valid_before())
}
