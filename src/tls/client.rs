//! Client-side TLS shared by `jitgate connect` and the PostgreSQL upstream:
//! trust roots from a CA file or the system's, and the one custom
//! certificate check the project needs (a pinned fingerprint, or libpq's
//! "encrypt but do not authenticate"). Handshake signatures are verified
//! in every case.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub struct CertificateCheck {
    /// `sha256:HEX` of the only certificate accepted; None accepts any.
    pinned: Option<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl CertificateCheck {
    pub fn pinned(fingerprint: String) -> CertificateCheck {
        CertificateCheck {
            pinned: Some(fingerprint),
            provider: super::provider(),
        }
    }

    /// Encryption without authentication of the server (libpq's `require`).
    pub fn any() -> CertificateCheck {
        CertificateCheck {
            pinned: None,
            provider: super::provider(),
        }
    }

    pub fn config(self) -> anyhow::Result<rustls::ClientConfig> {
        Ok(builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for CertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(expected) = &self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = super::fingerprint(end_entity.as_ref());
        if got.eq_ignore_ascii_case(expected) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {got} does not match the pinned {expected}"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn builder() -> anyhow::Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>> {
    Ok(
        rustls::ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()?,
    )
}

/// A config checking the server against `ca` (a PEM file) or the system's
/// roots, host name included.
pub fn verified_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("reading CA file {}: {e}", path.display()))?;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(c?)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
