use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, Query, Resp};
use crate::clock::rfc3339;
use hyper::StatusCode;

/// `after` (default 0) and `limit` of a page of the chain or its checkpoints.
fn page(query: Option<&str>) -> Result<(i64, i64), ApiError> {
    let q = Query::parse(query, &["after", "limit"])?;
    let after = match q.get("after") {
        None | Some("") => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("after must be a non-negative integer seq"))?,
    };
    Ok((after, q.limit()?))
}

pub async fn list(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let (after, limit) = page(query)?;
    let rows = ctx
        .state
        .grants
        .audit_page(&ctx.caller, after, limit)
        .await?;
    let events: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "seq": r.seq,
                "at": rfc3339(r.at_ms),
                "actor": r.actor,
                "action": r.action,
                "subject": r.subject,
                "detail": serde_json::from_str::<serde_json::Value>(&r.detail).unwrap_or(serde_json::Value::String(r.detail.clone())),
                "detail_raw": r.detail,
                "at_ms": r.at_ms,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "events": events }),
    ))
}

pub async fn verify(ctx: Ctx) -> Result<Resp, ApiError> {
    let v = ctx.state.grants.audit_verify(&ctx.caller).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(v).unwrap_or_default(),
    ))
}

/// The signed checkpoints, for `audit --verify` to check against a public
/// key it holds; the server's word on them proves nothing by itself.
pub async fn checkpoints(ctx: Ctx, query: Option<&str>) -> Result<Resp, ApiError> {
    let (after, limit) = page(query)?;
    let rows = ctx
        .state
        .grants
        .audit_checkpoints(&ctx.caller, after, limit)
        .await?;
    let list: Vec<_> = rows
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["at"] = serde_json::Value::String(rfc3339(c.at_ms));
            v
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "checkpoints": list }),
    ))
}

/// The key this daemon signs checkpoints with, for an auditor to save once
/// (`jitgate audit --public-key`) and pin from then on.
pub async fn public_key(ctx: Ctx) -> Result<Resp, ApiError> {
    let Some(public_key) = ctx.state.grants.audit_public_key(&ctx.caller)? else {
        return Err(ApiError::not_found(
            "this daemon signs no audit checkpoints",
        ));
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "algorithm": "ed25519",
            "public_key": public_key,
            "checkpoint_every": crate::audit_anchor::CHECKPOINT_EVERY,
        }),
    ))
}
