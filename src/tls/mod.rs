//! TLS material: a configured certificate, or one generated under data_dir
//! on first start (0600), and its SHA-256 fingerprint that `jitgate connect
//! --fingerprint` pins. TLS 1.2 and 1.3 only, ring provider.

pub mod client;

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// `sha256:HEX` of the leaf certificate.
    pub fingerprint: String,
}

pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// Loads `cert`/`key`, or generates `<data_dir>/<stem>-cert.pem` and
/// `-key.pem` (self-signed for localhost and 127.0.0.1) when absent.
pub fn server_tls(
    data_dir: &Path,
    stem: &str,
    files: Option<(&Path, &Path)>,
) -> anyhow::Result<ServerTls> {
    let (cert_path, key_path) = match files {
        Some((c, k)) => (c.to_path_buf(), k.to_path_buf()),
        None => {
            let c = data_dir.join(format!("{stem}-cert.pem"));
            let k = data_dir.join(format!("{stem}-key.pem"));
            if !c.exists() || !k.exists() {
                let mut names = vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                    "::1".to_string(),
                ];
                if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
                    let h = h.trim().to_string();
                    if !h.is_empty() {
                        names.push(h);
                    }
                }
                let ck = rcgen::generate_simple_self_signed(names)
                    .context("generating a TLS certificate")?;
                let _ = std::fs::remove_file(&c);
                let _ = std::fs::remove_file(&k);
                write_private(&k, ck.key_pair.serialize_pem().as_bytes())?;
                write_private(&c, ck.cert.pem().as_bytes())?;
                tracing::info!(cert = %c.display(), "generated a self-signed TLS certificate");
            }
            (c, k)
        }
    };
    let cert_pem =
        std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem =
        std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", cert_path.display()))?;
    let fp = fingerprint(leaf.as_ref());
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing {}", key_path.display()))?
        .ok_or_else(|| anyhow::anyhow!("{} holds no private key", key_path.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("building the TLS server config")?;
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint: fp,
    })
}
