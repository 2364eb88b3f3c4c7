//! Client subcommands: one API call each (audit --verify reads the chain and
//! checks it locally, independently of the server's own verification).

use super::api::{Api, ApiFailure};
use super::{table, ApiArgs, Command};
use serde_json::{json, Value};
use std::process::ExitCode;

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn remaining(v: &Value) -> String {
    match v.as_i64() {
        Some(n) if n > 0 => {
            humantime::format_duration(std::time::Duration::from_secs(n as u64)).to_string()
        }
        _ => "-".into(),
    }
}

fn enc(x: &str) -> String {
    let mut out = String::new();
    for b in x.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub async fn client_command(args: ApiArgs, cmd: Command) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args)?;
    match run(&api, args.json, cmd).await {
        Ok(code) => Ok(code),
        Err(e) => {
            if let Some(f) = e.downcast_ref::<ApiFailure>() {
                eprintln!("error: {f}");
                return Ok(ExitCode::from(1));
            }
            Err(e)
        }
    }
}

fn request_line(r: &Value) -> String {
    match r["state"].as_str() {
        Some("approved") => format!(
            "request {} approved: grant {} for {} active until {}",
            s(&r["id"]),
            s(&r["grant_id"]),
            s(&r["target"]),
            s(&r["grant"]["expires_at"])
        ),
        Some("pending") => format!(
            "request {} for {} is pending ({} of {} approvals)",
            s(&r["id"]),
            s(&r["target"]),
            r["approvals"].as_array().map(|a| a.len()).unwrap_or(0),
            s(&r["approvals_required"])
        ),
        _ => format!("request {} is {}", s(&r["id"]), s(&r["state"])),
    }
}

async fn run(api: &Api, as_json: bool, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Request {
            target,
            duration,
            reason,
        } => {
            let mut body = json!({"target": target, "reason": reason});
            if let Some(d) = duration {
                body["duration"] = d.into();
            }
            let r = api.post("/v1/requests", body).await?;
            if as_json {
                print_json(&r)
            } else {
                println!("{}", request_line(&r))
            }
        }
        Command::Requests { state, limit } => {
            let r = api
                .get(&format!(
                    "/v1/requests{}",
                    query(&[("state", state), ("limit", limit.map(|l| l.to_string()))])
                ))
                .await?;
            if as_json {
                print_json(&r);
            } else {
                let rows: Vec<Vec<String>> = r["requests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        vec![
                            s(&x["id"]),
                            s(&x["requester"]),
                            s(&x["target"]),
                            s(&x["duration"]),
                            s(&x["state"]),
                            format!(
                                "{}/{}",
                                x["approvals"].as_array().map(|a| a.len()).unwrap_or(0),
                                s(&x["approvals_required"])
                            ),
                            s(&x["created_at"]),
                            s(&x["reason"]),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "REQUESTER",
                        "TARGET",
                        "DURATION",
                        "STATE",
                        "APPROVALS",
                        "CREATED",
                        "REASON",
                    ],
                    &rows,
                );
            }
        }
        Command::Approve {
            request_id,
            comment,
        } => {
            let r = api
                .post(
                    &format!("/v1/requests/{}/approve", enc(&request_id)),
                    json!({"comment": comment}),
                )
                .await?;
            if as_json {
                print_json(&r)
            } else {
                println!("{}", request_line(&r))
            }
        }
        Command::Deny { request_id, reason } => {
            let r = api
                .post(
                    &format!("/v1/requests/{}/deny", enc(&request_id)),
                    json!({"reason": reason}),
                )
                .await?;
            if as_json {
                print_json(&r)
            } else {
                println!("{}", request_line(&r))
            }
        }
        Command::Cancel { request_id } => {
            let r = api
                .post(
                    &format!("/v1/requests/{}/cancel", enc(&request_id)),
                    json!({}),
                )
                .await?;
            if as_json {
                print_json(&r)
            } else {
                println!("{}", request_line(&r))
            }
        }
        Command::Grants {
            state,
            user,
            target,
            limit,
        } => {
            let q = query(&[
                ("state", state),
                ("user", user),
                ("target", target),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            let r = api.get(&format!("/v1/grants{q}")).await?;
            if as_json {
                print_json(&r);
            } else {
                let rows: Vec<Vec<String>> = r["grants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|g| {
                        vec![
                            s(&g["id"]),
                            s(&g["user"]),
                            s(&g["target"]),
                            s(&g["state"]),
                            s(&g["expires_at"]),
                            remaining(&g["remaining_seconds"]),
                            s(&g["end_reason"]),
                        ]
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "USER",
                        "TARGET",
                        "STATE",
                        "EXPIRES",
                        "REMAINING",
                        "ENDED",
                    ],
                    &rows,
                );
            }
        }
        Command::Secret { grant_id } => {
            let r = api
                .post(&format!("/v1/grants/{}/secret", enc(&grant_id)), json!({}))
                .await?;
            if as_json {
                print_json(&r)
            } else {
                // Only the secret on stdout, so `export X=$(jitgate secret G)` works.
                println!("{}", s(&r["secret"]));
                eprintln!("This secret is shown once and dies with the grant.");
            }
        }
        Command::Revoke { grant_id, reason } => {
            let r = api
                .post(
                    &format!("/v1/grants/{}/revoke", enc(&grant_id)),
                    json!({"reason": reason}),
                )
                .await?;
            if as_json {
                print_json(&r)
            } else {
                println!(
                    "revoked {}; {} live session(s) closed",
                    grant_id,
                    s(&r["sessions_terminated"])
                );
            }
        }
        Command::Sessions { user, target } => {
            let r = api
                .get(&format!(
                    "/v1/sessions{}",
                    query(&[("user", user), ("target", target)])
                ))
                .await?;
            if as_json {
                print_json(&r);
            } else {
                let rows: Vec<Vec<String>> = r["sessions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
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
                    })
                    .collect();
                table::print(
                    &[
                        "ID",
                        "USER",
                        "TARGET",
                        "KIND",
                        "CLIENT",
                        "STARTED",
                        "REMAINING",
                        "BYTES IN/OUT",
                    ],
                    &rows,
                );
            }
        }
        Command::Terminate { session_id, reason } => {
            let r = api
                .post(
                    &format!("/v1/sessions/{}/terminate", enc(&session_id)),
                    json!({"reason": reason}),
                )
                .await?;
            if as_json {
                print_json(&r)
            } else {
                println!(
                    "terminated {session_id}; {} session(s) closed",
                    s(&r["sessions_terminated"])
                );
            }
        }
        Command::Lock { user, reason } => {
            let r = api
                .post(
                    &format!("/v1/users/{}/lock", enc(&user)),
                    json!({"reason": reason}),
                )
                .await?;
            if as_json {
                print_json(&r)
            } else {
                println!(
                    "locked {user}: {} grant(s) revoked, {} session(s) closed",
                    s(&r["grants_revoked"]),
                    s(&r["sessions_terminated"])
                );
            }
        }
        Command::Unlock { user } => {
            let r = api
                .post(&format!("/v1/users/{}/unlock", enc(&user)), json!({}))
                .await?;
            if as_json {
                print_json(&r)
            } else if r["was_locked"] == Value::Bool(true) {
                println!("unlocked {user}");
            } else {
                println!("{user} was not locked");
            }
        }
        Command::Whoami => {
            let r = api.get("/v1/whoami").await?;
            if as_json {
                print_json(&r)
            } else {
                println!(
                    "user: {}{}",
                    s(&r["user"]),
                    if r["admin"] == Value::Bool(true) {
                        " (admin)"
                    } else {
                        ""
                    }
                );
                println!("approver of: {}", s(&r["approver_of"]));
                println!("instance: {}", s(&r["instance"]));
                println!("tcp tls fingerprint: {}", s(&r["tcp_tls_fingerprint"]));
            }
        }
        Command::Audit {
            verify,
            after,
            limit,
        } => return audit(api, as_json, verify, after, limit).await,
        Command::Serve { .. }
        | Command::CheckConfig { .. }
        | Command::Token { .. }
        | Command::Connect(_) => {
            unreachable!("handled in main")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(
    api: &Api,
    as_json: bool,
    verify: bool,
    after: Option<i64>,
    limit: Option<u32>,
) -> anyhow::Result<ExitCode> {
    if !verify {
        let q = query(&[
            ("after", after.map(|a| a.to_string())),
            ("limit", limit.map(|l| l.to_string())),
        ]);
        let r = api.get(&format!("/v1/audit{q}")).await?;
        if as_json {
            print_json(&r);
        } else {
            let rows: Vec<Vec<String>> = r["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        s(&e["seq"]),
                        s(&e["at"]),
                        s(&e["actor"]),
                        s(&e["action"]),
                        s(&e["subject"]),
                        s(&e["detail"]),
                    ]
                })
                .collect();
            table::print(
                &["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"],
                &rows,
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Read the whole chain and check it here, trusting nothing the server computed.
    let mut records = Vec::new();
    let mut cursor = 0i64;
    loop {
        let page = api
            .get(&format!("/v1/audit?after={cursor}&limit=1000"))
            .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for e in &events {
            records.push(jitgate_record(e));
        }
        cursor = records.last().map(|r| r.seq).unwrap_or(cursor);
    }
    let server = api.get("/v1/audit/verify").await?;
    let last = records
        .last()
        .map(|r| (r.seq, r.hash.clone()))
        .unwrap_or((0, crate::audit::GENESIS.to_string()));
    let mut local = crate::audit::verify(&records, (last.0, &last.1));
    // The head (deleted newest rows) is only known to the server.
    if local.ok && server["ok"] == Value::Bool(false) {
        local.ok = false;
        local.first_bad_seq = server["first_bad_seq"].as_i64();
        local.problem = server["problem"].as_str().map(str::to_string);
    }
    if as_json {
        print_json(&serde_json::to_value(&local)?);
    } else if local.ok {
        println!("audit chain ok: {} events verified", local.events);
    } else {
        println!(
            "audit chain BROKEN at seq {}: {}",
            local
                .first_bad_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            local.problem.clone().unwrap_or_default()
        );
    }
    Ok(if local.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn jitgate_record(e: &Value) -> crate::audit::AuditRecord {
    crate::audit::AuditRecord {
        seq: e["seq"].as_i64().unwrap_or(-1),
        at_ms: e["at_ms"].as_i64().unwrap_or(-1),
        actor: s(&e["actor"]),
        action: s(&e["action"]),
        subject: s(&e["subject"]),
        detail: e["detail_raw"].as_str().unwrap_or_default().to_string(),
        prev_hash: s(&e["prev_hash"]),
        hash: s(&e["hash"]),
    }
}
