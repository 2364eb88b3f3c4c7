use super::bodies::{Comment, CreateRequest as CreateBody, Empty, Reason};
use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Query, Resp};
use crate::admin::views;
use crate::grants::{is_policy_approver, may_oversee};
use crate::store::{RequestFilter, RequestState};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

pub async fn create(ctx: Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: CreateBody = json_body(req).await?;
    let (rec, grant) = ctx
        .state
        .grants
        .create_request(&ctx.caller, &b.target, b.duration.as_deref(), &b.reason)
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &views::request(&rec, grant.as_ref()),
    ))
}

pub async fn list(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let q = Query::parse(query, &["state", "limit"])?;
    let state = match q.get("state") {
        None | Some("") => None,
        Some(s) => Some(RequestState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "state must be one of pending, approved, denied, cancelled, expired",
            )
        })?),
    };
    let limit = q.limit()?;
    // Admins and approvers see across users; others only their own.
    let sees_all = ctx.caller.admin || ctx.cfg.is_any_approver(&ctx.caller.user);
    let filter = RequestFilter {
        state,
        requester: (!sees_all).then(|| ctx.caller.user.clone()),
        limit: if sees_all { 1000 } else { limit },
    };
    let rows = ctx
        .state
        .grants
        .store
        .list_requests(&filter)
        .await
        .map_err(crate::grants::GrantError::from)?;
    let visible: Vec<_> = rows
        .iter()
        .filter(|r| may_oversee(&ctx.cfg, &ctx.caller, &r.requester, &r.policy))
        .take(limit as usize)
        .map(|r| {
            let mut v = views::request(r, None);
            // Tell the console which buttons to show for this viewer.
            v["can_decide"] = (r.state == RequestState::Pending
                && r.requester != ctx.caller.user
                && is_policy_approver(&ctx.cfg, &ctx.caller.user, &r.policy))
            .into();
            v
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "requests": visible }),
    ))
}

async fn load_visible(ctx: &Ctx, id: &str) -> Result<crate::store::RequestRecord, ApiError> {
    let r = ctx
        .state
        .grants
        .store
        .get_request(id)
        .await
        .map_err(crate::grants::GrantError::from)?
        .ok_or_else(|| ApiError::not_found(format!("request {id} not found")))?;
    if !may_oversee(&ctx.cfg, &ctx.caller, &r.requester, &r.policy) {
        // Same answer as a missing id: existence is not disclosed.
        return Err(ApiError::not_found(format!("request {id} not found")));
    }
    Ok(r)
}

async fn with_grant(
    ctx: &Ctx,
    r: &crate::store::RequestRecord,
) -> Result<serde_json::Value, ApiError> {
    let grant = match &r.grant_id {
        Some(g) => ctx
            .state
            .grants
            .store
            .get_grant(g)
            .await
            .map_err(crate::grants::GrantError::from)?,
        None => None,
    };
    Ok(views::request(r, grant.as_ref()))
}

pub async fn get(ctx: Ctx, id: &str) -> Result<Resp, ApiError> {
    let r = load_visible(&ctx, id).await?;
    Ok(json(StatusCode::OK, &with_grant(&ctx, &r).await?))
}

pub async fn approve(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: Comment = json_body(req).await?;
    let r = ctx
        .state
        .grants
        .approve(&ctx.caller, id, &b.comment)
        .await?;
    Ok(json(StatusCode::OK, &with_grant(&ctx, &r).await?))
}

pub async fn deny(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: Reason = json_body(req).await?;
    let r = ctx.state.grants.deny(&ctx.caller, id, &b.reason).await?;
    Ok(json(StatusCode::OK, &views::request(&r, None)))
}

pub async fn cancel(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let _: Empty = json_body(req).await?;
    let r = ctx.state.grants.cancel(&ctx.caller, id).await?;
    Ok(json(StatusCode::OK, &views::request(&r, None)))
}
