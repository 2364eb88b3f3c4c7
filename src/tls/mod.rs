//! TLS material: a configured certificate, or one generated under data_dir
//! (0600, renewed at start when near its end; see `generate`), its SHA-256
//! fingerprint that `jitgate connect --fingerprint` pins, and the PEM a
//! client trusts (`GET /v1/whoami` hands it out). TLS 1.2 and 1.3 only,
//! ring provider.

pub mod client;
pub mod generate;

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("generating a TLS certificate: {0}")]
    Generate(String),
    #[error("building the TLS server config: {0}")]
    Config(#[from] rustls::Error),
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// `sha256:HEX` of the leaf certificate.
    pub fingerprint: String,
    /// The certificates as served (leaf first, then any chain), PEM: what a
    /// client of a self-signed or privately issued certificate trusts.
    pub cert_pem: String,
}

/// Where the certificate comes from.
pub enum Source<'a> {
    /// Operator's files, used as they are.
    Files { cert: &'a Path, key: &'a Path },
    /// `<data_dir>/<stem>-cert.pem` and `-key.pem`, made by jitgate for the
    /// instance's name and the listener's address.
    Generated {
        data_dir: &'a Path,
        stem: &'a str,
        instance: &'a str,
        listen: Option<IpAddr>,
    },
}

pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Writes a new file with mode 0600 and moves it over `path`, so a reader
/// never sees half a key and the key is never readable by others.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(data).and_then(|_| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub fn server_tls(source: Source<'_>) -> Result<ServerTls, TlsError> {
    let (cert_path, key_path) = match source {
        Source::Files { cert, key } => (cert.to_path_buf(), key.to_path_buf()),
        Source::Generated {
            data_dir,
            stem,
            instance,
            listen,
        } => {
            let c = data_dir.join(format!("{stem}-cert.pem"));
            let k = data_dir.join(format!("{stem}-key.pem"));
            generate::ensure(&c, &k, instance, listen)?;
            (c, k)
        }
    };
    let parse = |path: &Path, reason: String| TlsError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| parse(&cert_path, e.to_string()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| parse(&cert_path, "holds no certificate".into()))?;
    let fp = fingerprint(leaf.as_ref());
    let served_pem = pem_certificates(&certs);
    generate::warn_if_ending(&cert_path, &cert_pem);
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| parse(&key_path, e.to_string()))?
        .ok_or_else(|| parse(&key_path, "holds no private key".into()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint: fp,
        cert_pem: served_pem,
    })
}

/// The certificates alone, re-encoded: the file may hold more (comments, or
/// even the private key when an operator keeps both in one file), and this
/// text is handed to every signed-in user.
fn pem_certificates(certs: &[rustls::pki_types::CertificateDer<'_>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for c in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
