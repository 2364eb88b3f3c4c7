//! Scheduled access through the API and CLI: `starts_at` bounds, an
//! approved request becoming a `scheduled` grant that ends at its start
//! plus the duration, and a revoke before the start.

use crate::common;

use common::daemon::*;
use common::lifecycle::{ms, now_ms};
use serde_json::{json, Value};

const POLICIES: &str = r#"
[[targets]]
name = "plan-db"
kind = "tcp"
address = "127.0.0.1:6392"

[[policies]]
name = "planned"
requesters = ["group:oncall"]
targets = ["plan-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "1h"
max_schedule_ahead = "2h"
"#;

fn at(offset_ms: i64) -> String {
    jitgate::clock::rfc3339(now_ms() + offset_ms)
}

fn ask(d: &Daemon, starts_at: &str) -> Resp {
    let body =
        json!({"target": "plan-db", "duration": "30m", "reason": "INC-5", "starts_at": starts_at});
    d.post("/v1/requests", Some(ALICE), &body.to_string())
        .expect("POST /v1/requests")
}

fn get(d: &Daemon, path: &str) -> Value {
    let r = d.get(path, Some(DAVE)).expect("GET");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn starts_at_must_be_a_future_time_within_max_schedule_ahead() {
    let d = Daemon::start_with(None, POLICIES);
    for (bad, why) in [
        (at(3 * 3_600_000), "max_schedule_ahead"),
        (at(-60_000), "has passed"),
        ("tomorrow".to_string(), "RFC 3339"),
    ] {
        let r = ask(&d, &bad);
        let e = common::api::assert_api_error(&r, 400, "invalid");
        assert!(e.to_string().contains(why), "{bad}: {e}");
    }
}

#[test]
fn an_approved_scheduled_request_is_a_scheduled_grant_revocable_before_its_start() {
    let d = Daemon::start_with(None, POLICIES);
    let start = at(3_600_000);
    let r = ask(&d, &start);
    assert_eq!(r.status, 201, "{}", r.body);
    let req = r.json();
    assert_eq!(req["starts_at"], start.as_str(), "{req}");
    let rid = req["id"].as_str().unwrap();
    let approved = d.approve(rid, CAROL);
    assert_eq!(approved.status, 200, "{}", approved.body);
    let gid = approved.json()["grant_id"].as_str().unwrap().to_string();
    let g = get(&d, &format!("/v1/grants/{gid}"));
    assert_eq!(g["state"], "scheduled", "{g}");
    assert_eq!(ms(&g["starts_at"]), ms(&json!(start)));
    assert_eq!(ms(&g["expires_at"]), ms(&json!(start)) + 30 * 60_000, "{g}");
    let listed = get(&d, "/v1/grants?state=scheduled");
    assert_eq!(listed["grants"][0]["id"], gid.as_str(), "{listed}");
    // The owner may already fetch the connect secret.
    let s = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(ALICE), "")
        .unwrap();
    assert_eq!(s.status, 200, "{}", s.body);
    // An extension waits for the start.
    let x = d
        .post(
            &format!("/v1/grants/{gid}/extend"),
            Some(ALICE),
            r#"{"duration":"5m","reason":"INC-5"}"#,
        )
        .unwrap();
    common::api::assert_api_error(&x, 409, "conflict");
    // Revocable before it starts.
    assert_eq!(d.revoke(&gid, "plan changed"), 0);
    assert_eq!(get(&d, &format!("/v1/grants/{gid}"))["state"], "revoked");
}

#[test]
fn the_cli_schedules_with_at_and_says_from_when() {
    let d = Daemon::start_with(None, POLICIES);
    let out = d.cli(
        ALICE,
        &[
            "request", "plan-db", "--for", "10m", "--reason", "INC-6", "--at", "+1h",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = get(&d, "/v1/requests");
    let r = &reqs["requests"][0];
    let start = ms(&r["starts_at"]);
    assert!((start - (now_ms() + 3_600_000)).abs() < 120_000, "{r}");
    let out = d.cli(ALICE, &["request", "plan-db", "--at", "soon"]);
    assert_eq!(out.status.code(), Some(2), "a bad --at is a usage error");
}
