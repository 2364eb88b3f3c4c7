use super::bodies::Reason;
use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Query, Resp};
use crate::admin::views;
use crate::grants::{GrantFilter, GrantState};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

pub async fn list(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let q = Query::parse(query, &["state", "user", "target", "limit"])?;
    let state = match q.get("state") {
        None | Some("") => None,
        Some(s) => Some(GrantState::parse(s).ok_or_else(|| {
            ApiError::bad_request("state must be one of scheduled, active, expired, revoked")
        })?),
    };
    let limit = q.limit()?;
    // Visibility (whose grants this caller sees) is the control plane's.
    let filter = GrantFilter {
        state,
        user: q.get("user").filter(|u| !u.is_empty()).map(str::to_string),
        target: q
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        limit,
    };
    let rows = ctx.state.grants.visible_grants(&ctx.caller, filter).await?;
    let visible: Vec<_> = rows.iter().map(views::grant).collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "grants": visible }),
    ))
}

pub async fn get(ctx: Ctx, id: &str) -> Result<Resp, ApiError> {
    let g = ctx.state.grants.visible_grant(&ctx.caller, id).await?;
    Ok(json(StatusCode::OK, &views::grant(&g)))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct SecretBody {
    /// Revoke the grant's earlier secrets (sessions already open stay).
    rotate: bool,
}

pub async fn secret(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: SecretBody = json_body(req).await?;
    let s = ctx
        .state
        .grants
        .issue_secret(&ctx.caller, id, b.rotate)
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "grant_id": id,
            "secret": s.secret,
            "rotated": s.rotated,
            "secrets_valid": s.held,
            "secrets_max": crate::grants::MAX_SECRETS_PER_GRANT,
        }),
    ))
}

pub async fn revoke(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: Reason = json_body(req).await?;
    let r = ctx.state.grants.revoke(&ctx.caller, id, &b.reason).await?;
    Ok(json(
        StatusCode::OK,
        &with_unconfirmed(
            serde_json::json!({ "grant": views::grant(&r.grant), "sessions_terminated": r.sessions_terminated }),
            &r.instances_unconfirmed,
        ),
    ))
}

/// Asks for more time on the caller's own grant: 201 with the extension
/// request (already "approved", with the extended grant, when the policy
/// needs no approval).
pub async fn extend(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: super::bodies::Extend = json_body(req).await?;
    let (rec, grant) = ctx
        .state
        .grants
        .extend(&ctx.caller, id, b.duration.as_deref(), &b.reason)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &views::request(&rec, grant.as_ref()),
    ))
}

/// Records an approver's verdict on a break-glass grant.
pub async fn review(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: super::bodies::Review = json_body(req).await?;
    let g = ctx
        .state
        .grants
        .review(&ctx.caller, id, &b.verdict, &b.comment)
        .await?;
    Ok(json(StatusCode::OK, &views::grant(&g)))
}

/// Adds `instances_unconfirmed` when peers did not confirm in time, so the
/// caller knows the count may be short (several instances only).
pub(super) fn with_unconfirmed(mut v: serde_json::Value, peers: &[String]) -> serde_json::Value {
    if !peers.is_empty() {
        v["instances_unconfirmed"] = serde_json::json!(peers);
    }
    v
}
