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
