//! `POST /v1/ssh/certificate`: signs the caller's public key with jitgate's
//! SSH user CA (see `crate::ssh_ca` for what a certificate holds and how
//! long it lives). A locked user gets none; every certificate issued is in
//! the audit log before it is handed out.

use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Resp};
use crate::audit::AuditEntry;
use crate::ssh_ca::CaError;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json as j;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateBody {
    public_key: String,
}

pub async fn certificate(ctx: Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: CertificateBody = json_body(req).await?;
    let Some(ca) = ctx.state.ssh_ca.get() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this proxy has no SSH listener, so it issues no SSH certificates",
        ));
    };
    let user = &ctx.caller.user;
    if ctx.state.grants.is_locked(user).await? {
        return Err(ApiError::forbidden(format!(
            "user {user} is locked; no certificate is issued"
        )));
    }
    // What the certificate is bound to, checked again at each login.
    let bound = match &ctx.caller.signin {
        Some(id) => crate::ssh_ca::Binding::Signin(id.clone()),
        None => {
            // The token the caller presented is the one of the config it
            // was authenticated with (`ctx.cfg`); a reload since (the body
            // may arrive slowly) that replaced or removed it refuses, so a
            // certificate is never bound to a token its holder did not show.
            let token_of = |cfg: &crate::config::Config| {
                cfg.users
                    .get(user)
                    .and_then(|u| u.token_sha256.as_ref())
                    .map(crate::ssh_ca::token_binding)
            };
            match (token_of(&ctx.cfg), token_of(&ctx.state.grants.config_now())) {
                (Some(shown), Some(now)) if shown == now => crate::ssh_ca::Binding::Token(shown),
                _ => {
                    return Err(ApiError::forbidden(format!(
                        "the static token of user {user} changed while this request ran; no certificate is issued"
                    )))
                }
            }
        }
    };
    let now_ms = crate::clock::now_ms();
    let now = (now_ms / 1000).max(0) as u64;
    let until = ctx.caller.until.map(|ms| (ms / 1000).max(0) as u64);
    let issued = ca
        .issue(&b.public_key, user, now, until, Some(&bound))
        .map_err(|e| match e {
            CaError::BadKey(m) => ApiError::bad_request(m),
            other => {
                tracing::warn!(error = %other, "ssh certificate not issued");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the certificate could not be signed",
                )
            }
        })?;
    let valid_before = crate::clock::rfc3339((issued.valid_before as i64).saturating_mul(1000));
    let entry = AuditEntry::new(
        user,
        "ssh.certificate_issued",
        user,
        j!({
            "key": issued.fingerprint,
            "serial": issued.serial.to_string(),
            "valid_before": valid_before,
            "ca": ca.fingerprint(),
            "signin": ctx.caller.signin,
        }),
    );
    ctx.state.grants.audit_now(entry).await?;
    tracing::info!(%user, key = %issued.fingerprint, serial = issued.serial, %valid_before, "ssh certificate issued");
    Ok(json(
        StatusCode::OK,
        &j!({
            "certificate": issued.certificate,
            "valid_before": valid_before,
            "serial": issued.serial.to_string(),
        }),
    ))
}
