//! Client subcommands: one API call each, printed as a line or a table (or
//! the API's JSON with `--json`).

use super::api::{Api, ApiFailure};
use super::format::{enc, esc, list, note, query, remaining, s, show};
use super::{ApiArgs, Command};
use clap::ValueEnum;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Runs a client command with the effective API options `args`.
pub async fn client_command(args: ApiArgs, cmd: Command) -> anyhow::Result<ExitCode> {
    if let Command::Login { no_browser, .. } = cmd {
        return super::login::login(&args, no_browser).await;
    }
    let args = with_saved_signin(args)?;
    if let Command::Logout { .. } = cmd {
        return super::login::logout(&args).await;
    }
    let api = Api::new(&args)?;
    match run(&api, args.json, cmd).await {
        Ok(code) => Ok(code),
        Err(e) => {
            if let Some(f) = e.downcast_ref::<ApiFailure>() {
                note(&format!("error: {f}"));
                return Ok(ExitCode::from(1));
            }
            Err(e)
        }
    }
}

/// Credentials in SPEC's order: --url/--token, then JITGATE_URL /
/// JITGATE_TOKEN, then the sign-in saved by `jitgate login` (for the URL
/// given, or with none given, the most recent one).
fn with_saved_signin(mut args: ApiArgs) -> anyhow::Result<ApiArgs> {
    if args.token.is_some() {
        return Ok(args);
    }
    let saved = if args.url_given {
        super::signin_store::load(&args.url)?
    } else {
        super::signin_store::latest()?
    };
    if let Some(s) = saved {
        args.url = s.url;
        args.token = Some(s.token);
    }
    Ok(args)
}

/// Checks `reason` against the target's `reason_pattern` before sending,
/// as `GET /v1/targets` lists it: Some(why) when it would be refused.
/// Anything that stops the check (an older server, no such target) leaves
/// the decision to the server, which applies the same rule.
async fn reason_refused(api: &Api, target: &str, reason: &str) -> Option<String> {
    let targets = api.get("/v1/targets").await.ok()?;
    let t = targets["targets"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == target)?;
    let pattern = t["reason_pattern"].as_str()?;
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .ok()?;
    (!re.is_match(reason)).then(|| {
        format!(
            "the reason must match policy {}'s reason_pattern {:?} (e.g. a ticket id); nothing was sent",
            esc(t["policy"].as_str().unwrap_or("?")),
            esc(pattern)
        )
    })
}

/// The API's name for a state chosen with `--state`.
fn state_name(v: Option<impl ValueEnum>) -> Option<String> {
    v.and_then(|v| v.to_possible_value())
        .map(|p| p.get_name().to_string())
}

fn request_line(r: &Value) -> String {
    let approvals = r["approvals"].as_array().map(|a| a.len()).unwrap_or(0);
    match r["state"].as_str() {
        Some("approved") if r["grant"]["break_glass"] == true => format!(
            "BREAK-GLASS: grant {} for {} active until {}; an approver will review it",
            s(&r["grant_id"]),
            s(&r["target"]),
            s(&r["grant"]["expires_at"])
        ),
        Some("approved") if r["grant"]["state"] == "scheduled" => format!(
            "request {} approved: grant {} for {} scheduled from {} until {}",
            s(&r["id"]),
            s(&r["grant_id"]),
            s(&r["target"]),
            s(&r["grant"]["starts_at"]),
            s(&r["grant"]["expires_at"])
        ),
        Some("approved") => format!(
            "request {} approved: grant {} for {} active until {}",
            s(&r["id"]),
            s(&r["grant_id"]),
            s(&r["target"]),
            s(&r["grant"]["expires_at"])
        ),
        Some("pending") => format!(
            "request {} for {} is pending ({approvals} of {} approvals)",
            s(&r["id"]),
            s(&r["target"]),
            s(&r["approvals_required"])
        ),
        _ => format!("request {} is {}", s(&r["id"]), s(&r["state"])),
    }
}

fn limit_param(limit: Option<u32>) -> Option<String> {
    limit.map(|l| l.to_string())
}

async fn run(api: &Api, as_json: bool, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Request {
            target,
            duration,
            reason,
            wait,
            wait_timeout,
            at,
            break_glass,
            ..
        } => {
            let mut body = json!({"target": target, "reason": reason});
            if let Some(d) = duration {
                body["duration"] = d.into();
            }
            if let Some(at) = at {
                body["starts_at"] = at.into();
            }
            if break_glass {
                body["break_glass"] = true.into();
            }
            if let Some(why) = reason_refused(api, &target, &reason).await {
                note(&format!("error: {why}"));
                return Ok(ExitCode::from(1));
            }
            let created = api.post("/v1/requests", body).await?;
            if wait {
                let limit = crate::duration::parse(&wait_timeout)?;
                return super::wait::wait(api, created, limit, as_json, request_line).await;
            }
            show(as_json, &created, request_line)?;
        }
        Command::Ssh { target, args, .. } => return super::ssh::run(api, &target, &args).await,
        Command::Psql { target, args, .. } => return super::psql::run(api, &target, &args).await,
        Command::Requests { state, limit, .. } => {
            let r = api
                .get(&format!(
                    "/v1/requests{}",
                    query(&[("state", state_name(state)), ("limit", limit_param(limit))])
                ))
                .await?;
            let headers = [
                "ID",
                "REQUESTER",
                "TARGET",
                "DURATION",
                "STATE",
                "APPROVALS",
                "CREATED",
                "REASON",
            ];
            list(as_json, &r, "requests", &headers, |x| {
                let approvals = x["approvals"].as_array().map(|a| a.len()).unwrap_or(0);
                vec![
                    s(&x["id"]),
                    s(&x["requester"]),
                    s(&x["target"]),
                    s(&x["duration"]),
                    s(&x["state"]),
                    format!("{approvals}/{}", s(&x["approvals_required"])),
                    s(&x["created_at"]),
                    s(&x["reason"]),
                ]
            })?;
        }
        Command::Approve {
            request_id,
            comment,
            ..
        } => {
            let path = format!("/v1/requests/{}/approve", enc(&request_id));
            show(
                as_json,
                &api.post(&path, json!({"comment": comment})).await?,
                request_line,
            )?;
        }
        Command::Deny {
            request_id, reason, ..
        } => {
            let path = format!("/v1/requests/{}/deny", enc(&request_id));
            show(
                as_json,
                &api.post(&path, json!({"reason": reason})).await?,
                request_line,
            )?;
        }
        Command::Cancel { request_id, .. } => {
            let path = format!("/v1/requests/{}/cancel", enc(&request_id));
            show(as_json, &api.post(&path, json!({})).await?, request_line)?;
        }
        Command::Grants {
            state,
            user,
            target,
            limit,
            ..
        } => {
            let q = query(&[
                ("state", state_name(state)),
                ("user", user),
                ("target", target),
                ("limit", limit_param(limit)),
            ]);
            let r = api.get(&format!("/v1/grants{q}")).await?;
            let headers = [
                "ID",
                "USER",
                "TARGET",
                "STATE",
                "EXPIRES",
                "REMAINING",
                "ENDED",
            ];
            list(as_json, &r, "grants", &headers, |g| {
                vec![
                    s(&g["id"]),
                    s(&g["user"]),
                    s(&g["target"]),
                    s(&g["state"]),
                    s(&g["expires_at"]),
                    remaining(&g["remaining_seconds"]),
                    s(&g["end_reason"]),
                ]
            })?;
        }
        Command::Secret {
            grant_id, rotate, ..
        } => {
            let r = api
                .post(
                    &format!("/v1/grants/{}/secret", enc(&grant_id)),
                    json!({ "rotate": rotate }),
                )
                .await?;
            // Only the secret on stdout, so `export X=$(jitgate secret G)` works.
            show(as_json, &r, |r| s(&r["secret"]))?;
            if !as_json {
                let valid = r["secrets_valid"].as_u64().unwrap_or(1);
                let max = r["secrets_max"].as_u64().unwrap_or(0);
                if rotate {
                    note("Earlier secrets of this grant were revoked; this is its only valid secret (sessions already open stay open).");
                } else {
                    note(&format!("The grant now has {valid} valid secret(s) of at most {max}; earlier ones still work (`--rotate` revokes them)."));
                }
                note("This secret is shown once and dies with the grant.");
            }
        }
        Command::Extend {
            grant_id,
            duration,
            reason,
            ..
        } => {
            let mut body = json!({"reason": reason});
            if let Some(d) = duration {
                body["duration"] = d.into();
            }
            let r = api
                .post(&format!("/v1/grants/{}/extend", enc(&grant_id)), body)
                .await?;
            show(as_json, &r, |r| match r["state"].as_str() {
                Some("approved") => format!(
                    "grant {} extended: access to {} until {} (request {})",
                    esc(&grant_id),
                    s(&r["target"]),
                    s(&r["grant"]["expires_at"]),
                    s(&r["id"])
                ),
                _ => format!(
                    "extension {} of grant {} by {} is {} ({} approval(s) required)",
                    s(&r["id"]),
                    esc(&grant_id),
                    s(&r["duration"]),
                    s(&r["state"]),
                    s(&r["approvals_required"])
                ),
            })?;
        }
        Command::Review {
            grant_id,
            verdict,
            comment,
            ..
        } => {
            let body = json!({"verdict": state_name(Some(verdict)), "comment": comment});
            let r = api
                .post(&format!("/v1/grants/{}/review", enc(&grant_id)), body)
                .await?;
            show(as_json, &r, |g| {
                format!(
                    "break-glass grant {} of {} reviewed: {}",
                    esc(&grant_id),
                    s(&g["user"]),
                    s(&g["review"])
                )
            })?;
        }
        Command::Revoke {
            grant_id, reason, ..
        } => {
            let r = api
                .post(
                    &format!("/v1/grants/{}/revoke", enc(&grant_id)),
                    json!({"reason": reason}),
                )
                .await?;
            show(as_json, &r, |r| {
                format!(
                    "revoked {}; {} live session(s) closed",
                    esc(&grant_id),
                    s(&r["sessions_terminated"])
                )
            })?;
        }
        Command::Sessions { user, target, .. } => {
            let r = api
                .get(&format!(
                    "/v1/sessions{}",
                    query(&[("user", user), ("target", target)])
                ))
                .await?;
            let headers = [
                "ID",
                "USER",
                "TARGET",
                "KIND",
                "CLIENT",
                "STARTED",
                "REMAINING",
                "BYTES IN/OUT",
            ];
            list(as_json, &r, "sessions", &headers, |x| {
                vec![
                    s(&x["id"]),
                    s(&x["user"]),
                    s(&x["target"]),
                    s(&x["kind"]),
                    s(&x["client_addr"]),
                    s(&x["started_at"]),
                    remaining(&x["remaining_seconds"]),
                    format!("{}/{}", s(&x["bytes_in"]), s(&x["bytes_out"])),
                ]
            })?;
        }
        Command::Terminate {
            session_id, reason, ..
        } => {
            let path = format!("/v1/sessions/{}/terminate", enc(&session_id));
            let r = api.post(&path, json!({"reason": reason})).await?;
            show(as_json, &r, |r| {
                format!(
                    "terminated {}; {} session(s) closed",
                    esc(&session_id),
                    s(&r["sessions_terminated"])
                )
            })?;
        }
        Command::Lock { user, reason, .. } => {
            let r = api
                .post(
                    &format!("/v1/users/{}/lock", enc(&user)),
                    json!({"reason": reason}),
                )
                .await?;
            show(as_json, &r, |r| {
                format!(
                    "locked {}: {} grant(s) revoked, {} session(s) closed",
                    esc(&user),
                    s(&r["grants_revoked"]),
                    s(&r["sessions_terminated"])
                )
            })?;
        }
        Command::Unlock { user, .. } => {
            let r = api
                .post(&format!("/v1/users/{}/unlock", enc(&user)), json!({}))
                .await?;
            show(as_json, &r, |r| {
                if r["was_locked"] == Value::Bool(true) {
                    format!("unlocked {}", esc(&user))
                } else {
                    format!("{} was not locked", esc(&user))
                }
            })?;
        }
        Command::Whoami { .. } => {
            show(as_json, &api.get("/v1/whoami").await?, |r| {
                let admin = if r["admin"] == Value::Bool(true) {
                    " (admin)"
                } else {
                    ""
                };
                let groups: Vec<String> = r["groups"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                let until = match &r["expires_at"] {
                    Value::Null => "- (static token)".to_string(),
                    v => s(v),
                };
                format!(
                    "user: {}{admin}\ngroups: {}\nadmin: {}\nvia: {}\nuntil: {until}\napprover of: {}\ninstance: {}\ntcp tls fingerprint: {}",
                    s(&r["user"]),
                    if groups.is_empty() { "-".to_string() } else { groups.join(", ") },
                    if r["admin"] == Value::Bool(true) { "yes" } else { "no" },
                    s(&r["via"]),
                    s(&r["approver_of"]),
                    s(&r["instance"]),
                    s(&r["tcp_tls_fingerprint"])
                )
            })?;
        }
        Command::Recordings { user, target, .. } => {
            return super::recordings::list_recordings(api, as_json, user, target).await;
        }
        Command::Play {
            session_id, speed, ..
        } => return super::recordings::play(api, &session_id, speed).await,
        Command::Watch { session_id, .. } => {
            return super::recordings::watch(api, &session_id).await
        }
        Command::Audit {
            verify,
            strict,
            public_key,
            public_key_file,
            after,
            limit,
            ..
        } => {
            let mode = super::audit::Mode::new(verify, strict, public_key, public_key_file);
            return super::audit::run(api, as_json, mode, after, limit).await;
        }
        Command::Serve { .. }
        | Command::CheckConfig { .. }
        | Command::Token { .. }
        | Command::Connect(_)
        | Command::Completions { .. }
        | Command::Man { .. } => {
            anyhow::bail!("internal: daemon commands are dispatched in main")
        }
        Command::Login { .. } | Command::Logout { .. } => {
            anyhow::bail!("internal: login and logout are dispatched in client_command")
        }
    }
    Ok(ExitCode::SUCCESS)
}
