//! Break-glass through the real daemon: access at once under a policy that
//! allows it, audited and notified at once, `review: "pending"` until an
//! approver of the policy (never the owner) records a verdict, the gauge of
//! unreviewed grants, and locks still winning.

use crate::common;

use common::daemon::*;
use serde_json::{json, Value};

const POLICIES: &str = r#"
[[targets]]
name = "glass-db"
kind = "tcp"
address = "127.0.0.1:6393"

[[policies]]
name = "emergency"
requesters = ["group:oncall", "carol"]
targets = ["glass-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "1h"
break_glass = true
reason_pattern = "^INC-[0-9]+"
"#;

fn glass(d: &Daemon, token: &str, target: &str, reason: &str) -> Resp {
    let body = json!({"target": target, "duration": "20m", "reason": reason, "break_glass": true});
    d.post("/v1/requests", Some(token), &body.to_string())
        .expect("POST /v1/requests")
}

fn review(d: &Daemon, token: &str, gid: &str, verdict: &str) -> Resp {
    let body = json!({"verdict": verdict, "comment": "checked the incident"});
    d.post(
        &format!("/v1/grants/{gid}/review"),
        Some(token),
        &body.to_string(),
    )
    .expect("POST review")
}

fn gauge(d: &Daemon) -> f64 {
    d.metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix("jitgate_break_glass_unreviewed ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(-1.0)
}

fn audit_actions(d: &Daemon) -> Vec<Value> {
    let r = d
        .get("/v1/audit?limit=1000", Some(DAVE))
        .expect("GET audit");
    r.json()["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn break_glass_is_active_at_once_audited_notified_and_reviewed_by_an_approver_only() {
    let hook = common::hook::Hook::start();
    let extra = format!(
        "{POLICIES}\n[[notify]]\nurl = \"http://127.0.0.1:{}/hook\"\nevents = [\"grant.break_glass\", \"grant.reviewed\"]\n",
        hook.port
    );
    let d = Daemon::start_with(None, &extra);
    assert_eq!(gauge(&d), 0.0);

    // Not under a policy without break_glass; not without a reason.
    common::api::assert_api_error(&glass(&d, ALICE, "cache", "INC-1"), 403, "forbidden");
    common::api::assert_api_error(&glass(&d, ALICE, "glass-db", ""), 400, "invalid");
    common::api::assert_api_error(&glass(&d, ALICE, "glass-db", "oops"), 400, "invalid");

    let r = glass(&d, ALICE, "glass-db", "INC-911 prod down");
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["state"], "approved", "{v}");
    assert_eq!(v["decided_by"], "break-glass", "{v}");
    let g = &v["grant"];
    assert_eq!(g["state"], "active", "{g}");
    assert_eq!(g["break_glass"], true, "{g}");
    assert_eq!(g["review"], "pending", "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(gauge(&d), 1.0);
    let ev = audit_actions(&d)
        .into_iter()
        .find(|e| e["action"] == "grant.break_glass")
        .expect("grant.break_glass audited");
    assert_eq!(ev["subject"], gid.as_str());
    assert_eq!(ev["actor"], "alice");
    assert_eq!(ev["detail"]["reason"], "INC-911 prod down");
    let n = hook.wait_event("grant.break_glass");
    assert_eq!(n["grant_id"], gid.as_str(), "{n}");
    assert_eq!(n["reason"], "INC-911 prod down", "{n}");
    assert_eq!(n["review"], "pending", "{n}");

    // Never the owner; never someone who does not approve this policy
    // (bob requests under it, dave is an admin).
    common::api::assert_api_error(&review(&d, ALICE, &gid, "justified"), 403, "forbidden");
    for other in [BOB, DAVE] {
        let r = review(&d, other, &gid, "justified");
        assert!(r.status == 403 || r.status == 404, "{}", r.body);
    }
    common::api::assert_api_error(&review(&d, CAROL, &gid, "fine"), 400, "invalid");
    let r = review(&d, CAROL, &gid, "unjustified");
    assert_eq!(r.status, 200, "{}", r.body);
    let g = r.json();
    assert_eq!(g["review"], "unjustified", "{g}");
    assert_eq!(g["reviewed_by"], "carol", "{g}");
    assert_eq!(gauge(&d), 0.0);
    assert!(audit_actions(&d)
        .iter()
        .any(|e| e["action"] == "grant.reviewed" && e["detail"]["verdict"] == "unjustified"));
    let n = hook.wait_event("grant.reviewed");
    assert_eq!(n["verdict"], "unjustified", "{n}");
    assert_eq!(n["actor"], "carol", "{n}");
    // One verdict per grant; a normal grant has none to give.
    common::api::assert_api_error(&review(&d, CAROL, &gid, "justified"), 409, "conflict");
    // An approver who took break-glass access does not review it herself.
    let own = glass(&d, CAROL, "glass-db", "INC-912");
    assert_eq!(own.status, 201, "{}", own.body);
    let own = own.json()["grant"]["id"].as_str().unwrap().to_string();
    let e = common::api::assert_api_error(&review(&d, CAROL, &own, "justified"), 403, "forbidden");
    assert!(e.to_string().contains("your own"), "{e}");
    assert_eq!(review(&d, ERIN, &own, "justified").status, 200);
    let normal = d.create_request(BOB, "auto-web", "5m");
    let ngid = normal["grant"]["id"].as_str().unwrap();
    assert_eq!(normal["grant"]["break_glass"], false);
    common::api::assert_api_error(&review(&d, DAVE, ngid, "justified"), 403, "forbidden");
}

#[test]
fn a_locked_user_cannot_break_glass_and_the_cli_takes_and_reviews_it() {
    let d = Daemon::start_with(None, POLICIES);
    let out = d.cli(
        BOB,
        &[
            "request",
            "glass-db",
            "--for",
            "10m",
            "--reason",
            "INC-3",
            "--break-glass",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("BREAK-GLASS"), "{stdout}");
    let grants = d.get("/v1/grants", Some(DAVE)).unwrap().json();
    let gid = grants["grants"][0]["id"].as_str().unwrap().to_string();
    let out = d.cli(
        CAROL,
        &["review", &gid, "--verdict", "justified", "--comment", "ok"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("justified"), "{stdout}");

    d.lock("alice", "INC-4 investigation");
    let r = glass(&d, ALICE, "glass-db", "INC-5");
    let e = common::api::assert_api_error(&r, 403, "forbidden");
    assert!(e.to_string().contains("locked"), "{e}");
    assert_eq!(gauge(&d), 0.0);
}
