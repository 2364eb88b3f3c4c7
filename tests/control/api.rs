//! The admin API through real HTTP against the real daemon binary.

use crate::common;

use common::api::assert_api_error;
use common::daemon::*;
use serde_json::json;

#[test]
fn request_approve_revoke_round_trip() {
    let d = Daemon::start();
    let req = d.create_request(ALICE, "cache", "10m");
    assert_eq!(req["state"], "pending");
    let id = req["id"].as_str().unwrap();

    let r = d
        .post(
            &format!("/v1/requests/{id}/approve"),
            Some(CAROL),
            r#"{"comment":"go"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["state"], "approved");
    let gid = v["grant"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["grant"]["state"], "active");
    assert!(v["grant"]["remaining_seconds"].as_i64().unwrap() > 590);

    // A second approval of an approved request is a 409.
    let r = d.approve(id, ERIN);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "conflict");

    let r = d
        .post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(CAROL),
            r#"{"reason":"INC-7 closed"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["grant"]["state"], "revoked");
    assert_eq!(v["grant"]["ended_by"], "carol");
    assert_eq!(v["sessions_terminated"], 0);

    let m = d.metrics();
    assert!(
        m.contains("jitgate_requests_total{outcome=\"approved\"} 1"),
        "{m}"
    );
    assert!(m.contains("jitgate_grants_active 0"), "{m}");
    assert!(
        m.contains(
            "jitgate_admin_requests_total{route=\"/v1/requests/{id}/approve\",status=\"409\"} 1"
        ),
        "{m}"
    );
}

#[test]
fn nobody_approves_their_own_request_by_any_path() {
    let d = Daemon::start();
    // carol is both a requester (by name) and an approver (through group leads).
    let req = d.create_request(CAROL, "cache", "5m");
    let id = req["id"].as_str().unwrap();
    let r = d.approve(id, CAROL);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("your own request"), "{}", r.body);
    // An admin who is not an approver cannot approve either.
    let r = d.approve(id, DAVE);
    assert_eq!(r.status, 403, "{}", r.body);
    // A fellow requester cannot approve.
    let r = d.approve(id, BOB);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = d.approve(id, ERIN);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn two_approvals_must_come_from_two_people() {
    let d = Daemon::start();
    let req = d.create_request(ALICE, "two-db", "5m");
    let id = req["id"].as_str().unwrap();
    let r = d.approve(id, CAROL);
    assert_eq!(r.json()["state"], "pending");
    let r = d.approve(id, CAROL);
    assert_eq!(r.status, 409, "{}", r.body);
    let r = d.approve(id, ERIN);
    assert_eq!(r.json()["state"], "approved", "{}", r.body);
}

#[test]
fn zero_approvals_means_auto_approve() {
    let d = Daemon::start();
    let v = d.create_request(BOB, "auto-web", "2m");
    assert_eq!(v["state"], "approved");
    assert_eq!(v["grant"]["user"], "bob");
}

#[test]
fn policy_limits_are_enforced() {
    let d = Daemon::start();
    let post = |t: &str, body: serde_json::Value| {
        d.post("/v1/requests", Some(t), &body.to_string()).unwrap()
    };
    let r = post(
        ALICE,
        json!({"target": "cache", "duration": "3h", "reason": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("exceeds the maximum"), "{}", r.body);
    let r = post(ALICE, json!({"target": "cache", "duration": "10m"}));
    assert_eq!(r.status, 400);
    assert!(r.body.contains("requires a reason"), "{}", r.body);
    let r = post(
        DAVE,
        json!({"target": "cache", "duration": "10m", "reason": "x"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(ALICE, json!({"target": "nope", "reason": "x"}));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post(
        ALICE,
        json!({"target": "cache", "duration": "soon", "reason": "x"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Default duration from the policy.
    let r = post(ALICE, json!({"target": "cache", "reason": "x"}));
    assert_eq!(r.json()["duration_seconds"], 1800);
}

#[test]
fn locked_users_can_neither_request_nor_approve() {
    let d = Daemon::start();
    let g = d.create_request(BOB, "auto-web", "5m");
    let pending = d.create_request(BOB, "cache", "5m");
    let r = d
        .post("/v1/users/bob/lock", Some(CAROL), r#"{"reason":"x"}"#)
        .unwrap();
    assert_eq!(r.status, 403, "only admins lock: {}", r.body);
    let r = d
        .post(
            "/v1/users/bob/lock",
            Some(DAVE),
            r#"{"reason":"laptop stolen"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["grants_revoked"], 1);
    let gid = g["grant"]["id"].as_str().unwrap();
    assert_eq!(
        d.get(&format!("/v1/grants/{gid}"), Some(DAVE))
            .unwrap()
            .json()["end_reason"],
        "locked"
    );
    let pid = pending["id"].as_str().unwrap();
    assert_eq!(
        d.get(&format!("/v1/requests/{pid}"), Some(DAVE))
            .unwrap()
            .json()["state"],
        "cancelled"
    );
    let r = d
        .post(
            "/v1/requests",
            Some(BOB),
            r#"{"target":"auto-web","reason":"x"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("locked"), "{}", r.body);

    d.post(
        "/v1/users/erin/lock",
        Some(DAVE),
        r#"{"reason":"on leave"}"#,
    )
    .unwrap();
    let req = d.create_request(ALICE, "cache", "5m");
    let r = d
        .post(
            &format!("/v1/requests/{}/approve", req["id"].as_str().unwrap()),
            Some(ERIN),
            "{}",
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    let r = d.post("/v1/users/bob/unlock", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.create_request(BOB, "auto-web", "5m")["state"], "approved");
}

#[test]
fn secrets_go_to_the_owner_once_per_issue() {
    let d = Daemon::start();
    let g = d.create_request(BOB, "auto-web", "5m");
    let gid = g["grant"]["id"].as_str().unwrap();
    let r = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(DAVE), "")
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let r = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let s1 = r.json()["secret"].as_str().unwrap().to_string();
    let s2 = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
        .unwrap()
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(s1, s2, "each issue is a new secret");
    // Neither the secret nor any token reaches the log or the audit detail.
    let audit = d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
    let logs = d.logs();
    for needle in [s1.as_str(), s2.as_str(), BOB, DAVE] {
        assert!(!logs.contains(needle), "{needle} leaked into the log");
        assert!(
            !audit.contains(needle),
            "{needle} leaked into the audit log"
        );
    }
}

#[test]
fn visibility_follows_roles() {
    let d = Daemon::start();
    d.create_request(ALICE, "cache", "5m");
    d.create_request(BOB, "cache", "5m");
    let mine = d.get("/v1/requests", Some(ALICE)).unwrap().json();
    assert_eq!(mine["requests"].as_array().unwrap().len(), 1);
    let approver = d
        .get("/v1/requests?state=pending", Some(CAROL))
        .unwrap()
        .json();
    assert_eq!(approver["requests"].as_array().unwrap().len(), 2);
    assert_eq!(approver["requests"][0]["can_decide"], true);
    let r = d.get("/v1/audit", Some(ALICE)).unwrap();
    assert_eq!(r.status, 403);
    let who = d.get("/v1/whoami", Some(CAROL)).unwrap().json();
    assert_eq!(who["user"], "carol");
    assert_eq!(who["approver_of"], json!(["oncall", "two-man"]));
}

#[test]
fn errors_have_the_documented_shape_and_status() {
    let d = Daemon::start();
    let r = d.get("/v1/requests", None).unwrap();
    assert_api_error(&r, 401, "unauthorized");
    let r = d.get("/v1/requests", Some("jgt_wrong")).unwrap();
    assert_api_error(&r, 401, "unauthorized");
    let r = d.get("/v1/requests/req_nope", Some(DAVE)).unwrap();
    assert_api_error(&r, 404, "not_found");
    let r = d.post("/v1/requests", Some(ALICE), "{not json").unwrap();
    let v = assert_api_error(&r, 400, "bad_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{}",
        r.body
    );
    let r = d
        .post("/v1/requests", Some(ALICE), r#"{"target": 5}"#)
        .unwrap();
    assert_api_error(&r, 400, "bad_request");
    let r = d
        .post(
            "/v1/requests",
            Some(ALICE),
            r#"{"target":"cache","reason":"x","extra":1}"#,
        )
        .unwrap();
    let v = assert_api_error(&r, 400, "bad_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field"),
        "{}",
        r.body
    );
    let r = d.get("/v1/requests?state=bogus", Some(ALICE)).unwrap();
    assert_api_error(&r, 400, "bad_request");
    let r = d.get("/v1/requests?limit=100000", Some(ALICE)).unwrap();
    assert_api_error(&r, 400, "bad_request");
    // 403: a requester may not approve; 409: approving a cancelled request.
    let req = d.create_request(ALICE, "cache", "10m");
    let id = req["id"].as_str().unwrap();
    assert_api_error(&d.approve(id, BOB), 403, "forbidden");
    let r = d
        .post(&format!("/v1/requests/{id}/cancel"), Some(ALICE), "{}")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_api_error(&d.approve(id, CAROL), 409, "conflict");
    let r = d.get("/healthz", None).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let r = d.get("/readyz", None).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn a_cancel_racing_approvals_has_one_winner() {
    let d = Daemon::start();
    for _ in 0..5 {
        let req = d.create_request(ALICE, "cache", "5m");
        let id = req["id"].as_str().unwrap().to_string();
        let port = d.admin_port;
        let mut handles = Vec::new();
        for (who, path) in [(CAROL, "approve"), (ERIN, "approve"), (ALICE, "cancel")] {
            let id = id.clone();
            handles.push(std::thread::spawn(move || {
                common::daemon::http(
                    port,
                    "POST",
                    &format!("/v1/requests/{id}/{path}"),
                    Some(who),
                    Some("{}"),
                )
                .unwrap()
                .status
            }));
        }
        let mut codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        codes.sort();
        assert_eq!(codes, vec![200, 409, 409], "one winner, two conflicts");
    }
    let grants = d.get("/v1/grants", Some(DAVE)).unwrap().json();
    let states = d.get("/v1/requests", Some(DAVE)).unwrap().json();
    let approved = states["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "approved")
        .count();
    assert_eq!(grants["grants"].as_array().unwrap().len(), approved);
}

/// Each user sees exactly the targets a request would be accepted for, with
/// the governing policy's limits: carol requests `cache` only as a named
/// requester of `oncall`, dave (an admin, in no policy) may request nothing.
#[test]
fn targets_lists_what_the_caller_may_request_with_the_policy_limits() {
    let d = Daemon::start();
    let names = |token| -> Vec<String> {
        let v = d.get("/v1/targets", Some(token)).unwrap().json();
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(ALICE), ["auto-web", "cache", "two-db"]);
    assert_eq!(names(CAROL), ["cache"]);
    assert!(names(DAVE).is_empty());
    let v = d.get("/v1/targets", Some(ALICE)).unwrap().json();
    let cache = &v["targets"][1];
    assert_eq!(cache["kind"], "tcp");
    assert_eq!(cache["policy"], "oncall");
    assert_eq!(cache["default_duration"], "30m");
    assert_eq!(cache["max_duration"], "2h");
    assert_eq!(cache["approvals_required"], 1);
    assert_eq!(cache["require_reason"], true);
    // The lifecycle limits the request form checks before sending.
    assert_eq!(cache["max_total"], "2h");
    assert_eq!(cache["max_schedule_ahead"], "7days");
    assert_eq!(cache["break_glass"], false);
    assert_eq!(cache["reason_pattern"], serde_json::Value::Null);
    assert_eq!(v["targets"][0]["approvals_required"], 0);
    assert_eq!(v["targets"][0]["require_reason"], false);
    // Every listed target is one the request route accepts.
    let r = d.create_request(ALICE, "auto-web", "5m");
    assert_eq!(r["state"], "approved", "{r}");
    assert_eq!(d.get("/v1/targets", None).unwrap().status, 401);
}
