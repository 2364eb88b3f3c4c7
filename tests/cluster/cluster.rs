//! Several instances sharing one PostgreSQL store (SPEC "Several
//! instances"): a revoke, lock or terminate on any instance closes the
//! affected sessions on every instance and counts them; a dead instance's
//! rows are reaped; a store outage opens no access and leaks no session past
//! its expiry. Real daemons, a real PostgreSQL cluster, real TLS tunnels.

use crate::common;

use common::api::assert_api_error;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use common::pg::PgCluster;
use common::tunnel::*;
use serde_json::Value;
use std::io::Write;

struct Fleet {
    shared: Option<&'static PgCluster>,
    /// Only for a test that stops the server: the shared one must stay up.
    own: Option<PgCluster>,
    nodes: Vec<Tunnel>,
}

impl Fleet {
    /// The cluster holding this fleet's store.
    fn pg(&self) -> &PgCluster {
        match (&self.own, self.shared) {
            (Some(own), _) => own,
            (None, Some(shared)) => shared,
            (None, None) => unreachable!("a fleet has a cluster"),
        }
    }
}

/// `n` instances named a, b, c... on one fresh database of the shared
/// cluster.
fn fleet(db: &str, n: usize) -> Option<Fleet> {
    let pg = PgCluster::shared()?;
    let url = pg.create_db(db);
    Some(Fleet {
        shared: Some(pg),
        own: None,
        nodes: nodes(&url, n),
    })
}

/// One instance on a cluster of its own, which the test may stop.
fn fleet_on_own_cluster(db: &str) -> Option<Fleet> {
    let own = PgCluster::start()?;
    let url = own.create_db(db);
    Some(Fleet {
        shared: None,
        nodes: nodes(&url, 1),
        own: Some(own),
    })
}

fn nodes(url: &str, n: usize) -> Vec<Tunnel> {
    let up = Upstreams::start();
    ["a", "b", "c"][..n]
        .iter()
        .map(|name| Tunnel::start_instance(url, name, &up))
        .collect()
}

/// The sessions `node` lists (its own and its peers').
fn sessions(node: &Tunnel) -> Vec<Value> {
    let r = node.d.get("/v1/sessions", Some(DAVE)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["sessions"].as_array().unwrap().clone()
}

/// Opens a tunnel session on `node` and checks it relays.
fn open(node: &Tunnel, secret: &str) -> (TlsClient, String) {
    let (mut tls, reply) = node.raw("auto-echo", secret);
    assert_eq!(reply.status, OK, "{}", reply.message);
    echo(&mut tls, b"hello through the fleet");
    (tls, reply.session_id)
}

/// Waits until `node` lists the session `sid` as owned by `instance`.
fn wait_listed(node: &Tunnel, sid: &str, instance: &str) {
    wait_for("the session to be listed across instances", || {
        sessions(node)
            .iter()
            .any(|s| s["id"] == sid && s["instance"] == instance)
    });
}

fn post(node: &Tunnel, path: &str, token: &str, body: &str) -> Value {
    let r = node.d.post(path, Some(token), body).unwrap();
    assert_eq!(r.status, 200, "POST {path}: {}", r.body);
    r.json()
}

#[test]
fn a_revoke_on_one_instance_closes_the_session_on_another_and_counts_it() {
    let Some(f) = fleet("jitgate_cluster_revoke", 2) else {
        return;
    };
    let (a, b) = (&f.nodes[0], &f.nodes[1]);
    let (gid, secret) = a.grant(BOB, "auto-echo", "10m");
    // One session on each instance under the same grant.
    let (mut on_a, _) = open(a, &secret);
    let (mut on_b, sid_b) = open(b, &secret);
    wait_listed(a, &sid_b, "b");

    let r = post(
        a,
        &format!("/v1/grants/{gid}/revoke"),
        DAVE,
        r#"{"reason":"INC-42 closed"}"#,
    );
    assert_eq!(r["sessions_terminated"], 2, "{r}");
    assert!(r.get("instances_unconfirmed").is_none(), "{r}");
    assert!(closed_by_peer(&mut on_a));
    assert!(closed_by_peer(&mut on_b));
    // B refuses new sessions under the revoked grant.
    let (_, reply) = b.raw("auto-echo", &secret);
    // The secret died with its grant; B, on the shared store, says why.
    assert_eq!(reply.status, NO_GRANT, "{reply:?}");
    assert!(
        reply
            .message
            .contains("grant revoked by dave (INC-42 closed)"),
        "{reply:?}"
    );
    wait_for("the peers' rows to go", || sessions(a).is_empty());
    // B recorded why its session ended (session events are written off the
    // relay's path, so the record may trail the close).
    let ended_event = || {
        let audit = b.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json();
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "session.ended" && e["subject"] == sid_b)
            .cloned()
    };
    wait_for("b's session.ended audit event", || ended_event().is_some());
    let ended = ended_event().expect("seen above");
    let detail = &ended["detail"];
    assert_eq!(detail["reason"], "revoked", "{detail}");
    assert!(
        detail["message"]
            .as_str()
            .unwrap()
            .contains("INC-42 closed"),
        "{detail}"
    );
}

#[test]
fn a_lock_on_one_instance_ends_the_users_sessions_on_all_others() {
    let Some(f) = fleet("jitgate_cluster_lock", 3) else {
        return;
    };
    let (a, b, c) = (&f.nodes[0], &f.nodes[1], &f.nodes[2]);
    let (_, secret) = a.grant(BOB, "auto-echo", "10m");
    let (mut on_b, sid_b) = open(b, &secret);
    let (mut on_c, sid_c) = open(c, &secret);
    // Another user's session on C stays up.
    let (_, alice_secret) = a.grant(ALICE, "auto-echo", "10m");
    let (mut alice_on_c, _) = open(c, &alice_secret);
    wait_listed(a, &sid_b, "b");
    wait_listed(a, &sid_c, "c");

    let r = post(
        a,
        "/v1/users/bob/lock",
        DAVE,
        r#"{"reason":"laptop stolen"}"#,
    );
    assert_eq!(r["sessions_terminated"], 2, "{r}");
    assert_eq!(r["grants_revoked"], 1, "{r}");
    assert!(closed_by_peer(&mut on_b));
    assert!(closed_by_peer(&mut on_c));
    echo(&mut alice_on_c, b"still here");
    // The lock revoked the grant, so its secret died with it.
    let (_, reply) = c.raw("auto-echo", &secret);
    assert_eq!(reply.status, LOCKED, "{}", reply.message);
}

#[test]
fn a_terminate_on_one_instance_closes_one_session_on_another() {
    let Some(f) = fleet("jitgate_cluster_terminate", 2) else {
        return;
    };
    let (a, b) = (&f.nodes[0], &f.nodes[1]);
    let (_, secret) = a.grant(BOB, "auto-echo", "10m");
    let (mut first, sid) = open(b, &secret);
    let (mut second, _) = open(b, &secret);
    wait_listed(a, &sid, "b");
    // A requester may not terminate through a peer either.
    let r =
        a.d.post(
            &format!("/v1/sessions/{sid}/terminate"),
            Some(ERIN),
            r#"{"reason":"x"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(
        a,
        &format!("/v1/sessions/{sid}/terminate"),
        DAVE,
        r#"{"reason":"odd queries"}"#,
    );
    assert_eq!(r["sessions_terminated"], 1, "{r}");
    assert!(closed_by_peer(&mut first));
    echo(&mut second, b"the other session lives");
    let r =
        a.d.post(
            "/v1/sessions/ses_doesnotexist/terminate",
            Some(DAVE),
            r#"{"reason":"x"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn the_rows_of_a_killed_instance_are_reaped_by_the_others() {
    let Some(mut f) = fleet("jitgate_cluster_reap", 2) else {
        return;
    };
    let (_, secret) = f.nodes[0].grant(BOB, "auto-echo", "10m");
    let (_conn, sid) = open(&f.nodes[1], &secret);
    wait_listed(&f.nodes[0], &sid, "b");
    let mut b = f.nodes.pop().unwrap();
    let mut child = b.d.child.take().unwrap();
    child.kill().unwrap(); // SIGKILL: no clean deregistration
    child.wait().unwrap();
    let a = &f.nodes[0];
    // Dead after 15 s of silence, reaped at the next slow tick (5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !sessions(a).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead instance's row was not reaped: {}",
            a.d.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let audit = a.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json();
    let reaped = audit["events"].as_array().unwrap().iter().any(|e| {
        e["action"] == "session.ended"
            && e["subject"] == sid
            && e["detail"]["reaped_by"] == "a"
            && e["detail"]["reason"] == "error"
    });
    assert!(reaped, "no reaped session.ended for {sid}: {audit}");
    // B comes back under its name and serves again.
    b.d.spawn();
    let (_c2, sid2) = open(&b, &secret);
    wait_listed(a, &sid2, "b");
}

#[test]
fn a_store_outage_opens_no_access_and_leaks_no_session_past_expiry() {
    let Some(mut f) = fleet_on_own_cluster("jitgate_cluster_outage") else {
        return;
    };
    // Long enough for the outage and the checks below to happen before
    // the grant's end on a loaded machine (stopping a cluster takes a while).
    let (_, secret) = f.nodes[0].grant(BOB, "auto-echo", "15s");
    let (mut live, _) = open(&f.nodes[0], &secret);
    let own = f.own.as_mut().expect("a cluster of its own");
    own.stop();
    let a = &f.nodes[0];
    // Fail closed: no new connection, request or approval; not ready.
    let (_, reply) = a.raw("auto-echo", &secret);
    assert_ne!(
        reply.status, OK,
        "a connection was admitted without the store"
    );
    assert!(
        reply.message.contains("store is unavailable"),
        "{}",
        reply.message
    );
    let body = serde_json::json!({"target": "auto-echo", "duration": "1m", "reason": "x"});
    let r =
        a.d.post("/v1/requests", Some(BOB), &body.to_string())
            .unwrap();
    let v = assert_api_error(&r, 503, "store_unavailable");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("store"),
        "{}",
        r.body
    );
    assert_eq!(a.d.get("/readyz", None).unwrap().status, 503);
    // The live session keeps relaying until its grant's end, then closes.
    live.write_all(b"x").unwrap();
    assert!(closed_by_peer(&mut live), "the session outlived its grant");
    // The store returns: the instance recovers by itself.
    let own = f.own.as_mut().expect("a cluster of its own");
    own.restart();
    wait_for("readiness after the store returns", || {
        a.d.get("/readyz", None).unwrap().status == 200
    });
    let (_, secret2) = a.grant(BOB, "auto-echo", "10m");
    let (_c, _) = open(a, &secret2);
}

#[test]
fn the_recheck_closes_a_session_whose_notification_was_missed() {
    let Some(f) = fleet("jitgate_cluster_recheck", 1) else {
        return;
    };
    let a = &f.nodes[0];
    let (gid, secret) = a.grant(BOB, "auto-echo", "10m");
    let (mut live, _) = open(a, &secret);
    // End the grant behind the instances' backs: no NOTIFY is sent, as when
    // one is lost while a LISTEN connection is down.
    let db = "jitgate_cluster_recheck";
    let sql = format!(
        "UPDATE grants SET state = 'revoked', ended_at = {}, end_reason = 'revoked', ended_by = 'dba', end_comment = 'by hand' WHERE id = '{gid}'",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let out = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", &sql, &f.pg().url(db)])
        .output_within(HANG);
    assert!(out.status.success(), "{out:?}");
    assert!(
        closed_by_peer(&mut live),
        "the re-check did not close the session"
    );
}

/// The instance name `node` reports for its own sessions.
fn own_instance(node: &Tunnel, secret: &str) -> (TlsClient, String) {
    let (tls, sid) = open(node, secret);
    let me = sessions(node)
        .into_iter()
        .find(|s| s["id"] == sid.as_str())
        .expect("own session listed")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    (tls, me)
}

#[test]
fn two_unnamed_instances_on_one_host_get_distinct_names_and_see_each_other() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("jitgate_cluster_unnamed");
    let up = Upstreams::start();
    let a = Tunnel::start_unnamed(&url, &up);
    let b = Tunnel::start_unnamed(&url, &up);
    let (_g, secret) = a.grant(BOB, "auto-echo", "10m");
    let (_on_a, name_a) = own_instance(&a, &secret);
    let (_on_b, name_b) = own_instance(&b, &secret);
    assert_ne!(name_a, name_b, "the default name must be unique per host");
    assert!(
        name_a.ends_with(&format!("-{}", a.d.admin_port)),
        "{name_a}"
    );
    assert!(
        name_b.ends_with(&format!("-{}", b.d.admin_port)),
        "{name_b}"
    );
    // Each lists the other's session, and neither reaps the other.
    let b_sessions = sessions(&b);
    wait_for("a's session listed on b", || {
        sessions(&b)
            .iter()
            .any(|s| s["instance"] == name_a.as_str())
    });
    wait_for("b's session listed on a", || {
        sessions(&a)
            .iter()
            .any(|s| s["instance"] == name_b.as_str())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    for (node, name) in [(&a, &name_a), (&b, &name_b)] {
        assert!(
            !node.d.logs().contains("registration was reaped"),
            "{name} was reaped by its peer: {}",
            node.d.logs()
        );
    }
    drop(b_sessions);
}

#[test]
fn an_instance_name_held_by_a_live_instance_is_refused_at_start() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("jitgate_cluster_same_name");
    let up = Upstreams::start();
    let a = Tunnel::start_instance(&url, "a", &up);
    let mut twin = Daemon::configured(
        Some(&url),
        "instance = \"a\"\n",
        &up.config(common::free_port()),
    );
    twin.launch();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = twin.child.as_mut().unwrap().try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the twin kept running: {}",
            twin.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    twin.child = None;
    assert!(!status.success(), "{status}");
    let logs = twin.logs();
    assert!(
        logs.contains("held by another live jitgate instance"),
        "{logs}"
    );
    // The holder keeps its name and its rows.
    let (_g, secret) = a.grant(BOB, "auto-echo", "10m");
    let (_tls, name) = own_instance(&a, &secret);
    assert_eq!(name, "a");
    assert!(
        !a.d.logs().contains("registration was reaped"),
        "{}",
        a.d.logs()
    );
}
