use super::bodies::Reason;
use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Query, Resp};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

pub async fn list(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let q = Query::parse(query, &["user", "target"])?;
    let user = q.get("user").filter(|s| !s.is_empty());
    let target = q.get("target").filter(|s| !s.is_empty());
    let (rows, incomplete) = ctx
        .state
        .grants
        .visible_sessions(&ctx.caller, user, target)
        .await;
    let mut body = serde_json::json!({ "sessions": rows });
    if incomplete {
        body["incomplete"] = serde_json::json!(true);
    }
    Ok(json(StatusCode::OK, &body))
}

pub async fn terminate(ctx: Ctx, id: &str, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let b: Reason = json_body(req).await?;
    let r = ctx
        .state
        .grants
        .terminate(&ctx.caller, id, &b.reason)
        .await?;
    Ok(json(
        StatusCode::OK,
        &super::grants::with_unconfirmed(
            serde_json::json!({ "session_id": id, "sessions_terminated": r.sessions_terminated }),
            &r.instances_unconfirmed,
        ),
    ))
}
