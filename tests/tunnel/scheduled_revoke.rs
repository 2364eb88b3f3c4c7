//! A scheduled grant is in force from its start instant, before its start
//! timer has recorded it as active (a late timer, a store outage: the
//! state still reads `scheduled`). A revoke in that window must close its
//! sessions like any other: it used to close only an `active` grant's, so
//! the session outlived the revoke.
//!
//! The window is held open the way an outage holds it: another connection
//! keeps SQLite's write lock, so the start cannot be recorded (and the
//! revoke's own write waits), while reads go on.

use crate::common;

use common::daemon::*;
use common::tunnel::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Holds SQLite's write lock on the daemon's store until dropped.
struct WriteLock {
    rt: tokio::runtime::Runtime,
    held: Option<(jitgate::store::Store, sqlx::pool::PoolConnection<sqlx::Any>)>,
}

impl WriteLock {
    fn take(db: &std::path::Path) -> WriteLock {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("sqlite://{}", db.display());
        let held = rt.block_on(async {
            let s = jitgate::store::Store::connect(&url, 1).await.unwrap();
            let mut c = s.raw_pool().acquire().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut *c)
                .await
                .unwrap();
            (s, c)
        });
        WriteLock {
            rt,
            held: Some(held),
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if let Some((s, mut c)) = self.held.take() {
            // The pool takes its connection back on the runtime.
            self.rt.block_on(async move {
                let _ = sqlx::query("ROLLBACK").execute(&mut *c).await;
                drop(c);
                s.close().await;
            });
        }
    }
}

#[test]
fn a_revoke_closes_the_sessions_of_a_scheduled_grant_already_in_force() {
    let t = Tunnel::start();
    // Far enough ahead that the secret and the lock are in place first on a
    // loaded machine (else the start is recorded before the lock).
    let start_ms = jitgate::clock::now_ms() + 6_000;
    let body = json!({
        "target": "plan-echo",
        "duration": "5m",
        "reason": "INC-11",
        "starts_at": jitgate::clock::rfc3339(start_ms),
    });
    let r =
        t.d.post("/v1/requests", Some(BOB), &body.to_string())
            .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.json()["grant"]["id"].as_str().unwrap().to_string();
    let s =
        t.d.post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
            .unwrap();
    assert_eq!(s.status, 200, "{}", s.body);
    let secret = s.json()["secret"].as_str().unwrap().to_string();

    let lock = WriteLock::take(&t.d.dir.join("data").join("jitgate.db"));
    while jitgate::clock::now_ms() < start_ms + 300 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (mut session, reply) = t.raw("plan-echo", &secret);
    assert_eq!(reply.status, OK, "{reply:?}");
    echo(&mut session, b"in force");
    let g =
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json();
    assert_eq!(g["state"], "scheduled", "the start was recorded: {g}");

    // The revoke's own write waits for the lock; its sessions must close
    // meanwhile, as an active grant's do.
    let revoke = {
        let (port, path) = (t.d.admin_port, format!("/v1/grants/{gid}/revoke"));
        std::thread::spawn(move || {
            http(
                port,
                "POST",
                &path,
                Some(DAVE),
                Some(r#"{"reason":"INC-11 done"}"#),
            )
        })
    };
    session
        .sock
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let asked = Instant::now();
    let closed = closed_by_peer(&mut session);
    let waited = asked.elapsed();
    drop(lock);
    assert!(
        closed,
        "the session outlived the revoke of its scheduled grant ({waited:?})"
    );
    let r = revoke.join().unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let g =
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json();
    assert_eq!(g["state"], "revoked", "{g}");
}
