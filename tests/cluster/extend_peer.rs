//! Extension across instances: an extension approved on one instance moves
//! the end of a session living on another (told over LISTEN/NOTIFY, as a
//! revoke is), and an extension written to the store behind the instances'
//! backs still reaches it through the periodic re-check.

use crate::common;

use common::daemon::*;
use common::lifecycle::{extend_now, grant_end, ms, now_ms, sleep_past, wait_until};
use common::pg::PgCluster;
use common::tunnel::*;
use common::wait::{OutputWithin, HANG};
use std::time::Duration;

fn two(db: &str) -> Option<(Tunnel, Tunnel, &'static PgCluster)> {
    let pg = PgCluster::shared()?;
    let url = pg.create_db(db);
    let up = Upstreams::start();
    let a = Tunnel::start_instance(&url, "a", &up);
    let b = Tunnel::start_instance(&url, "b", &up);
    Some((a, b, pg))
}

fn open(node: &Tunnel, secret: &str) -> (TlsClient, String) {
    let (mut tls, reply) = node.raw("auto-echo", secret);
    assert_eq!(reply.status, OK, "{}", reply.message);
    echo(&mut tls, b"hello");
    (tls, reply.session_id)
}

/// The end `node` lists for session `sid`.
fn listed_end(node: &Tunnel, sid: &str) -> Option<i64> {
    let r = node.d.get("/v1/sessions", Some(DAVE)).ok()?;
    r.json()["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == sid)
        .map(|s| ms(&s["expires_at"]))
}

#[test]
fn an_extension_on_one_instance_moves_the_end_of_a_session_on_another() {
    let Some((a, b, _pg)) = two("jitgate_cluster_extend") else {
        return;
    };
    // Long enough for the session, its listing and the extension to be in
    // place before the first end on a loaded machine.
    let (gid, secret) = a.grant(BOB, "auto-echo", "15s");
    let first_end = grant_end(&a.d, &gid);
    let (mut on_b, sid) = open(&b, &secret);
    let bound = Duration::from_secs(60);
    wait_until("a to list b's session", bound, || {
        listed_end(&a, &sid) == Some(first_end)
    });

    let new_end = extend_now(&a.d, BOB, &gid, "6s");
    assert_eq!(new_end, first_end + 6_000);
    // Both instances list the new end for b's session.
    assert_eq!(listed_end(&a, &sid), Some(new_end));
    assert_eq!(listed_end(&b, &sid), Some(new_end));

    sleep_past(first_end, Duration::from_millis(700));
    echo(&mut on_b, b"past the first end, on b");
    assert!(closed_by_peer(&mut on_b), "b closes it at the new end");
    assert!(now_ms() >= new_end, "closed before its new end");
}

#[test]
fn an_extension_whose_message_was_missed_is_found_by_the_recheck() {
    let db = "jitgate_cluster_extend_recheck";
    let Some((a, b, pg)) = two(db) else {
        return;
    };
    // Long enough for the session and the change (a psql run) to be in
    // place before the first end on a loaded machine.
    let (gid, secret) = a.grant(BOB, "auto-echo", "15s");
    let first_end = grant_end(&a.d, &gid);
    let (mut on_b, _) = open(&b, &secret);
    // Extend behind the instances' backs: no NOTIFY, as when one is lost
    // while a LISTEN connection is down.
    let new_end = first_end + 6_000;
    let sql = format!(
        "UPDATE grants SET expires_at = {new_end}, extended_at = {} WHERE id = '{gid}'",
        now_ms()
    );
    let out = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", &sql, &pg.url(db)])
        .output_within(HANG);
    assert!(out.status.success(), "{out:?}");
    sleep_past(first_end, Duration::from_millis(700));
    echo(&mut on_b, b"past the first end, found by the re-check");
    assert!(closed_by_peer(&mut on_b));
    assert!(now_ms() >= new_end, "closed before its new end");
}

#[test]
fn a_forged_extension_message_extends_nothing_the_store_did_not() {
    let db = "jitgate_cluster_extend_forged";
    let Some((a, b, pg)) = two(db) else {
        return;
    };
    // Long enough for the session, the forged message (a psql run) and the
    // check that nothing moved to happen before the end on a loaded machine.
    let (gid, secret) = a.grant(BOB, "auto-echo", "15s");
    let end = grant_end(&a.d, &gid);
    let (mut on_b, sid) = open(&b, &secret);
    let far = end + 3_600_000;
    let payload = format!(
        r#"{{"from":"mallory","req":"r1","op":"extend_grant","grant":"{gid}","expires_at_ms":{far}}}"#
    );
    let sql = format!("SELECT pg_notify('jitgate_control', '{payload}')");
    let out = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", &sql, &pg.url(db)])
        .output_within(HANG);
    assert!(out.status.success(), "{out:?}");
    // b asked the store, which holds the first end: nothing moved.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(listed_end(&b, &sid), Some(end));
    assert!(
        closed_by_peer(&mut on_b),
        "closed at its own end, not kept open"
    );
}
