//! TLS towards a PostgreSQL target, with libpq's sslmode meanings:
//! `prefer` and `require` encrypt without checking the certificate (unless a
//! CA file is given), `verify-full` checks it against the CA file or the
//! system roots and checks the host name.

use crate::config::{Target, UpstreamTls};
use crate::tls::client::{verified_config, CertificateCheck};
use std::sync::Arc;

/// The client TLS config for a target, or None for `disable`.
pub fn client_config(t: &Target) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    let verify = t.upstream.tls == UpstreamTls::VerifyFull || t.upstream.ca_file.is_some();
    let cfg = match t.upstream.tls {
        UpstreamTls::Disable => return Ok(None),
        _ if verify => verified_config(t.upstream.ca_file.as_deref())?,
        _ => CertificateCheck::any().config()?,
    };
    Ok(Some(Arc::new(cfg)))
}
