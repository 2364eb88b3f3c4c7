//! `jitgate request ... --wait`: after creating the request, wait for its
//! decision and print the grant. Exit 0 when approved; 1 when denied,
//! cancelled or expired, or when `--wait-timeout` passes first (the request
//! then stays pending).
//!
//! The API has no push for a requester, so this polls `GET
//! /v1/requests/{id}`, gently: every second at first, backing off to every
//! 5 s, so a long wait costs the server a request per 5 s.

use super::api::Api;
use super::format::{enc, esc, note, s, show};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

const FIRST_POLL: Duration = Duration::from_secs(1);
const LONGEST_POLL: Duration = Duration::from_secs(5);

pub async fn wait(
    api: &Api,
    created: Value,
    limit: Duration,
    as_json: bool,
    line: fn(&Value) -> String,
) -> anyhow::Result<ExitCode> {
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let deadline = Instant::now() + limit;
    let mut r = created;
    let mut pause = FIRST_POLL;
    let mut told = false;
    loop {
        match r["state"].as_str() {
            Some("approved") => {
                show(as_json, &r, line)?;
                return Ok(ExitCode::SUCCESS);
            }
            Some("pending") => {}
            _ => {
                if as_json {
                    show(true, &r, line)?;
                }
                note(&ended_line(&r));
                return Ok(ExitCode::from(1));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            if as_json {
                show(true, &r, line)?;
            }
            note(&format!(
                "jitgate: no decision on request {} within {}; it stays pending (`jitgate requests --state pending`, `jitgate cancel {}`)",
                esc(&id),
                humantime::format_duration(limit),
                esc(&id)
            ));
            return Ok(ExitCode::from(1));
        }
        if !told {
            note(&format!(
                "waiting for approval of request {} ({} of {} approvals)...",
                esc(&id),
                r["approvals"].as_array().map(|a| a.len()).unwrap_or(0),
                s(&r["approvals_required"])
            ));
            told = true;
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(LONGEST_POLL);
        r = api.get(&format!("/v1/requests/{}", enc(&id))).await?;
    }
}

/// Why a request is over without a grant.
fn ended_line(r: &Value) -> String {
    let id = s(&r["id"]);
    match r["state"].as_str() {
        Some("denied") => format!(
            "jitgate: request {id} was denied by {}: {}",
            s(&r["decided_by"]),
            s(&r["decision_reason"])
        ),
        Some("expired") => format!("jitgate: request {id} expired before anyone decided it"),
        Some("cancelled") => format!("jitgate: request {id} was cancelled"),
        _ => format!("jitgate: request {id} is {}", s(&r["state"])),
    }
}
