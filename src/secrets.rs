//! API tokens and connect secrets: generation, verifiers, constant-time checks.
//!
//! Both are 256-bit random values, so a single SHA-256 is a sufficient
//! verifier (no password stretching needed for non-guessable secrets). The
//! connect secret also gets a SCRAM-SHA-256 verifier, because PostgreSQL
//! clients authenticate with SCRAM and the proxy must never hold the secret.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn random_b64(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// A new admin API token (`jgt_...`).
pub fn new_api_token() -> String {
    random_b64("jgt_")
}

/// A new connect secret (`jgs_...`); shown once, stored only as verifiers.
pub fn new_connect_secret() -> String {
    random_b64("jgs_")
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// PostgreSQL-format SCRAM-SHA-256 verifier of a connect secret.
pub fn scram_verifier(secret: &str) -> String {
    postgres_protocol::password::scram_sha_256(secret.as_bytes())
}

/// SHA-256 of the demo tokens in config/jitgate.toml; the daemon warns when
/// any user still has one.
pub const DEMO_TOKEN_HASHES: &[&str] = &[
    "68875aff14f69bdb18f379817af5010aae81fc54e1abbe0e3d2459caf6ada530",
    "6b18c8062a2541429d611382f08fb89b1d333cfa11614bbb451cfa28cec157d5",
    "8171788b0600bd696602715ce02de6c551c61d9b949c87fa34ed90ee5d220123",
    "07f35182ad771364ce43bc9cd541af5e7123d87f615a6008692c9072e8a3f0c1",
];
