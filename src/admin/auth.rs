//! Bearer-token authentication. The presented token is hashed once and
//! compared in constant time against every user's stored SHA-256, without an
//! early exit, so timing reveals neither which user matched nor how much of a
//! hash did.

use crate::config::Config;
use crate::grants::Caller;
use crate::secrets::sha256;
use subtle::{ConditionallySelectable, ConstantTimeEq};

pub fn authenticate(cfg: &Config, authorization: Option<&str>) -> Option<Caller> {
    let value = authorization?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    if token.is_empty() || token.len() > 512 {
        return None;
    }
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
    found.map(|u| Caller {
        user: u.name.clone(),
        admin: u.admin,
        until: None,
    })
}
