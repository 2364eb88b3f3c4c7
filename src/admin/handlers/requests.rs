use super::bodies::{Comment, CreateRequest as CreateBody, Empty, Reason};
use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Query, Resp};
use crate::admin::views;
use crate::grants::{RequestFilter, RequestState};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

pub async fn create(ctx: Ctx, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: CreateBody = json_body(req).await?;
    let ask = crate::grants::Ask {
        target: &b.target,
        duration: b.duration.as_deref(),
        reason: &b.reason,
        starts_at: b.starts_at.as_deref(),
        break_glass: b.break_glass,
    };
    let (rec, grant) = ctx.state.grants.request_access(&ctx.caller, &ask).await?;
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
    // Visibility (whose requests this caller sees) is the control plane's.
    let filter = RequestFilter {
        state,
        requester: None,
        limit,
    };
    let rows = ctx
        .state
        .grants
        .visible_requests(&ctx.caller, filter)
        .await?;
    let visible: Vec<_> = rows
        .iter()
        .map(|(r, can_decide)| {
            let mut v = views::request(r, None);
            // Tell the console which buttons to show for this viewer.
            v["can_decide"] = (*can_decide).into();
            v
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "requests": visible }),
    ))
}

pub async fn get(ctx: Ctx, id: &str) -> Result<Resp, ApiError> {
    let (r, g) = ctx.state.grants.visible_request(&ctx.caller, id).await?;
    Ok(json(StatusCode::OK, &views::request(&r, g.as_ref())))
}

pub async fn approve(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: Comment = json_body(req).await?;
    let r = ctx
        .state
        .grants
        .approve(&ctx.caller, id, &b.comment)
        .await?;
    let g = ctx.state.grants.grant_of(&r).await?;
    Ok(json(StatusCode::OK, &views::request(&r, g.as_ref())))
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
