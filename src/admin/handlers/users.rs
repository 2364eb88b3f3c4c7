use super::bodies::{Empty, Reason};
use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Resp};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

pub async fn lock(ctx: Ctx, user: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: Reason = json_body(req).await?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a reason is required to lock a user"));
    }
    let r = ctx.state.grants.lock(&ctx.caller, user, &b.reason).await?;
    Ok(json(
        StatusCode::OK,
        &super::grants::with_unconfirmed(
            serde_json::json!({ "user": user, "locked": true, "grants_revoked": r.grants_revoked, "sessions_terminated": r.sessions_terminated }),
            &r.instances_unconfirmed,
        ),
    ))
}

pub async fn unlock(ctx: Ctx, user: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let _: Empty = json_body(req).await?;
    let was = ctx.state.grants.unlock(&ctx.caller, user).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "user": user, "locked": false, "was_locked": was }),
    ))
}
