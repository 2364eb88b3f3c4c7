//! `jitgate audit [--verify]`. Verification reads the whole chain and
//! recomputes every hash here, trusting nothing the server computed; only the
//! chain head (which reveals deleted newest rows) comes from the server.

use super::api::Api;
use super::format::{list, out, print_json, query, s};
use serde_json::Value;
use std::process::ExitCode;

pub async fn run(
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
        list(
            as_json,
            &r,
            "events",
            &["SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "DETAIL"],
            |e| {
                ["seq", "at", "actor", "action", "subject", "detail"]
                    .iter()
                    .map(|k| s(&e[*k]))
                    .collect()
            },
        )?;
        return Ok(ExitCode::SUCCESS);
    }
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
        records.extend(events.iter().map(record));
        cursor = records.last().map(|r| r.seq).unwrap_or(cursor);
    }
    let server = api.get("/v1/audit/verify").await?;
    let last = records
        .last()
        .map(|r| (r.seq, r.hash.clone()))
        .unwrap_or((0, crate::audit::GENESIS.to_string()));
    let mut local = crate::audit::verify(&records, (last.0, &last.1));
    if local.ok && server["ok"] == Value::Bool(false) {
        local.ok = false;
        local.first_bad_seq = server["first_bad_seq"].as_i64();
        local.problem = server["problem"].as_str().map(str::to_string);
    }
    if as_json {
        print_json(&serde_json::to_value(&local)?)?;
    } else if local.ok {
        out(&format!("audit chain ok: {} events verified", local.events))?;
    } else {
        out(&format!(
            "audit chain BROKEN at seq {}: {}",
            local
                .first_bad_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            crate::text::escape(&local.problem.clone().unwrap_or_default())
        ))?;
    }
    Ok(if local.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The stored event byte for byte, as hashed: never the escaped display
/// form ([`s`]), or text with control characters would fail verification.
fn record(e: &Value) -> crate::audit::AuditRecord {
    let raw = |k: &str| e[k].as_str().unwrap_or_default().to_string();
    crate::audit::AuditRecord {
        seq: e["seq"].as_i64().unwrap_or(-1),
        at_ms: e["at_ms"].as_i64().unwrap_or(-1),
        actor: raw("actor"),
        action: raw("action"),
        subject: raw("subject"),
        detail: raw("detail_raw"),
        prev_hash: raw("prev_hash"),
        hash: raw("hash"),
    }
}
