use super::Ctx;
use crate::admin::error::ApiError;
use crate::admin::http::{json, Resp};
use hyper::StatusCode;

pub async fn whoami(ctx: Ctx) -> Result<Resp, ApiError> {
    let approver_of: Vec<&str> = ctx
        .cfg
        .policies
        .iter()
        .filter(|p| ctx.cfg.is_member(&ctx.caller.user, &p.approvers))
        .map(|p| p.name.as_str())
        .collect();
    let locked = ctx
        .state
        .grants
        .store
        .get_lock(&ctx.caller.user)
        .await
        .map_err(crate::grants::GrantError::from)?
        .is_some();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "user": ctx.caller.user,
            "admin": ctx.caller.admin,
            "locked": locked,
            "approver_of": approver_of,
            "instance": ctx.cfg.instance,
            "version": env!("CARGO_PKG_VERSION"),
            "tcp_tls_fingerprint": ctx.state.tcp_fingerprint.get(),
        }),
    ))
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
