use super::bodies::Reason;
use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, json_body, Query, Resp};
use crate::grants::is_policy_approver;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

pub async fn list(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let q = Query::parse(query, &["user", "target"])?;
    let user = q.get("user").filter(|s| !s.is_empty());
    let target = q.get("target").filter(|s| !s.is_empty());
    let cfg = &ctx.cfg;
    let grants = &ctx.state.grants;
    let mut all = grants.sessions.snapshot();
    // With several instances, the peers' sessions come from the shared rows;
    // if the store cannot be read the list is this instance's, marked so.
    let mut incomplete = false;
    if let Some(c) = grants.cluster.get() {
        match c.remote_snapshots().await {
            Ok(remote) => all.extend(remote),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list peers' sessions");
                incomplete = true;
            }
        }
    }
    let rows: Vec<_> = all
        .into_iter()
        .filter(|s| user.is_none_or(|u| s.user == u) && target.is_none_or(|t| s.target == t))
        .filter(|s| {
            ctx.caller.admin
                || s.user == ctx.caller.user
                || cfg
                    .policy_for(&s.user, &s.target)
                    .is_some_and(|p| is_policy_approver(cfg, &ctx.caller.user, &p.name))
        })
        .collect();
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
