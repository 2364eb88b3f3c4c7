//! Authentication of a PostgreSQL client: `user=USER@TARGET`, SCRAM-SHA-256
//! (-PLUS) against the grant's connect-secret verifier, admission.
//!
//! Before authentication nothing may tell a client which targets, users or
//! grants exist. Every login that cannot succeed (unknown target, unknown
//! user, locked user, no active grant, grant not yet started, wrong secret)
//! runs the same SCRAM exchange (against a mock verifier when there is no
//! real one, as PostgreSQL does for unknown roles) and ends with the same
//! 28P01 "password authentication failed for user" and the same hint; the
//! real reason goes to the log and the `auth.failed` audit event. Left
//! distinct, because they reveal nothing about users: a user name without
//! `@` (its syntax), a blocked source (the limiter), the store being
//! unavailable (57P03), and malformed SCRAM messages (08P01).

use super::codec::{self, CodecError, MAX_AUTH_MESSAGE};
use super::front::PgFrontEnd;
use super::scram::{self, Exchange, Verifier};
use super::stream::PgStream;
use crate::config::TargetKind;
use crate::grants::{Admitted, Refusal};
use crate::proxy::limiter::source_key;
use rand::RngCore;
use serde_json::json;
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;

/// The one hint every failed login gets: it must not depend on the reason.
pub const LOGIN_HINT: &str = "Use the connect secret of an active grant for this user and target: find the grant with `jitgate grants --state active`, then print its secret with `jitgate secret GRANT_ID` (request access first if you have none).";

/// A refusal: the SQLSTATE, the message, an optional hint, the metric reason.
pub(super) struct Refuse {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<&'static str>,
    pub reason: &'static str,
}

impl Refuse {
    pub fn new(code: &'static str, reason: &'static str, message: impl Into<String>) -> Refuse {
        Refuse {
            code,
            message: message.into(),
            hint: None,
            reason,
        }
    }
}

impl From<CodecError> for Refuse {
    fn from(e: CodecError) -> Refuse {
        Refuse::new("08P01", "protocol_error", format!("invalid startup: {e}"))
    }
}

impl From<std::io::Error> for Refuse {
    fn from(e: std::io::Error) -> Refuse {
        CodecError::Io(e).into()
    }
}

/// Per-process key for mock verifiers (see [`Verifier::mock`]).
fn mock_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        k
    })
}

/// Client text shown back to the client (and in logs): control characters
/// escaped so a crafted user name cannot drive a terminal.
fn shown(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Startup parameters → (user, target); authentication; admission.
pub(super) async fn login(
    fe: &PgFrontEnd,
    s: &mut PgStream,
    params: Vec<(String, String)>,
    peer: &std::net::SocketAddr,
) -> Result<(Admitted, Vec<(String, String)>, String), Refuse> {
    let login = params
        .iter()
        .find(|(k, _)| k == "user")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let Some((user, target)) = login.split_once('@') else {
        return Err(Refuse::new(
            "28000",
            "no_grant",
            format!(
                "connect as USER@TARGET (for example user=alice@prod-db), not \"{}\"",
                shown(&login)
            ),
        ));
    };
    // Per source only: the user name is unauthenticated input, and keying
    // on it would let anyone lock that user out (see limiter.rs).
    let keys = vec![source_key(peer.ip())];
    if let Err(left) = fe.limiter.check(&keys) {
        return Err(Refuse::new(
            "28000",
            "auth_failed",
            format!(
                "too many failed authentication attempts; try again in {}s",
                left.as_secs().max(1)
            ),
        ));
    }
    let (candidates, refused) = match fe
        .grants
        .admit_by_user(target, TargetKind::Postgres, user)
        .await
    {
        Ok(c) => (c, None),
        Err(Refusal::Unavailable) => {
            return Err(Refuse::new(
                "57P03",
                Refusal::Unavailable.metric_reason(),
                Refusal::Unavailable.to_string(),
            ))
        }
        Err(r) => (Vec::new(), Some(r)),
    };
    // Authenticate against the newest grant's secret; a client holding an
    // older grant's secret (two grants for the same target) is matched by
    // trying the others' verifiers with the same proof.
    let verifiers: Vec<Verifier> = if candidates.is_empty() {
        vec![Verifier::mock(mock_key(), &login)]
    } else {
        candidates
            .iter()
            .map(|(_, v)| Verifier::parse(v))
            .collect::<Result<_, _>>()
            .map_err(|_| Refuse::new("XX000", "auth_failed", "corrupt secret verifier"))?
    };
    let matched = authenticate(fe, s, &verifiers, refused.is_none()).await?;
    match (matched, refused) {
        (Some(i), None) => {
            let Some((admitted, _)) = candidates.into_iter().nth(i) else {
                return Err(Refuse::new("XX000", "auth_failed", "no such candidate"));
            };
            let mut rest: Vec<(String, String)> =
                params.into_iter().filter(|(k, _)| k != "user").collect();
            // libpq defaults the database to the user name, here USER@TARGET;
            // the target then defaults it to its own role instead.
            rest.retain(|(k, v)| !(k == "database" && *v == login));
            Ok((admitted, rest, user.to_string()))
        }
        (_, refused) => {
            let (reason, detail) = match &refused {
                Some(r) => (r.metric_reason(), r.to_string()),
                None => ("auth_failed", "wrong connect secret".to_string()),
            };
            let newly_blocked = fe.limiter.failed(&keys);
            tracing::info!(%peer, user = %shown(user), target = %shown(target), reason, "postgres login failed: {}", shown(&detail));
            let entry = crate::audit::AuditEntry::new(
                user,
                "auth.failed",
                target,
                json!({"kind": "postgres", "client": peer.to_string(), "blocked": newly_blocked, "detail": detail}),
            );
            fe.grants.audit_detached(entry);
            Err(Refuse {
                code: "28P01",
                message: format!(
                    "password authentication failed for user \"{}\"",
                    shown(&login)
                ),
                hint: Some(LOGIN_HINT),
                reason,
            })
        }
    }
}

async fn read_sasl(s: &mut PgStream) -> Result<Vec<u8>, Refuse> {
    let (tag, body) = codec::read_message(s, MAX_AUTH_MESSAGE).await?;
    if tag != b'p' {
        return Err(CodecError::Unexpected {
            expected: "SASL response",
            got: tag as char,
        }
        .into());
    }
    Ok(body)
}

/// SCRAM with the client; Some(index of the verifier that matched).
/// `may_succeed` false: the exchange runs to its end and fails.
async fn authenticate(
    fe: &PgFrontEnd,
    s: &mut PgStream,
    verifiers: &[Verifier],
    may_succeed: bool,
) -> Result<Option<usize>, Refuse> {
    let Some(first_verifier) = verifiers.first() else {
        return Ok(None);
    };
    let tls = s.is_tls();
    let mechs: &[&str] = if tls {
        &[scram::SCRAM_SHA_256_PLUS, scram::SCRAM_SHA_256]
    } else {
        &[scram::SCRAM_SHA_256]
    };
    s.write_all(&codec::auth_sasl(mechs)).await?;
    s.flush().await?;
    let first = read_sasl(s).await?;
    let (mech, rest) = codec::cstr(&first).ok_or(CodecError::Malformed("SASL initial response"))?;
    let len = rest
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
        .ok_or(CodecError::Malformed("SASL initial response"))?;
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return Err(CodecError::Malformed("SASL initial response").into());
    }
    let scram_err = |e: scram::ScramError| match e {
        scram::ScramError::ChannelBindingDowngrade | scram::ScramError::ChannelBinding => {
            Refuse::new("28000", "auth_failed", e.to_string())
        }
        _ => Refuse::new("08P01", "protocol_error", e.to_string()),
    };
    // Salts differ per grant, so the exchange runs against the first
    // verifier; with several grants, later ones are tried for the proof
    // only if their salt and iterations match (rotated secrets do not).
    let nonce = scram::server_nonce();
    let x = Exchange::start(mech, data, tls, first_verifier, &nonce).map_err(scram_err)?;
    s.write_all(&codec::auth_sasl_continue(x.server_first().as_bytes()))
        .await?;
    s.flush().await?;
    let fin = read_sasl(s).await?;
    let hash = tls.then_some(fe.cert_hash.as_slice());
    for (i, v) in verifiers.iter().enumerate() {
        if i > 0 && (v.salt != first_verifier.salt || v.iterations != first_verifier.iterations) {
            continue;
        }
        match x.finish(&fin, v, hash) {
            // Fail closed: a login refused before the exchange never gets
            // AuthenticationOk, whatever the proof.
            Ok(_) if !may_succeed => return Ok(None),
            Ok(server_final) => {
                let mut out = codec::auth_sasl_final(server_final.as_bytes());
                out.extend(codec::auth_ok());
                s.write_all(&out).await?;
                s.flush().await?;
                return Ok(Some(i));
            }
            Err(scram::ScramError::Proof) => continue,
            Err(e) => return Err(scram_err(e)),
        }
    }
    Ok(None)
}
