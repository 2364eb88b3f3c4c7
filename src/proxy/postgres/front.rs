//! What every PostgreSQL connection shares: the control plane, TLS, the
//! cancel-key map and the failed-login limiter. Its own module so that the
//! login (`login`) and the session (`server`) both use it without importing
//! each other.

use super::cancel::CancelKeys;
use crate::grants::Grants;
use crate::proxy::limiter::AuthLimiter;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

pub struct PgFrontEnd {
    pub grants: Arc<Grants>,
    pub tls: Option<TlsAcceptor>,
    /// tls-server-end-point channel binding data (SHA-256 of our certificate).
    pub cert_hash: Vec<u8>,
    pub allow_plaintext: bool,
    pub cancels: Arc<CancelKeys>,
    pub limiter: AuthLimiter,
}
