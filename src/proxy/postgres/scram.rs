//! Server side of SCRAM-SHA-256 (RFC 5802 / 7677) and SCRAM-SHA-256-PLUS
//! with tls-server-end-point channel binding (RFC 5929), checked against a
//! PostgreSQL-format verifier, so the proxy authenticates engineers without
//! ever holding their connect secret.
//!
//! postgres-protocol only implements the client side; this is checked
//! against the RFC 7677 vector and against that client in the tests.

use crate::secrets::hmac_sha256 as hmac;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding negotiation error")]
    ChannelBindingDowngrade,
    #[error("SCRAM channel binding check failed")]
    ChannelBinding,
    #[error("SCRAM nonce mismatch")]
    Nonce,
    #[error("password authentication failed")]
    Proof,
    #[error("invalid SCRAM verifier")]
    Verifier,
}

/// `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl Verifier {
    pub fn parse(s: &str) -> Result<Verifier, ScramError> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ScramError::Verifier)?;
        let (iter_salt, keys) = rest.split_once('$').ok_or(ScramError::Verifier)?;
        let (iter, salt) = iter_salt.split_once(':').ok_or(ScramError::Verifier)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramError::Verifier)?;
        let key = |k: &str| -> Result<[u8; 32], ScramError> {
            B64.decode(k)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or(ScramError::Verifier)
        };
        Ok(Verifier {
            iterations: iter.parse().map_err(|_| ScramError::Verifier)?,
            salt: B64.decode(salt).map_err(|_| ScramError::Verifier)?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }

    /// A stand-in verifier for a login with no real one (unknown target or
    /// user, no active grant), so the exchange runs as for a real grant and
    /// its answer reveals nothing: the salt is derived from the name with a
    /// per-process key (stable across attempts, like a real grant's), and
    /// no proof can match keys nobody derived from a password.
    pub fn mock(process_key: &[u8; 32], name: &str) -> Verifier {
        let salt = hmac(process_key, format!("salt:{name}").as_bytes());
        Verifier {
            iterations: MOCK_ITERATIONS,
            salt: salt[..16].to_vec(),
            stored_key: hmac(process_key, format!("stored:{name}").as_bytes()),
            server_key: hmac(process_key, format!("server:{name}").as_bytes()),
        }
    }
}

/// What `jitgate secret` verifiers use (postgres-protocol's default), so a
/// mock looks like a real one.
const MOCK_ITERATIONS: u32 = 4096;

/// How the client framed channel binding in its gs2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    /// `n`: the client cannot bind.
    None,
    /// `y`: the client could bind but believes the server cannot.
    Unrequested,
    /// `p=tls-server-end-point`.
    EndPoint,
}

/// State after the client-first message.
#[derive(Debug, Clone)]
pub struct Exchange {
    gs2_header: String,
    binding: Binding,
    client_first_bare: String,
    nonce: String,
    server_first: String,
}

impl Exchange {
    /// Reads the client-first message for `mechanism`. `tls` says whether the
    /// connection is TLS (so PLUS was offered and `y` is a downgrade).
    /// `server_nonce` must be fresh random printable text without commas.
    pub fn start(
        mechanism: &str,
        client_first: &[u8],
        tls: bool,
        verifier: &Verifier,
        server_nonce: &str,
    ) -> Result<Exchange, ScramError> {
        let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("UTF-8"))?;
        let (binding, after_flag) = if let Some(r) = msg.strip_prefix("n,") {
            (Binding::None, r)
        } else if let Some(r) = msg.strip_prefix("y,") {
            (Binding::Unrequested, r)
        } else if let Some(r) = msg.strip_prefix("p=tls-server-end-point,") {
            (Binding::EndPoint, r)
        } else if msg.starts_with("p=") {
            return Err(ScramError::Malformed("unsupported channel binding type"));
        } else {
            return Err(ScramError::Malformed("gs2 header"));
        };
        // No authorization identity: PostgreSQL does not support one either.
        let bare = after_flag.strip_prefix(',').ok_or(ScramError::Malformed(
            "authorization identity is not supported",
        ))?;
        let gs2_header = msg[..msg.len() - bare.len()].to_string();
        match (mechanism, &binding) {
            (SCRAM_SHA_256_PLUS, Binding::EndPoint) if tls => {}
            (SCRAM_SHA_256_PLUS, _) => return Err(ScramError::Malformed("PLUS without binding")),
            (SCRAM_SHA_256, Binding::EndPoint) => {
                return Err(ScramError::Malformed("binding without PLUS"))
            }
            (SCRAM_SHA_256, Binding::Unrequested) if tls => {
                return Err(ScramError::ChannelBindingDowngrade)
            }
            (SCRAM_SHA_256, _) => {}
            _ => return Err(ScramError::Malformed("unknown mechanism")),
        }
        // client-first-bare: n=<user>,r=<nonce>[,extensions]; the user name
        // is ignored (the startup packet's user counts), as PostgreSQL does.
        let mut parts = bare.split(',');
        if !parts.next().is_some_and(|p| p.starts_with("n=")) {
            return Err(ScramError::Malformed("client-first-message"));
        }
        let cnonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|c| (0x21..=0x7e).contains(&c)))
            .ok_or(ScramError::Malformed("client nonce"))?;
        if parts.any(|p| p.starts_with("m=")) {
            return Err(ScramError::Malformed("mandatory extension"));
        }
        let nonce = format!("{cnonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok(Exchange {
            gs2_header,
            binding,
            client_first_bare: bare.to_string(),
            nonce,
            server_first,
        })
    }

    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks the client-final message; returns the server-final message.
    /// `cert_hash` is the tls-server-end-point data of this connection.
    pub fn finish(
        &self,
        client_final: &[u8],
        verifier: &Verifier,
        cert_hash: Option<&[u8]>,
    ) -> Result<String, ScramError> {
        let msg = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client-final-message"))?;
        let mut parts = without_proof.split(',');
        let cbind = parts
            .next()
            .and_then(|p| p.strip_prefix("c="))
            .ok_or(ScramError::Malformed("channel binding"))?;
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramError::Malformed("nonce"))?;
        let mut expected = self.gs2_header.as_bytes().to_vec();
        if self.binding == Binding::EndPoint {
            expected.extend_from_slice(cert_hash.ok_or(ScramError::ChannelBinding)?);
        }
        let got = B64
            .decode(cbind)
            .map_err(|_| ScramError::Malformed("channel binding"))?;
        if !bool::from(got.ct_eq(&expected)) {
            return Err(ScramError::ChannelBinding);
        }
        if !bool::from(nonce.as_bytes().ct_eq(self.nonce.as_bytes())) {
            return Err(ScramError::Nonce);
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("proof"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if !bool::from(stored.ct_eq(&verifier.stored_key)) {
            return Err(ScramError::Proof);
        }
        let server_signature = hmac(&verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// A fresh server nonce: 18 random bytes, base64 (no commas).
pub fn server_nonce() -> String {
    use rand::RngCore;
    let mut b = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut b);
    B64.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    #[test]
    fn rfc_7677_vector() {
        // RFC 7677 §3 (user "user", password "pencil").
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted =
            hex::decode("c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d")
                .unwrap();
        let client_key = hmac(&salted, b"Client Key");
        let v = Verifier {
            iterations: 4096,
            salt,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        };
        let x = Exchange::start(
            SCRAM_SHA_256,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            false,
            &v,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert_eq!(
            x.server_first(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let fin = x
            .finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                &v,
                None,
            )
            .unwrap();
        assert_eq!(fin, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        let bad = x.finish(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &v,
            None,
        );
        assert_eq!(bad, Err(ScramError::Proof));
    }

    /// Runs postgres-protocol's client against this server.
    fn round_trip(
        password: &str,
        secret: &str,
        binding: ChannelBinding,
        mech: &str,
        tls: bool,
        server_hash: Option<&[u8]>,
    ) -> Result<(), ScramError> {
        let v = Verifier::parse(&postgres_protocol::password::scram_sha_256(
            secret.as_bytes(),
        ))?;
        let mut client = ScramSha256::new(password.as_bytes(), binding);
        let x = Exchange::start(mech, client.message(), tls, &v, &server_nonce())?;
        client
            .update(x.server_first().as_bytes())
            .map_err(|_| ScramError::Malformed("client rejected server-first"))?;
        let fin = x.finish(client.message(), &v, server_hash)?;
        client
            .finish(fin.as_bytes())
            .map_err(|_| ScramError::Malformed("client rejected the server signature"))
    }

    #[test]
    fn postgres_protocol_client_round_trips_with_and_without_binding() {
        let hash = [7u8; 32];
        round_trip(
            "s3cret",
            "s3cret",
            ChannelBinding::unsupported(),
            SCRAM_SHA_256,
            false,
            None,
        )
        .unwrap();
        round_trip(
            "s3cret",
            "s3cret",
            ChannelBinding::tls_server_end_point(hash.to_vec()),
            SCRAM_SHA_256_PLUS,
            true,
            Some(&hash),
        )
        .unwrap();
        assert_eq!(
            round_trip(
                "wrong",
                "s3cret",
                ChannelBinding::unsupported(),
                SCRAM_SHA_256,
                false,
                None
            ),
            Err(ScramError::Proof)
        );
        // A man in the middle presents a different certificate to the client.
        assert_eq!(
            round_trip(
                "s3cret",
                "s3cret",
                ChannelBinding::tls_server_end_point(vec![9u8; 32]),
                SCRAM_SHA_256_PLUS,
                true,
                Some(&hash),
            ),
            Err(ScramError::ChannelBinding)
        );
        // "I could bind but you can't" over TLS, where PLUS was offered.
        assert_eq!(
            round_trip(
                "s3cret",
                "s3cret",
                ChannelBinding::unrequested(),
                SCRAM_SHA_256,
                true,
                None
            ),
            Err(ScramError::ChannelBindingDowngrade)
        );
    }

    #[test]
    fn hostile_client_first_messages_are_rejected() {
        let v = Verifier::parse(&postgres_protocol::password::scram_sha_256(b"x")).unwrap();
        for m in [
            &b""[..],
            b"\xff",
            b"q,,n=,r=abc",
            b"n,a=admin,n=,r=abc",
            b"n,,r=abc",
            b"n,,n=,r=",
            b"n,,n=,r=abc,m=ext",
            b"p=tls-unique,,n=,r=abc",
        ] {
            assert!(
                Exchange::start(SCRAM_SHA_256, m, false, &v, "srv").is_err(),
                "{m:?}"
            );
        }
        assert!(Exchange::start("MD5", b"n,,n=,r=abc", false, &v, "srv").is_err());
        for bad in [
            "",
            "SCRAM-SHA-256$x:y$z",
            "md5abc",
            "SCRAM-SHA-256$4096:AA==$AA==:AA==",
        ] {
            assert!(Verifier::parse(bad).is_err(), "{bad}");
        }
    }
}
