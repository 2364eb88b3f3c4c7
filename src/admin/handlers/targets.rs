//! `GET /v1/targets`: what the caller may ask for, with the governing
//! policy's limits. The console's request form and `jitgate ssh` /
//! `jitgate psql` (to print the exact `jitgate request` command) need the
//! same answer the request route would give, so it is computed by the same
//! policy lookup instead of being re-derived on the client. The form also
//! needs the lifecycle limits (`max_total`, `reason_pattern`,
//! `max_schedule_ahead`, `break_glass`) to say what it would refuse before
//! sending, and to offer break-glass only where the policy allows it.

use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, Resp};
use hyper::StatusCode;

pub async fn list(ctx: Ctx) -> Result<Resp, ApiError> {
    let fmt = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let rows: Vec<serde_json::Value> = ctx
        .cfg
        .targets
        .values()
        .filter_map(|t| {
            let p = ctx
                .cfg
                .policy_for_with(&ctx.caller.user, &ctx.caller.groups, &t.name)?;
            Some(serde_json::json!({
                "name": t.name,
                "kind": t.kind.as_str(),
                "policy": p.name,
                "default_duration": fmt(p.default_duration),
                "max_duration": fmt(p.max_duration),
                "approvals_required": p.approvals_required,
                "require_reason": p.require_reason,
                "idle_timeout": p.idle_timeout.map(fmt),
                "max_sessions_per_grant": p.max_sessions_per_grant,
                "max_total": fmt(p.max_total),
                "reason_pattern": p.reason_pattern.as_ref().map(|r| r.source.as_str()),
                "max_schedule_ahead": fmt(p.max_schedule_ahead),
                "break_glass": p.break_glass,
            }))
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "targets": rows }),
    ))
}
