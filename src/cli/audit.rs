//! `jitgate audit [--verify [--strict] | --public-key]`. Verification reads the whole
//! chain and its signed checkpoints and recomputes every hash here, trusting
//! nothing the server computed. The checkpoint signatures are checked with a
//! public key the auditor pinned (`--public-key-file`, `JITGATE_AUDIT_PUBKEY`),
//! so a server whose store was rewritten, hashes and all, cannot pass
//! (docs/security.md). A chain that merely hashes right is vouched for by
//! no one (a store writer recomputes it): the summary always says when the
//! newest checkpoint was signed, and `--strict` fails unless one covers
//! every event and the key was pinned.

use super::api::Api;
use super::format::{list, out, print_json, query, s};
use crate::audit_anchor::{parse_public_key, verify_anchored, Checkpoint, CHECKPOINT_EVERY};
use anyhow::Context;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Environment variable holding the pinned public key itself.
pub const PUBKEY_ENV: &str = "JITGATE_AUDIT_PUBKEY";

pub enum Mode {
    List,
    PublicKey,
    Verify {
        strict: bool,
        key_file: Option<PathBuf>,
    },
}

impl Mode {
    pub fn new(verify: bool, strict: bool, public_key: bool, key_file: Option<PathBuf>) -> Mode {
        match (verify, public_key) {
            (true, _) => Mode::Verify { strict, key_file },
            (false, true) => Mode::PublicKey,
            (false, false) => Mode::List,
        }
    }
}

pub async fn run(
    api: &Api,
    as_json: bool,
    mode: Mode,
    after: Option<i64>,
    limit: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let (strict, key_file) = match mode {
        Mode::Verify { strict, key_file } => (strict, key_file),
        Mode::PublicKey => {
            let r = api.get("/v1/audit/public-key").await?;
            if as_json {
                print_json(&r)?;
            } else {
                out(&s(&r["public_key"]))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Mode::List => {
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
    };
    let pinned = pinned_key(key_file.as_deref())?;
    let (key, key_text, is_pinned) = match pinned {
        Some(k) => (
            k,
            format!("{}{}", crate::audit_anchor::KEY_PREFIX, hex::encode(k)),
            true,
        ),
        None => {
            let r = api.get("/v1/audit/public-key").await?;
            let text = s(&r["public_key"]);
            let k = parse_public_key(&text)
                .context("the server reported no usable audit public key")?;
            (k, text, false)
        }
    };
    let (records, checkpoints) = fetch_chain(api, &key).await?;
    let mut v = verify_anchored(&records, &checkpoints, &key);
    // The server's own verdict can only make the result worse, never better.
    let server = api.get("/v1/audit/verify").await?;
    if v.chain.ok && server["ok"] == Value::Bool(false) {
        v.chain.ok = false;
        v.chain.first_bad_seq = server["first_bad_seq"].as_i64();
        v.chain.problem = server["problem"].as_str().map(str::to_string);
    }
    let recordings = super::recordings::verify_recordings(api, &records).await?;
    let newest = v.anchored_at_ms.map(crate::clock::rfc3339);
    // Vouched for: every event under a checkpoint that verified with a key
    // the auditor holds.
    let vouched = is_pinned && v.unanchored_events == 0 && v.chain.ok;
    if as_json {
        let mut j = serde_json::to_value(&v)?;
        j["public_key"] = Value::String(key_text.clone());
        j["key_pinned"] = Value::Bool(is_pinned);
        j["newest_checkpoint_at"] = newest.clone().map_or(Value::Null, Value::String);
        j["vouched"] = Value::Bool(vouched);
        j["recordings"] = recordings.json();
        print_json(&j)?;
    } else if v.chain.ok {
        out(&format!(
            "audit chain ok: {} events verified, signed checkpoints through seq {} ({} checked)",
            v.chain.events, v.anchored_through, v.checkpoints
        ))?;
        if v.unanchored_events > 0 {
            out(&format!(
                "note: events {} to {} come after the newest signed checkpoint: only the plain \
                 hash chain protects them",
                v.anchored_through + 1,
                v.anchored_through + v.unanchored_events
            ))?;
        }
    } else {
        out(&format!(
            "audit chain BROKEN at seq {}: {}",
            v.chain
                .first_bad_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            crate::text::escape(&v.chain.problem.clone().unwrap_or_default())
        ))?;
    }
    if !as_json {
        for line in recordings.lines() {
            out(&line)?;
        }
    }
    if !as_json {
        out(&match &newest {
            Some(at) => format!(
                "newest signed checkpoint: seq {} at {at}",
                v.anchored_through
            ),
            None => "no checkpoint: no signed checkpoint verifies with this key".to_string(),
        })?;
    }
    if !is_pinned && !as_json {
        out(&format!(
            "warning: the public key was not pinned (--public-key-file or {PUBKEY_ENV}); \
             checked against the key the server reports, {key_text}"
        ))?;
    }
    if strict && !vouched && v.chain.ok && !as_json {
        let mut why = Vec::new();
        if !is_pinned {
            why.push("the public key was not pinned".to_string());
        }
        if v.unanchored_events > 0 {
            why.push(format!(
                "{} events come after the newest signed checkpoint",
                v.unanchored_events
            ));
        }
        out(&format!(
            "strict: FAILED: no checkpoint vouches for the whole chain ({})",
            why.join("; ")
        ))?;
    }
    Ok(if v.chain.ok && recordings.ok() && (vouched || !strict) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The key the auditor saved, from `--public-key-file` or the environment.
fn pinned_key(file: Option<&std::path::Path>) -> anyhow::Result<Option<[u8; 32]>> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the public key file {}", f.display()))?,
        None => match std::env::var(PUBKEY_ENV) {
            Ok(t) if !t.trim().is_empty() => t,
            _ => return Ok(None),
        },
    };
    parse_public_key(&text)
        .map(Some)
        .context("the pinned audit public key is not ed25519:HEX (as `jitgate audit --public-key` prints it)")
}

/// What one page may hold: the `limit` the CLI asks for. A server sending
/// more is not answering the question asked.
const PAGE: usize = 1000;

/// Newest seq a checkpoint that verifies with `key` signed (0 if none).
fn anchored_through(checkpoints: &[Checkpoint], key: &[u8; 32]) -> i64 {
    verify_anchored(&[], checkpoints, key).anchored_through
}

/// The events and checkpoints to verify. Events are read only as far as a
/// checkpoint that verifies with `key` can vouch for them: the daemon signs
/// one with every [`CHECKPOINT_EVERY`]th event, so past `CHECKPOINT_EVERY`
/// events after the newest valid one (checkpoints are fetched again first,
/// in case some were appended meanwhile) the rest is unsigned, which the
/// verification reports, and reading on would let a server that invents a
/// continuation keep the CLI reading forever.
async fn fetch_chain(
    api: &Api,
    key: &[u8; 32],
) -> anyhow::Result<(Vec<crate::audit::AuditRecord>, Vec<Checkpoint>)> {
    let mut checkpoints = fetch_checkpoints(api, key).await?;
    let mut anchored = anchored_through(&checkpoints, key);
    let mut records: Vec<crate::audit::AuditRecord> = Vec::new();
    let mut cursor = 0i64;
    loop {
        if cursor >= anchored + CHECKPOINT_EVERY {
            checkpoints = fetch_checkpoints(api, key).await?;
            let now = anchored_through(&checkpoints, key);
            if now <= anchored {
                return Ok((records, checkpoints));
            }
            anchored = now;
        }
        let page = api
            .get(&format!("/v1/audit?after={cursor}&limit={PAGE}"))
            .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return Ok((records, checkpoints));
        }
        if events.len() > PAGE {
            anyhow::bail!(
                "the server sent {} audit events for a page of {PAGE}",
                events.len()
            );
        }
        records.extend(events.iter().map(record));
        let next = records.last().map(|r| r.seq).unwrap_or(cursor);
        if next <= cursor {
            anyhow::bail!("the server's audit pages do not advance past seq {cursor}");
        }
        cursor = next;
    }
}

/// Every checkpoint, page by page, up to the first page holding one that
/// does not verify with `key`: the verification names that one already,
/// and a server sending forged checkpoints cannot keep the CLI reading.
async fn fetch_checkpoints(api: &Api, key: &[u8; 32]) -> anyhow::Result<Vec<Checkpoint>> {
    let mut all: Vec<Checkpoint> = Vec::new();
    let mut cursor = 0i64;
    loop {
        let page = api
            .get(&format!(
                "/v1/audit/checkpoints?after={cursor}&limit={PAGE}"
            ))
            .await?;
        let list = page["checkpoints"].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return Ok(all);
        }
        if list.len() > PAGE {
            anyhow::bail!(
                "the server sent {} audit checkpoints for a page of {PAGE}",
                list.len()
            );
        }
        let mut this_page = Vec::with_capacity(list.len());
        for c in list {
            // A malformed entry is kept as one that cannot verify.
            this_page.push(serde_json::from_value(c).unwrap_or_else(|_| Checkpoint {
                seq: cursor + 1,
                from_seq: -1,
                at_ms: 0,
                instance: String::new(),
                head: String::new(),
                hashes: Vec::new(),
                public_key: String::new(),
                signature: String::new(),
            }));
        }
        let all_verify = verify_anchored(&[], &this_page, key).checkpoints == this_page.len();
        all.extend(this_page);
        let next = all.last().map(|c| c.seq).unwrap_or(cursor);
        if !all_verify {
            return Ok(all);
        }
        if next <= cursor {
            anyhow::bail!("the server's checkpoint pages do not advance past seq {cursor}");
        }
        cursor = next;
    }
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
