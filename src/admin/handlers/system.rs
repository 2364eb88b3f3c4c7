use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, Resp};
use hyper::StatusCode;
use serde::Serialize;

/// What an engineer's laptop needs to reach this proxy and verify it is the
/// real one (SPEC "Sign-in"): the bound addresses, the SSH host key as an
/// OpenSSH public key line, and the certificates to trust. `ca_pem` is the
/// tunnel's certificate PEM and `postgres_ca_pem` the PostgreSQL
/// listener's: the two listeners may be given different certificates (and
/// generate separate ones), so one field could not hold the truth for
/// both. A field is null when its listener is off.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Endpoints {
    pub ssh_address: Option<String>,
    pub ssh_host_key: Option<String>,
    /// The SSH user CA's public key line (`@cert-authority` or
    /// `TrustedUserCAKeys` material), with the SSH listener.
    pub ssh_user_ca: Option<String>,
    pub postgres_address: Option<String>,
    pub postgres_ca_pem: Option<String>,
    pub tcp_address: Option<String>,
    pub tcp_tls_fingerprint: Option<String>,
    pub ca_pem: Option<String>,
}

pub async fn whoami(ctx: Ctx) -> Result<Resp, ApiError> {
    let approver_of: Vec<&str> = ctx
        .cfg
        .policies
        .iter()
        .filter(|p| {
            ctx.cfg
                .is_member_with(&ctx.caller.user, &ctx.caller.groups, &p.approvers)
        })
        .map(|p| p.name.as_str())
        .collect();
    let locked = ctx.state.grants.is_locked(&ctx.caller.user).await?;
    let endpoints = ctx.state.endpoints.get().cloned().unwrap_or_default();
    let mut body = serde_json::json!({
            "user": ctx.caller.user,
            "admin": ctx.caller.admin,
            "groups": ctx.caller.groups,
            "via": ctx.caller.via.as_str(),
            "expires_at": ctx.caller.until.map(crate::clock::rfc3339),
            "locked": locked,
            "approver_of": approver_of,
            "instance": ctx.cfg.instance,
            "version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(map), serde_json::Value::Object(more)) =
        (body.as_object_mut(), serde_json::json!(endpoints))
    {
        map.extend(more);
    }
    Ok(json(StatusCode::OK, &body))
}

/// POST /v1/auth/logout: ends the presented sign-in token. A static token
/// cannot be signed out (it lives in the config): 409.
pub async fn logout(
    ctx: Ctx,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Resp, ApiError> {
    let token = crate::admin::auth::bearer(
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
    .map(str::to_string);
    let _: crate::admin::bodies::Empty = crate::admin::http::json_body(req).await?;
    if ctx.caller.via != crate::grants::Via::Oidc {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a static token cannot be signed out; remove it from the config instead",
        ));
    }
    let token = token.ok_or_else(ApiError::unauthorized)?;
    let ended = ctx
        .state
        .identity
        .logout(&ctx.caller, &token)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
    Ok(json(StatusCode::OK, &serde_json::json!({"ended": ended})))
}

pub async fn reload(ctx: Ctx) -> Result<Resp, ApiError> {
    if !ctx.caller.admin {
        return Err(ApiError::forbidden("only admins can reload the config"));
    }
    let Some(r) = ctx.state.reloader.get() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "reload is not available in this process",
        ));
    };
    match r.reload(&ctx.caller.user).await {
        Ok(summary) => Ok(json(StatusCode::OK, &summary)),
        Err(errors) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!(
                "the new config was rejected; the running config stays:\n{}",
                errors.join("\n")
            ),
        )
        .with_errors(errors)),
    }
}
