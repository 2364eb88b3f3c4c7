//! Bearer-token authentication. The presented token is hashed once and
//! compared in constant time against every user's stored SHA-256, without an
//! early exit, so timing reveals neither which user matched nor how much of a
//! hash did.

use crate::config::Config;
use crate::grants::Caller;
use crate::identity::flow::{Identity, TOKEN_PREFIX};
use crate::identity::FlowError;
use crate::secrets::sha256;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The caller of a bearer token: a static token, or a sign-in token
/// (`jgs_...`) looked up by its hash in the store. Err when the store cannot
/// answer for a sign-in token: the caller must fail closed.
pub async fn authenticate(
    cfg: &Config,
    identity: &Identity,
    authorization: Option<&str>,
) -> Result<Option<Caller>, FlowError> {
    let Some(token) = bearer(authorization) else {
        return Ok(None);
    };
    if token.starts_with(TOKEN_PREFIX) && cfg.oidc.is_some() {
        return identity.authenticate(token).await;
    }
    Ok(authenticate_static(cfg, token))
}

/// The token of an `Authorization: Bearer` header, bounded in length.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty() && token.len() <= 512).then_some(token)
}

pub fn authenticate_static(cfg: &Config, token: &str) -> Option<Caller> {
    let presented = sha256(token.as_bytes());
    let mut found: Option<&crate::config::User> = None;
    for u in cfg.users.values() {
        if let Some(h) = &u.token_sha256 {
            let eq = presented.ct_eq(h);
            // Keep looping regardless; remember the match without branching on secrets.
            let pick = u8::conditional_select(&0, &1, eq);
            if pick == 1 {
                found = Some(u);
            }
        }
    }
    found.map(|u| Caller::static_token(&u.name, u.admin))
}
