//! Client side of SCRAM-SHA-256(-PLUS) for the proxy's own login to a
//! target, with the salted password kept between logins.
//!
//! Every engineer connection is one upstream login, and deriving the salted
//! password is PBKDF2 at the server's iteration count (4,096 HMAC-SHA-256
//! rounds by PostgreSQL's default): about 2 ms of CPU, most of what a
//! connection costs the proxy (`pgbench -C` measures it). A role's salt and
//! iteration count stay the same until its password changes, and RFC 5802
//! (section 5.1) lets a client cache what it derives from them, as
//! libpq-compatible clients may. postgres-protocol's client derives it on
//! every login and cannot be handed it, hence this one.
//!
//! The cache holds what the password already gives (the password itself is
//! in the daemon's environment), keyed by a digest of password, salt and
//! count, so a rotated password or salt misses it; it is bounded and lives
//! only in memory.

use crate::secrets::{hmac_sha256 as hmac, scram_hi as hi};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use subtle::ConstantTimeEq;

/// A target asking for more is refused: the count is the server's to pick,
/// and a hostile one could otherwise make every login burn seconds of CPU.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Cached keys; beyond this the cache starts over (targets × passwords
/// is small in any real deployment).
const CACHE_CAP: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramClientError {
    #[error("malformed SCRAM message from the target: {0}")]
    Malformed(&'static str),
    #[error("the target's SCRAM nonce does not extend ours")]
    Nonce,
    #[error("the target asks for {0} SCRAM iterations (at most {MAX_ITERATIONS} are accepted)")]
    TooManyIterations(u32),
    #[error("the target refused the SCRAM proof: {0}")]
    ServerError(String),
    #[error("the target's SCRAM signature is wrong: it does not know the password")]
    ServerSignature,
    #[error("SCRAM messages out of order")]
    Order,
    #[error("the SCRAM key derivation did not finish")]
    Derive,
}

/// How this login binds to the TLS channel (RFC 5929), as libpq decides.
#[derive(Debug, Clone)]
pub enum Binding {
    /// No TLS: `n,,`.
    Unsupported,
    /// TLS, but the server offered no -PLUS: `y,,` (a downgrade shows).
    Unrequested,
    /// SCRAM-SHA-256-PLUS with the hash of the server's certificate.
    TlsServerEndPoint(Vec<u8>),
}

impl Binding {
    fn gs2_header(&self) -> &'static str {
        match self {
            Binding::Unsupported => "n,,",
            Binding::Unrequested => "y,,",
            Binding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    fn cbind_input(&self) -> Vec<u8> {
        let mut v = self.gs2_header().as_bytes().to_vec();
        if let Binding::TlsServerEndPoint(h) = self {
            v.extend_from_slice(h);
        }
        v
    }
}

enum State {
    /// Sent client-first; waiting for server-first.
    First {
        nonce: String,
    },
    /// Sent client-final; waiting for server-final.
    Final {
        server_key: [u8; 32],
        auth_message: String,
    },
    Done,
}

/// One SCRAM exchange; [`ScramClient::message`] is what to send next.
pub struct ScramClient {
    /// What the cached key belongs to: the target and the role.
    scope: String,
    password: Vec<u8>,
    binding: Binding,
    message: String,
    state: State,
}

fn cache() -> &'static Mutex<HashMap<[u8; 32], [u8; 32]>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], [u8; 32]>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The cache's key: the scope (target and role) with the password, salt
/// and count. The scope keeps targets apart: otherwise a hostile target
/// could send another target's salt and count and learn from the answer's
/// timing whether both passwords are the same.
fn cache_key(scope: &str, password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [scope.as_bytes(), password, salt] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(iterations.to_be_bytes());
    h.finalize().into()
}

fn cached(key: &[u8; 32]) -> Option<[u8; 32]> {
    cache().lock().ok().and_then(|c| c.get(key).copied())
}

fn remember(key: [u8; 32], salted: [u8; 32]) {
    if let Ok(mut c) = cache().lock() {
        if c.len() >= CACHE_CAP {
            c.clear();
        }
        c.insert(key, salted);
    }
}

/// The salted password, from the cache when this scope, password, salt and
/// count were seen before; otherwise derived on the blocking pool, so a
/// target asking for many iterations stalls only its own login, not the
/// runtime's workers and every session on them.
async fn salted_password(
    scope: &str,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<[u8; 32], ScramClientError> {
    let key = cache_key(scope, password, salt, iterations);
    if let Some(v) = cached(&key) {
        return Ok(v);
    }
    let (p, s) = (password.to_vec(), salt.to_vec());
    let v = tokio::task::spawn_blocking(move || hi(&p, &s, iterations))
        .await
        .map_err(|_| ScramClientError::Derive)?;
    remember(key, v);
    Ok(v)
}

/// SASLprep (RFC 4013) as libpq applies it: a password that is not valid
/// UTF-8 or not preparable is used as its bytes.
fn normalize(password: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(password) {
        Ok(s) => match stringprep::saslprep(s) {
            Ok(p) => p.into_owned().into_bytes(),
            Err(_) => password.to_vec(),
        },
        Err(_) => password.to_vec(),
    }
}

impl ScramClient {
    /// `scope` names the target and role the password logs in as.
    pub fn new(scope: &str, password: &[u8], binding: Binding) -> ScramClient {
        let mut raw = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut raw);
        ScramClient::with_nonce(scope, password, binding, B64.encode(raw))
    }

    fn with_nonce(scope: &str, password: &[u8], binding: Binding, nonce: String) -> ScramClient {
        // PostgreSQL ignores the SCRAM user name (the startup packet's
        // counts), so it is sent empty, as libpq does.
        let message = format!("{}n=,r={nonce}", binding.gs2_header());
        ScramClient {
            scope: scope.to_string(),
            password: normalize(password),
            binding,
            message,
            state: State::First { nonce },
        }
    }

    /// The next message to send.
    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    /// Takes server-first; [`ScramClient::message`] becomes client-final.
    pub async fn update(&mut self, server_first: &[u8]) -> Result<(), ScramClientError> {
        let State::First { nonce } = &self.state else {
            return Err(ScramClientError::Order);
        };
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::Malformed("server-first is not UTF-8"))?;
        let mut parts = text.split(',');
        let server_nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramClientError::Malformed("server-first has no nonce"))?;
        let salt = parts
            .next()
            .and_then(|p| p.strip_prefix("s="))
            .and_then(|s| B64.decode(s).ok())
            .ok_or(ScramClientError::Malformed("server-first has no salt"))?;
        let iterations: u32 = parts
            .next()
            .and_then(|p| p.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .filter(|&i| i > 0)
            .ok_or(ScramClientError::Malformed(
                "server-first has no iteration count",
            ))?;
        if !server_nonce.starts_with(nonce.as_str()) || server_nonce.len() == nonce.len() {
            return Err(ScramClientError::Nonce);
        }
        if iterations > MAX_ITERATIONS {
            return Err(ScramClientError::TooManyIterations(iterations));
        }
        let salted = salted_password(&self.scope, &self.password, &salt, iterations).await?;
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, b"Server Key");
        let client_first_bare = &self.message[self.binding.gs2_header().len()..];
        let without_proof = format!(
            "c={},r={server_nonce}",
            B64.encode(self.binding.cbind_input())
        );
        let auth_message = format!("{client_first_bare},{text},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(signature.iter()) {
            *p ^= s;
        }
        self.message = format!("{without_proof},p={}", B64.encode(proof));
        self.state = State::Final {
            server_key,
            auth_message,
        };
        Ok(())
    }

    /// Checks server-final: only a server that knows the password can sign.
    pub fn finish(&mut self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let State::Final {
            server_key,
            auth_message,
        } = &self.state
        else {
            return Err(ScramClientError::Order);
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramClientError::Malformed("server-final is not UTF-8"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramClientError::ServerError(e.chars().take(200).collect()));
        }
        let got = text
            .split(',')
            .next()
            .and_then(|v| v.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramClientError::Malformed("server-final has no signature"))?;
        let want = hmac(server_key, auth_message.as_bytes());
        if !bool::from(got.as_slice().ct_eq(&want)) {
            return Err(ScramClientError::ServerSignature);
        }
        self.state = State::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    /// RFC 7677 section 3's exchange, with the user name left out as
    /// PostgreSQL does (so the proof differs from the RFC's): the proof
    /// must open to the StoredKey of the verifier that secrets.rs derives
    /// independently (itself checked against the RFC), and the matching
    /// server signature must be accepted.
    #[tokio::test]
    async fn the_rfc_7677_exchange_proves_to_the_verifier() {
        let mut ours = ScramClient::with_nonce(
            "t/r",
            b"pencil",
            Binding::Unsupported,
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(ours.message(), b"n,,n=,r=rOprNGfwEbeRWgbNEkqO");
        ours.update(RFC_SERVER_FIRST.as_bytes()).await.unwrap();
        let verifier = crate::secrets::scram_verifier_with_salt(
            "pencil",
            &B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap(),
        );
        let v = super::super::scram::Verifier::parse(&verifier).unwrap();
        let final_msg = std::str::from_utf8(ours.message()).unwrap().to_string();
        let (without_proof, proof) = final_msg.rsplit_once(",p=").unwrap();
        assert_eq!(
            without_proof,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );
        let auth = format!("n=,r=rOprNGfwEbeRWgbNEkqO,{RFC_SERVER_FIRST},{without_proof}");
        let sig = hmac(&v.stored_key, auth.as_bytes());
        let p = B64.decode(proof).unwrap();
        let client_key: Vec<u8> = p.iter().zip(sig.iter()).map(|(a, b)| a ^ b).collect();
        let digest: [u8; 32] = Sha256::digest(&client_key).into();
        assert_eq!(digest, v.stored_key, "the proof opens to the StoredKey");
        let server_sig = hmac(&v.server_key, auth.as_bytes());
        ours.finish(format!("v={}", B64.encode(server_sig)).as_bytes())
            .unwrap();
        assert_eq!(
            ours.finish(b"v=AAAA"),
            Err(ScramClientError::Order),
            "one exchange, one finish"
        );
    }

    #[tokio::test]
    async fn a_wrong_server_signature_and_a_foreign_nonce_are_refused() {
        let mut c = ScramClient::with_nonce("t/r", b"pencil", Binding::Unsupported, "abc".into());
        assert_eq!(
            c.update(b"r=xyzdef,s=AAAA,i=4096").await,
            Err(ScramClientError::Nonce)
        );
        assert_eq!(
            c.update(b"r=abc,s=AAAA,i=4096").await,
            Err(ScramClientError::Nonce)
        );
        c.update(b"r=abcdef,s=AAAA,i=4096").await.unwrap();
        assert_eq!(
            c.finish(format!("v={}", B64.encode([0u8; 32])).as_bytes()),
            Err(ScramClientError::ServerSignature)
        );
        let mut c = ScramClient::with_nonce("t/r", b"pencil", Binding::Unsupported, "abc".into());
        assert_eq!(
            c.update(b"r=abcdef,s=AAAA,i=4000000000").await,
            Err(ScramClientError::TooManyIterations(4_000_000_000))
        );
    }

    #[tokio::test]
    async fn channel_binding_goes_into_the_proof() {
        let mut c = ScramClient::with_nonce(
            "t/r",
            b"pencil",
            Binding::TlsServerEndPoint(vec![7; 32]),
            "abc".into(),
        );
        assert!(c.message().starts_with(b"p=tls-server-end-point,,n=,r=abc"));
        c.update(b"r=abcdef,s=AAAA,i=16").await.unwrap();
        let msg = String::from_utf8(c.message().to_vec()).unwrap();
        let mut want = b"p=tls-server-end-point,,".to_vec();
        want.extend_from_slice(&[7; 32]);
        assert!(msg.starts_with(&format!("c={},r=abcdef,p=", B64.encode(want))));
    }

    #[tokio::test]
    async fn the_salted_password_is_cached_per_scope_password_salt_and_count() {
        let get = |scope: &'static str, pw: &'static [u8], salt: &'static [u8], i: u32| async move {
            salted_password(scope, pw, salt, i).await.unwrap()
        };
        let a = get("db/r", b"pw-cache-test", b"salt", 64).await;
        assert_eq!(a, hi(b"pw-cache-test", b"salt", 64));
        let key = cache_key("db/r", b"pw-cache-test", b"salt", 64);
        assert_eq!(cached(&key), Some(a), "derived once, then cached");
        assert_eq!(a, get("db/r", b"pw-cache-test", b"salt", 64).await);
        for (scope, pw, salt, i) in [
            ("db/r", &b"pw-cache-test"[..], &b"salt"[..], 65),
            ("db/r", b"pw-cache-test", b"salz", 64),
            ("db/r", b"pw-cache-tesu", b"salt", 64),
        ] {
            assert_ne!(a, get(scope, pw, salt, i).await);
        }
        // Another target's entry is never read for this one.
        assert_ne!(key, cache_key("other/r", b"pw-cache-test", b"salt", 64));
        assert_eq!(
            cached(&cache_key("other/r", b"pw-cache-test", b"salt", 64)),
            None
        );
    }
}
