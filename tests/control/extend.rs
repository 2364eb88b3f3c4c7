//! Grant lifecycle through the real daemon's API and CLI: `reason_pattern`
//! on requests and extensions, extension in place (decided like a request,
//! never by the owner, capped by `max_total`, cancelled with its grant).

use crate::common;

use common::daemon::*;
use common::wait::OutputWithin;
use serde_json::{json, Value};

/// `tick-*` targets: a ticket id in every reason, one approval, extensions
/// up to 20 minutes in all. `self-*`: no approval, so extensions apply at once.
pub const LIFECYCLE_POLICIES: &str = r#"
[[targets]]
name = "tick-db"
kind = "tcp"
address = "127.0.0.1:6390"

[[targets]]
name = "self-db"
kind = "tcp"
address = "127.0.0.1:6391"

[[policies]]
name = "ticketed"
requesters = ["group:oncall"]
targets = ["tick-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "10m"
max_total = "20m"
reason_pattern = "^(INC|CHG)-[0-9]+"

[[policies]]
name = "selfserve"
requesters = ["group:oncall"]
targets = ["self-*"]
approvals_required = 0
max_duration = "10m"
max_total = "25m"
"#;

fn post(d: &Daemon, path: &str, token: &str, body: Value) -> Resp {
    d.post(path, Some(token), &body.to_string())
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

#[test]
fn reason_pattern_refuses_a_request_naming_the_pattern_and_is_listed_in_targets() {
    let d = Daemon::start_with(None, LIFECYCLE_POLICIES);
    let bad = json!({"target": "tick-db", "duration": "5m", "reason": "because"});
    let r = post(&d, "/v1/requests", ALICE, bad);
    let body = common::api::assert_api_error(&r, 400, "invalid");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("^(INC|CHG)-[0-9]+"),
        "the refusal names the pattern: {body}"
    );
    let ok = json!({"target": "tick-db", "duration": "5m", "reason": "INC-1234 disk full"});
    assert_eq!(post(&d, "/v1/requests", ALICE, ok).status, 201);
    // A policy without a pattern takes any reason.
    let free = json!({"target": "self-db", "duration": "5m", "reason": "because"});
    assert_eq!(post(&d, "/v1/requests", ALICE, free).status, 201);
    let t = d.get("/v1/targets", Some(ALICE)).unwrap().json();
    let rows = t["targets"].as_array().cloned().unwrap_or_default();
    let tick = rows
        .iter()
        .find(|r| r["name"] == "tick-db")
        .expect("tick-db listed");
    assert_eq!(tick["reason_pattern"], "^(INC|CHG)-[0-9]+");
    assert_eq!(tick["max_total"], "20m");
    let free = rows
        .iter()
        .find(|r| r["name"] == "self-db")
        .expect("self-db listed");
    assert!(free["reason_pattern"].is_null(), "{free}");
}

#[test]
fn an_invalid_or_oversized_reason_pattern_is_refused_at_load() {
    for (pattern, want) in [
        ("(INC", "not a valid regular expression"),
        (r"(\\w{100}){100}", "not a valid regular expression"),
    ] {
        let extra = LIFECYCLE_POLICIES.replace("^(INC|CHG)-[0-9]+", pattern);
        let d = Daemon::configured(None, "", &extra);
        let out = std::process::Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&d.config)
            .output_within(common::wait::HANG);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{pattern}: {err}");
        assert!(
            err.contains("reason_pattern") && err.contains(want),
            "{pattern}: {err}"
        );
    }
}

fn ok(r: Resp, want: u16) -> Value {
    assert_eq!(r.status, want, "{}", r.body);
    r.json()
}

fn get(d: &Daemon, path: &str) -> Value {
    ok(d.get(path, Some(DAVE)).expect("GET"), 200)
}

fn ms(rfc3339: &Value) -> i64 {
    let s = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {rfc3339}"));
    humantime::parse_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

fn metric(d: &Daemon, name: &str) -> f64 {
    d.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn extend(d: &Daemon, token: &str, gid: &str, duration: &str, reason: &str) -> Resp {
    post(
        d,
        &format!("/v1/grants/{gid}/extend"),
        token,
        json!({"duration": duration, "reason": reason}),
    )
}

#[test]
fn an_extension_is_decided_by_an_approver_never_the_owner_and_moves_the_grants_end() {
    let hook = common::hook::Hook::start();
    let extra = format!(
        "{LIFECYCLE_POLICIES}\n[[notify]]\nurl = \"http://127.0.0.1:{}/hook\"\nevents = [\"grant.extended\"]\n",
        hook.port
    );
    let d = Daemon::start_with(None, &extra);
    let body = json!({"target": "tick-db", "duration": "10m", "reason": "INC-1 disk"});
    let rid = ok(post(&d, "/v1/requests", ALICE, body), 201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approved = ok(d.approve(&rid, CAROL), 200);
    let gid = approved["grant_id"].as_str().unwrap().to_string();
    let first_end = ms(&get(&d, &format!("/v1/grants/{gid}"))["expires_at"]);

    // reason_pattern applies to extensions too.
    let r = extend(&d, ALICE, &gid, "5m", "more time");
    let e = common::api::assert_api_error(&r, 400, "invalid");
    assert!(e.to_string().contains("^(INC|CHG)-[0-9]+"), "{e}");

    // Only the owner asks.
    let r = extend(&d, CAROL, &gid, "5m", "INC-1");
    assert_eq!(
        r.status, 403,
        "an approver cannot extend someone else's grant: {}",
        r.body
    );

    let x = ok(extend(&d, ALICE, &gid, "5m", "INC-1 still copying"), 201);
    assert_eq!(x["kind"], "extension", "{x}");
    assert_eq!(x["state"], "pending", "{x}");
    assert_eq!(x["extends_grant"], gid.as_str(), "{x}");
    let xid = x["id"].as_str().unwrap().to_string();
    // Never by the owner, whatever else they may be.
    common::api::assert_api_error(&d.approve(&xid, ALICE), 403, "forbidden");
    assert_eq!(
        ms(&get(&d, &format!("/v1/grants/{gid}"))["expires_at"]),
        first_end,
        "nothing moves before the approval"
    );
    let done = ok(d.approve(&xid, ERIN), 200);
    assert_eq!(done["state"], "approved", "{done}");
    let g = get(&d, &format!("/v1/grants/{gid}"));
    assert_eq!(ms(&g["expires_at"]), first_end + 5 * 60_000, "{g}");
    assert_eq!(g["state"], "active");

    // Audited with both ends, counted, notified.
    let audit = get(&d, "/v1/audit?limit=1000");
    let ev = audit["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["action"] == "grant.extended")
        .unwrap_or_else(|| panic!("no grant.extended in {audit}"))
        .clone();
    assert_eq!(ev["subject"], gid.as_str());
    assert_eq!(ev["actor"], "erin");
    assert_eq!(ms(&ev["detail"]["previous_expires_at"]), first_end, "{ev}");
    assert_eq!(ms(&ev["detail"]["expires_at"]), first_end + 300_000, "{ev}");
    assert_eq!(metric(&d, "jitgate_grants_extended_total"), 1.0);
    let n = hook.wait_event("grant.extended");
    assert_eq!(n["grant_id"], gid.as_str(), "{n}");
    assert_eq!(n["actor"], "erin", "{n}");
    assert_eq!(ms(&n["expires_at"]), first_end + 300_000, "{n}");
    assert_eq!(n["reason"], "INC-1 still copying", "{n}");

    // max_total (20m) caps the whole grant: 15m now, +10m is refused with
    // what is left; +5m fits exactly.
    let r = extend(&d, ALICE, &gid, "10m", "INC-1");
    let e = common::api::assert_api_error(&r, 400, "invalid");
    let msg = e["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("max_total") && msg.contains("at most 5m"),
        "{msg}"
    );

    // An extension still pending when its grant ends is cancelled with it.
    let pending = ok(extend(&d, ALICE, &gid, "5m", "INC-1"), 201);
    let pid = pending["id"].as_str().unwrap();
    d.revoke(&gid, "done");
    let after = get(&d, &format!("/v1/requests/{pid}"));
    assert_eq!(after["state"], "cancelled", "{after}");
    common::api::assert_api_error(&d.approve(pid, CAROL), 409, "conflict");
    // And an ended grant takes no new extension.
    common::api::assert_api_error(&extend(&d, ALICE, &gid, "5m", "INC-1"), 409, "conflict");
}

#[test]
fn under_a_policy_without_approvals_an_extension_applies_at_once_and_the_cli_says_until_when() {
    let d = Daemon::start_with(None, LIFECYCLE_POLICIES);
    let (gid, _) = d.grant_with_secret(ALICE, "self-db", "10m");
    let before = ms(&get(&d, &format!("/v1/grants/{gid}"))["expires_at"]);
    let out = d.cli(
        ALICE,
        &["extend", &gid, "--for", "15m", "--reason", "INC-9"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = get(&d, &format!("/v1/grants/{gid}"));
    assert_eq!(ms(&g["expires_at"]), before + 15 * 60_000, "{g}");
    assert!(
        stdout.contains("extended") && stdout.contains(g["expires_at"].as_str().unwrap()),
        "{stdout}"
    );
    // 25m in all is the cap: one more minute is refused, exit 1, with why.
    let out = d.cli(ALICE, &["extend", &gid, "--for", "1m"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_total"));
}
