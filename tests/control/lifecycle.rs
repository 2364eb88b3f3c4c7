//! Grants and requests over time, through the API of the real daemon: expiry,
//! restarts, ends that happen while the daemon is down, pending-request
//! expiry, the PostgreSQL store, and tamper detection of the audit chain.

use crate::common;

use common::daemon::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Generous bound for anything that should happen "shortly": a hang bound,
/// not a latency check (a loaded 2-core CI machine can stall a timer's
/// store write and the daemon's restart for seconds).
const POLL_BOUND: Duration = Duration::from_secs(60);

fn get(d: &Daemon, path: &str) -> Value {
    let r = d.get(path, Some(DAVE)).unwrap();
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

fn grant(d: &Daemon, id: &str) -> Value {
    get(d, &format!("/v1/grants/{id}"))
}

fn request(d: &Daemon, id: &str) -> Value {
    get(d, &format!("/v1/requests/{id}"))
}

/// Polls `path` until `field` equals `want`, for up to `bound`.
fn poll_state(d: &Daemon, path: &str, want: &str, bound: Duration) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let v = get(d, path);
        if v["state"] == want {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{path} did not reach state {want} within {bound:?}: {v}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn auto_grant(d: &Daemon, duration: &str) -> String {
    let v = d.create_request(BOB, "auto-web", duration);
    assert_eq!(v["state"], "approved", "{v}");
    v["grant"]["id"].as_str().unwrap().to_string()
}

fn restart(d: &mut Daemon) {
    let st = d.stop();
    assert!(st.success(), "SIGTERM exit status {st}: {}", d.logs());
    d.spawn();
}

#[test]
fn an_auto_approved_grant_expires_at_its_end() {
    let d = Daemon::start();
    let v = d.create_request(BOB, "auto-web", "2s");
    assert_eq!(v["state"], "approved", "{v}");
    assert_eq!(v["grant"]["state"], "active");
    let gid = v["grant"]["id"].as_str().unwrap();
    let g = poll_state(&d, &format!("/v1/grants/{gid}"), "expired", POLL_BOUND);
    assert_eq!(g["end_reason"], "expired", "{g}");
    assert_eq!(g["ended_at"], g["expires_at"], "{g}");
    assert_eq!(g["remaining_seconds"], 0, "{g}");
    // The request that produced it stays approved.
    assert_eq!(request(&d, v["id"].as_str().unwrap())["state"], "approved");
    // Expired grants cannot be revoked or get secrets any more.
    let r = d
        .post(&format!("/v1/grants/{gid}/revoke"), Some(DAVE), "{}")
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let r = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let m = d.metrics();
    assert!(m.contains("jitgate_grants_active 0"), "{m}");
    let audit = get(&d, "/v1/audit?limit=1000");
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "grant.expired" && e["subject"] == gid),
        "{audit}"
    );
}

#[test]
fn grants_and_requests_survive_a_restart() {
    let mut d = Daemon::start();
    let gid = auto_grant(&d, "10m");
    let pending = d.create_request(ALICE, "cache", "30m");
    let pid = pending["id"].as_str().unwrap().to_string();
    let before = grant(&d, &gid);

    restart(&mut d);

    let g = grant(&d, &gid);
    assert_eq!(g["state"], "active", "{g}");
    assert_eq!(g["expires_at"], before["expires_at"]);
    assert_eq!(g["granted_at"], before["granted_at"]);
    assert!(g["remaining_seconds"].as_i64().unwrap() > 500, "{g}");
    let r = request(&d, &pid);
    assert_eq!(r["state"], "pending", "{r}");
    let m = d.metrics();
    assert!(m.contains("jitgate_grants_active 1"), "{m}");
    assert!(m.contains("jitgate_requests_pending 1"), "{m}");

    // The restored objects are fully usable: the request can be approved,
    // the grant revoked.
    let r = d
        .post(&format!("/v1/requests/{pid}/approve"), Some(CAROL), "{}")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["grant"]["state"], "active");
    let r = d
        .post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"done"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["grant"]["state"], "revoked");

    // A second restart keeps the ended states.
    restart(&mut d);
    assert_eq!(grant(&d, &gid)["state"], "revoked");
    assert_eq!(request(&d, &pid)["state"], "approved");
}

#[test]
fn a_grant_that_ends_while_the_daemon_is_down_stays_ended() {
    let mut d = Daemon::start();
    let gid = auto_grant(&d, "2s");
    let long = auto_grant(&d, "10m");
    let st = d.stop();
    assert!(st.success(), "SIGTERM exit status {st}");
    std::thread::sleep(Duration::from_secs(3));
    d.spawn();

    let g = grant(&d, &gid);
    assert_eq!(g["state"], "expired", "{g}");
    assert_eq!(g["end_reason"], "expired", "{g}");
    assert_eq!(
        g["ended_at"], g["expires_at"],
        "the end is recorded at the grant's own end instant, not at restart: {g}"
    );
    assert_eq!(grant(&d, &long)["state"], "active");
    let m = d.metrics();
    assert!(m.contains("jitgate_grants_active 1"), "{m}");
    let r = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn a_grant_timer_is_rebuilt_after_a_restart() {
    let mut d = Daemon::start();
    let gid = auto_grant(&d, "4s");
    restart(&mut d);
    // Whether the end fell before or after the new start, it is recorded
    // exactly once, at the grant's own end instant.
    let g = poll_state(&d, &format!("/v1/grants/{gid}"), "expired", POLL_BOUND);
    assert_eq!(g["ended_at"], g["expires_at"], "{g}");
    let audit = get(&d, "/v1/audit?limit=1000");
    let expiries = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "grant.expired" && e["subject"] == gid)
        .count();
    assert_eq!(expiries, 1, "{audit}");
}

#[test]
fn pending_requests_expire_after_request_ttl() {
    let mut d = Daemon::start_with_server(None, r#"request_ttl = "2s""#, "");
    let r = d.create_request(ALICE, "cache", "10m");
    assert_eq!(r["state"], "pending");
    let id = r["id"].as_str().unwrap().to_string();
    let v = poll_state(&d, &format!("/v1/requests/{id}"), "expired", POLL_BOUND);
    assert_eq!(v["grant_id"], Value::Null, "{v}");
    assert_eq!(v["decided_by"], "system", "{v}");
    // An expired request can be neither approved nor cancelled.
    let r = d
        .post(&format!("/v1/requests/{id}/approve"), Some(CAROL), "{}")
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let r = d
        .post(&format!("/v1/requests/{id}/cancel"), Some(ALICE), "{}")
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let m = d.metrics();
    assert!(
        m.contains("jitgate_requests_total{outcome=\"expired\"} 1"),
        "{m}"
    );
    assert!(m.contains("jitgate_requests_pending 0"), "{m}");

    // A request whose TTL runs out while the daemon is down expires at start.
    let r = d.create_request(ALICE, "cache", "10m");
    let id2 = r["id"].as_str().unwrap().to_string();
    let st = d.stop();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(3));
    d.spawn();
    poll_state(&d, &format!("/v1/requests/{id2}"), "expired", POLL_BOUND);
    let r = d
        .post(&format!("/v1/requests/{id2}/approve"), Some(CAROL), "{}")
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn the_api_round_trip_works_on_a_postgresql_store() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("jitgate_lifecycle");
    let mut d = Daemon::start_with(Some(&url), "");

    let who = get(&d, "/v1/whoami");
    assert_eq!(who["user"], "dave");

    // request -> approve -> secret -> revoke
    let req = d.create_request(ALICE, "cache", "10m");
    assert_eq!(req["state"], "pending");
    let rid = req["id"].as_str().unwrap().to_string();
    let r = d
        .post(
            &format!("/v1/requests/{rid}/approve"),
            Some(CAROL),
            r#"{"comment":"go"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let gid = r.json()["grant"]["id"].as_str().unwrap().to_string();
    let r = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(ALICE), "")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["secret"].as_str().unwrap().starts_with("jgc_"));
    let r = d
        .post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(CAROL),
            r#"{"reason":"INC-7 closed"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["grant"]["state"], "revoked");

    // deny and cancel
    let deny = d.create_request(ALICE, "cache", "10m");
    let r = d
        .post(
            &format!("/v1/requests/{}/deny", deny["id"].as_str().unwrap()),
            Some(ERIN),
            r#"{"reason":"no"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "denied");
    let cancel = d.create_request(BOB, "cache", "10m");
    let r = d
        .post(
            &format!("/v1/requests/{}/cancel", cancel["id"].as_str().unwrap()),
            Some(BOB),
            "",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled");

    // two approvals from two people
    let two = d.create_request(ALICE, "two-db", "5m");
    let tid = two["id"].as_str().unwrap().to_string();
    for (who, want) in [(CAROL, "pending"), (ERIN, "approved")] {
        let r = d
            .post(&format!("/v1/requests/{tid}/approve"), Some(who), "{}")
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["state"], want, "{}", r.body);
    }

    // lock and unlock
    let short = auto_grant(&d, "2s");
    let keep = auto_grant(&d, "10m");
    let r = d
        .post("/v1/users/alice/lock", Some(DAVE), r#"{"reason":"test"}"#)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["grants_revoked"], 1, "the two-db grant");
    let r = d.post("/v1/users/alice/unlock", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // expiry on the PostgreSQL store
    let g = poll_state(&d, &format!("/v1/grants/{short}"), "expired", POLL_BOUND);
    assert_eq!(g["ended_at"], g["expires_at"], "{g}");

    // listings and filters
    let grants = get(&d, "/v1/grants?state=active");
    let ids: Vec<&str> = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![keep.as_str()], "{grants}");
    let reqs = get(&d, "/v1/requests?state=denied");
    assert_eq!(reqs["requests"].as_array().unwrap().len(), 1, "{reqs}");

    // survives a restart; the audit chain verifies, server side and in the CLI
    restart(&mut d);
    assert_eq!(grant(&d, &keep)["state"], "active");
    assert_eq!(grant(&d, &gid)["state"], "revoked");
    let v = get(&d, "/v1/audit/verify");
    assert_eq!(v["ok"], true, "{v}");
    let out = d.cli(DAVE, &["audit", "--verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("audit chain ok"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(d);
}

fn sqlite_url(d: &Daemon) -> String {
    format!(
        "sqlite://{}",
        d.dir.join("data").join("jitgate.db").display()
    )
}

/// Runs `sql` (with `seq` bound as $1) on the stopped daemon's SQLite file.
fn tamper(d: &Daemon, sql: &str, seq: i64) -> u64 {
    let url = sqlite_url(d);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = jitgate::store::Store::connect(&url, 1)
            .await
            .expect("open the store");
        let n = sqlx::query(sql)
            .bind(seq)
            .execute(store.raw_pool())
            .await
            .expect("tamper")
            .rows_affected();
        store.close().await;
        n
    })
}

#[test]
fn audit_verify_in_the_cli_detects_a_tampered_row() {
    let mut d = Daemon::start();
    // Some history: a request, an approval, a revoke, a denial.
    let req = d.create_request(ALICE, "cache", "10m");
    let rid = req["id"].as_str().unwrap().to_string();
    let r = d
        .post(&format!("/v1/requests/{rid}/approve"), Some(CAROL), "{}")
        .unwrap();
    let gid = r.json()["grant"]["id"].as_str().unwrap().to_string();
    d.post(
        &format!("/v1/grants/{gid}/revoke"),
        Some(DAVE),
        r#"{"reason":"INC-7 closed"}"#,
    )
    .unwrap();
    let req2 = d.create_request(BOB, "cache", "10m");
    d.post(
        &format!("/v1/requests/{}/deny", req2["id"].as_str().unwrap()),
        Some(CAROL),
        r#"{"reason":"not now"}"#,
    )
    .unwrap();

    let out = d.cli(DAVE, &["audit", "--verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("audit chain ok"), "{stdout}");

    // The revoke event, somewhere in the middle of the chain.
    let events = get(&d, "/v1/audit?limit=1000");
    let events = events["events"].as_array().unwrap();
    let revoke = events
        .iter()
        .find(|e| e["action"] == "grant.revoked")
        .expect("a grant.revoked event");
    let seq = revoke["seq"].as_i64().unwrap();
    assert!(seq < events.len() as i64, "not the last event");

    let st = d.stop();
    assert!(st.success());
    let n = tamper(
        &d,
        r#"UPDATE audit SET detail = '{"reason":"routine"}' WHERE seq = $1"#,
        seq,
    );
    assert_eq!(n, 1);
    d.spawn();

    let out = d.cli(DAVE, &["audit", "--verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "tampering must fail verification: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("BROKEN at seq {seq}")),
        "stdout must name seq {seq}: {stdout}"
    );
    let out = d.cli(DAVE, &["--json", "audit", "--verify"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_bad_seq"], seq, "{v}");
    let server = get(&d, "/v1/audit/verify");
    assert_eq!(server["ok"], false, "{server}");
    assert_eq!(server["first_bad_seq"], seq, "{server}");
}

#[test]
fn audit_verify_in_the_cli_detects_deleted_newest_events() {
    let mut d = Daemon::start();
    auto_grant(&d, "10m");
    d.create_request(ALICE, "cache", "10m");
    let events = get(&d, "/v1/audit?limit=1000");
    let last = events["events"].as_array().unwrap().len() as i64;
    assert!(last >= 4, "{events}");
    let st = d.stop();
    assert!(st.success());
    assert_eq!(tamper(&d, "DELETE FROM audit WHERE seq = $1", last), 1);
    d.spawn();
    let out = d.cli(DAVE, &["audit", "--verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("BROKEN at seq {last}")),
        "{stdout}"
    );
}
