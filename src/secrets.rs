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

/// The prefix of connect secrets issued now. SPEC gives `jgs_` to sign-in
/// tokens; connect secrets issued before carry `jgs_` too and stay valid:
/// a connect secret is found by its hash (or checked by SCRAM), the prefix
/// only being part of the hashed text, and nothing reads it.
pub const CONNECT_SECRET_PREFIX: &str = "jgc_";

/// A new connect secret (`jgc_...`); shown once, stored only as verifiers.
pub fn new_connect_secret() -> String {
    random_b64(CONNECT_SECRET_PREFIX)
}

/// Lowercase hex of the SHA-256 of `s`: how tokens and codes are stored.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(sha256(s.as_bytes()))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// PostgreSQL-format SCRAM-SHA-256 verifier of a connect secret, with a
/// fresh random salt.
pub fn scram_verifier(secret: &str) -> String {
    postgres_protocol::password::scram_sha_256(secret.as_bytes())
}

/// HMAC-SHA-256, as SCRAM uses it on both sides.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // An HMAC key of any length is accepted.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Hi() of RFC 5802: PBKDF2-HMAC-SHA-256 for one 32-byte block, the
/// salted password of SCRAM-SHA-256.
pub fn scram_hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &block);
    let mut salted = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    salted
}

/// Iterations of the verifiers made by `scram_verifier_with_salt`, as
/// PostgreSQL's default.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// A SCRAM-SHA-256 verifier of `secret` under a given salt. The secrets of
/// one grant share their grant's salt: a PostgreSQL client names the user
/// and target, not which secret it holds, and the server sends one salt
/// before the client proves anything, so only verifiers under that salt can
/// check the proof.
pub fn scram_verifier_with_salt(secret: &str, salt: &[u8]) -> String {
    let mac = hmac_sha256;
    let salted = scram_hi(secret.as_bytes(), salt, SCRAM_ITERATIONS);
    let client_key = mac(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let server_key = mac(&salted, b"Server Key");
    let b64 = &base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

/// The salt of a PostgreSQL-format SCRAM-SHA-256 verifier.
pub fn scram_salt(verifier: &str) -> Option<Vec<u8>> {
    let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, _) = rest.split_once('$')?;
    let (_, salt) = iter_salt.split_once(':')?;
    base64::engine::general_purpose::STANDARD.decode(salt).ok()
}

/// SHA-256 of the demo tokens in config/jitgate.toml; the daemon warns when
/// any user still has one.
pub const DEMO_TOKEN_HASHES: &[&str] = &[
    "68875aff14f69bdb18f379817af5010aae81fc54e1abbe0e3d2459caf6ada530",
    "6b18c8062a2541429d611382f08fb89b1d333cfa11614bbb451cfa28cec157d5",
    "8171788b0600bd696602715ce02de6c551c61d9b949c87fa34ed90ee5d220123",
    "07f35182ad771364ce43bc9cd541af5e7123d87f615a6008692c9072e8a3f0c1",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_verifier_matches_rfc_7677() {
        // RFC 7677 section 3: password "pencil", this salt, 4096 iterations.
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let v = scram_verifier_with_salt("pencil", &salt);
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert_eq!(scram_salt(&v), Some(salt));
    }

    #[test]
    fn a_fresh_verifier_has_a_salt_that_a_salted_one_reproduces() {
        let v = scram_verifier("jgs_x");
        let salt = scram_salt(&v).expect("salt");
        assert_eq!(scram_verifier_with_salt("jgs_x", &salt), v);
    }
}
