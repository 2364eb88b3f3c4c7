//! Webhook notifications end to end: the real daemon, and a real HTTP
//! receiver run by the test (a small HTTP/1.1 server over std::net) that can
//! be down, answer 200 or 500, or accept and never answer. Signatures are
//! checked with the test's own HMAC-SHA256, built from SHA-256 by hand.

use crate::common;

use common::daemon::*;
use common::free_port;
use common::tunnel::{wait_for, Tunnel, Upstreams};
use jitgate::notify::event::Event;
use jitgate::store::{Routing, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_ENV: &str = "JITGATE_TEST_NOTIFY_SECRET";
const SECRET: &str = "whsec-test-4f9a1c";

// ---------------------------------------------------------------- receiver

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    /// Reads the request, then holds the connection without answering.
    Hang,
}

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start(port: u16, mode: Mode) -> Receiver {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
        l.set_nonblocking(true).unwrap();
        let r = Receiver {
            port,
            mode: Arc::new(Mutex::new(mode)),
            hits: Default::default(),
            stop: Default::default(),
        };
        let (mode, hits, stop) = (r.mode.clone(), r.hits.clone(), r.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match l.accept() {
                    Ok((s, _)) => {
                        let (mode, hits, stop) = (mode.clone(), hits.clone(), stop.clone());
                        std::thread::spawn(move || serve(s, mode, hits, stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        r
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Bodies of the deliveries it answered with 200.
    fn delivered(&self) -> Vec<Value> {
        self.hits()
            .iter()
            .filter(|h| h.answered == 200)
            .map(Hit::json)
            .collect()
    }

    fn delivered_event(&self, event: &str) -> Vec<Value> {
        self.delivered()
            .into_iter()
            .filter(|v| v["event"] == event)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop's last sleep; the listener closes with it.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One request per connection (the daemon sends `Connection: close`).
fn serve(s: TcpStream, mode: Arc<Mutex<Mode>>, hits: Arc<Mutex<Vec<Hit>>>, stop: Arc<AtomicBool>) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let m = *mode.lock().unwrap();
    let answered = match m {
        Mode::Ok => 200,
        Mode::Fail => 500,
        Mode::Hang => 0,
    };
    hits.lock().unwrap().push(Hit {
        path,
        headers,
        body,
        answered,
    });
    let mut s = s;
    if m == Mode::Hang {
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    let _ = write!(
        s,
        "HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

// ---------------------------------------------------------------- helpers

/// HMAC-SHA256 from its definition (RFC 2104), independent of the daemon's.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

fn assert_signed(h: &Hit) {
    let want = format!("sha256={}", hmac_sha256(SECRET.as_bytes(), &h.body));
    assert_eq!(
        h.header("x-jitgate-signature"),
        want,
        "bad signature on {h:?}"
    );
    let v = h.json();
    assert_eq!(h.header("x-jitgate-event"), v["event"].as_str().unwrap());
    assert_eq!(h.header("x-jitgate-delivery"), v["id"].as_str().unwrap());
    assert_eq!(h.header("content-type"), "application/json");
    assert_eq!(h.path, "/hook?src=jitgate");
}

fn notify_config(port: u16, events: &str, timeout: &str) -> String {
    // Set before the daemon starts; every test sets the same value.
    std::env::set_var(SECRET_ENV, SECRET);
    format!(
        r#"
[[notify]]
url = "http://127.0.0.1:{port}/hook?src=jitgate"
events = {events}
secret_env = "{SECRET_ENV}"
timeout = "{timeout}"
retry_initial = "100ms"
retry_max = "400ms"
"#
    )
}

fn metric(d: &Daemon, sample: &str) -> f64 {
    d.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn retried(d: &Daemon) -> f64 {
    metric(d, r#"jitgate_notifications_total{result="retried"}"#)
}

fn ok(r: std::io::Result<Resp>, want: u16) -> Value {
    let r = r.expect("API answers");
    assert_eq!(r.status, want, "{}", r.body);
    r.json()
}

// ---------------------------------------------------------------- tests

#[test]
fn every_event_reaches_the_receiver_signed_and_describing_its_subject() {
    let rx = Receiver::start(free_port(), Mode::Ok);
    let up = Upstreams::start();
    let tunnel = free_port();
    let extra = format!(
        r#"{}
[[targets]]
name = "soon-echo"
kind = "tcp"
address = "127.0.0.1:{}"

[[policies]]
name = "soon"
requesters = ["group:oncall"]
targets = ["soon-*"]
approvals_required = 0
max_duration = "10m"
warn_before = ["1s"]
{}"#,
        up.config(tunnel),
        up.echo,
        notify_config(rx.port, r#"["*"]"#, "5s")
    );
    let d = Daemon::start_with(None, &extra);

    // Requested, then approved by carol.
    let req = d.create_request(ALICE, "cache", "30m");
    let rid = req["id"].as_str().unwrap().to_string();
    let approved = ok(
        d.post(
            &format!("/v1/requests/{rid}/approve"),
            Some(CAROL),
            r#"{"comment":"go"}"#,
        ),
        200,
    );
    let alice_grant = approved["grant"]["id"].as_str().unwrap().to_string();
    // Requested, then denied by erin.
    let denied = d.create_request(BOB, "cache", "30m");
    let did = denied["id"].as_str().unwrap().to_string();
    ok(
        d.post(
            &format!("/v1/requests/{did}/deny"),
            Some(ERIN),
            r#"{"reason":"not during the freeze"}"#,
        ),
        200,
    );
    // A session under bob's grant, ended by a revoke.
    let fingerprint = d.get("/v1/whoami", Some(BOB)).unwrap().json()["tcp_tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Tunnel {
        d,
        port: tunnel,
        up,
        fingerprint,
    };
    let (bob_grant, secret) = t.grant(BOB, "auto-echo", "5m");
    let (mut s, reply) = t.raw("auto-echo", &secret);
    assert_eq!(reply.status, common::tunnel::OK, "{reply:?}");
    common::tunnel::echo(&mut s, b"ping");
    let sid = reply.session_id.clone();
    ok(
        t.d.post(
            &format!("/v1/grants/{bob_grant}/revoke"),
            Some(DAVE),
            r#"{"reason":"INC-42 closed"}"#,
        ),
        200,
    );
    // A short grant that warns one second before it expires.
    let soon = t.d.create_request(ALICE, "soon-echo", "2s");
    let soon_grant = soon["grant"]["id"].as_str().unwrap().to_string();
    wait_for("the short grant to expire", || {
        t.d.get(&format!("/v1/grants/{soon_grant}"), Some(ALICE))
            .unwrap()
            .json()["state"]
            == "expired"
    });
    // Locking alice revokes her remaining grant.
    let locked = ok(
        t.d.post(
            "/v1/users/alice/lock",
            Some(DAVE),
            r#"{"reason":"laptop lost"}"#,
        ),
        200,
    );
    assert_eq!(locked["grants_revoked"], 1);

    // 4 request.created, 3 request.approved (carol, policy, policy),
    // 1 request.denied, 1 grant.expiring, 3 grant.ended, 1 session.ended,
    // 1 user.locked.
    wait_for("all 14 events", || rx.delivered().len() >= 14);
    let hits = rx.hits();
    for h in &hits {
        assert_signed(h);
        assert_eq!(h.json()["instance"], "test");
    }
    let ids: BTreeSet<String> = rx
        .delivered()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 14, "event ids are unique: {:?}", rx.delivered());

    let one = |event: &str, key: &str, val: &str| -> Value {
        let all = rx.delivered_event(event);
        let found: Vec<_> = all.iter().filter(|v| v[key] == val).cloned().collect();
        assert_eq!(found.len(), 1, "{event} with {key}={val}: {all:?}");
        found[0].clone()
    };
    let created = one("request.created", "request_id", &rid);
    assert_eq!(
        (&created["user"], &created["target"], &created["reason"]),
        (&json!("alice"), &json!("cache"), &json!("INC-7"))
    );
    assert!(created["at"].as_str().unwrap().ends_with('Z'));
    let appr = one("request.approved", "request_id", &rid);
    assert_eq!(appr["actor"], "carol");
    assert_eq!(appr["comment"], "go");
    assert_eq!(appr["grant_id"], alice_grant.as_str());
    let den = one("request.denied", "request_id", &did);
    assert_eq!(den["actor"], "erin");
    assert_eq!(den["user"], "bob");
    assert_eq!(den["decision_reason"], "not during the freeze");
    let ended = one("grant.ended", "grant_id", &bob_grant);
    assert_eq!(ended["end_reason"], "revoked");
    assert_eq!(ended["actor"], "dave");
    assert_eq!(ended["end_comment"], "INC-42 closed");
    let ses = one("session.ended", "session_id", &sid);
    assert_eq!(ses["end_reason"], "revoked");
    assert_eq!(ses["grant_id"], bob_grant.as_str());
    assert_eq!(ses["user"], "bob");
    assert_eq!(ses["bytes_in"], 4);
    let auto = one("request.approved", "grant_id", &soon_grant);
    assert_eq!(auto["actor"], "policy");
    let warn = one("grant.expiring", "grant_id", &soon_grant);
    assert_eq!(warn["remaining_seconds"], 1);
    assert_eq!(
        one("grant.ended", "grant_id", &soon_grant)["end_reason"],
        "expired"
    );
    let lock = one("user.locked", "user", "alice");
    assert_eq!(lock["actor"], "dave");
    assert_eq!(lock["reason"], "laptop lost");
    assert_eq!(lock["grants_revoked"], json!([alice_grant]));
    assert_eq!(
        one("grant.ended", "grant_id", &alice_grant)["end_reason"],
        "locked"
    );
    // The receiver records a delivery before it answers, and the daemon
    // counts it only once it has read the answer.
    let delivered = || metric(&t.d, r#"jitgate_notifications_total{result="delivered"}"#);
    wait_for("the daemon to count the 14 deliveries", || {
        delivered() >= 14.0
    });
    assert_eq!(delivered(), 14.0);
}

#[test]
fn only_subscribed_events_are_sent() {
    let rx = Receiver::start(free_port(), Mode::Ok);
    let d = Daemon::start_with(None, &notify_config(rx.port, r#"["request.denied"]"#, "5s"));
    let mut denied = Vec::new();
    for round in 1..=2 {
        let r = d.create_request(BOB, "cache", "30m");
        let id = r["id"].as_str().unwrap().to_string();
        ok(
            d.post(
                &format!("/v1/requests/{id}/deny"),
                Some(CAROL),
                r#"{"reason":"no"}"#,
            ),
            200,
        );
        denied.push(json!(id));
        // Rows are delivered oldest first: had the creations been queued,
        // they would be delivered by the time the last denial is.
        wait_for("the denial", || rx.delivered().len() >= round);
    }
    let all = rx.delivered();
    assert!(
        all.iter().all(|v| v["event"] == "request.denied"),
        "{all:?}"
    );
    let got: Vec<_> = all.iter().map(|v| v["request_id"].clone()).collect();
    assert_eq!(got, denied);
}

#[test]
fn a_receiver_that_is_down_gets_the_event_once_it_is_up() {
    let port = free_port();
    let d = Daemon::start_with(None, &notify_config(port, r#"["request.created"]"#, "5s"));
    let req = d.create_request(ALICE, "cache", "30m");
    wait_for("a failed attempt while the receiver is down", || {
        retried(&d) >= 2.0
    });
    let rx = Receiver::start(port, Mode::Ok);
    wait_for("the delivery", || !rx.delivered().is_empty());
    let v = &rx.delivered()[0];
    assert_eq!(v["request_id"], req["id"]);
    assert_signed(&rx.hits()[0]);
}

#[test]
fn a_receiver_answering_500_is_retried_with_the_same_delivery() {
    let rx = Receiver::start(free_port(), Mode::Fail);
    let d = Daemon::start_with(
        None,
        &notify_config(rx.port, r#"["request.created"]"#, "5s"),
    );
    d.create_request(ALICE, "cache", "30m");
    wait_for("three failed attempts", || rx.hits().len() >= 3);
    rx.set(Mode::Ok);
    wait_for("the delivery", || !rx.delivered().is_empty());
    let hits = rx.hits();
    let ids: BTreeSet<_> = hits
        .iter()
        .map(|h| h.header("x-jitgate-delivery"))
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same id: {hits:?}");
    let bodies: BTreeSet<_> = hits.iter().map(|h| h.body.clone()).collect();
    assert_eq!(
        bodies.len(),
        1,
        "every attempt carries the same signed body"
    );
    hits.iter().for_each(assert_signed);
    assert!(retried(&d) >= 3.0);
    // Recorded by the receiver before it answers, counted by the daemon
    // once it has read the answer.
    let delivered = || metric(&d, r#"jitgate_notifications_total{result="delivered"}"#);
    wait_for("the daemon to count the delivery", || delivered() >= 1.0);
    assert_eq!(delivered(), 1.0);
}

#[test]
fn queued_events_survive_a_restart() {
    let port = free_port();
    let mut d = Daemon::start_with(None, &notify_config(port, r#"["request.created"]"#, "5s"));
    let req = d.create_request(ALICE, "cache", "30m");
    wait_for("a failed attempt while the receiver is down", || {
        retried(&d) >= 1.0
    });
    assert!(d.stop().success());
    d.spawn();
    let rx = Receiver::start(port, Mode::Ok);
    wait_for("the delivery after the restart", || {
        !rx.delivered().is_empty()
    });
    assert_eq!(rx.delivered()[0]["request_id"], req["id"]);
    assert_signed(&rx.hits()[0]);
}

#[test]
fn a_receiver_that_never_answers_holds_up_neither_the_api_nor_other_receivers() {
    let hung = Receiver::start(free_port(), Mode::Hang);
    let good = Receiver::start(free_port(), Mode::Ok);
    // The hung receiver's deliveries stay outstanding for the whole test.
    let extra = notify_config(hung.port, r#"["*"]"#, "60s")
        + &notify_config(good.port, r#"["request.created"]"#, "5s");
    let mut d = Daemon::start_with(None, &extra);
    let mut ids = BTreeSet::new();
    for _ in 0..12 {
        // Each answers while up to four posts to `hung` hang unanswered.
        let r = d.create_request(ALICE, "cache", "30m");
        let id = r["id"].as_str().unwrap().to_string();
        ok(
            d.post(&format!("/v1/requests/{id}/approve"), Some(CAROL), "{}"),
            200,
        );
        ids.insert(id);
    }
    wait_for("the hung receiver to hold connections", || {
        !hung.hits().is_empty()
    });
    wait_for("the other receiver to get every event", || {
        good.delivered().len() >= 12
    });
    let got: BTreeSet<String> = good
        .delivered()
        .iter()
        .map(|v| v["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ids);
    assert!(hung.delivered().is_empty());
    // Shutdown abandons the hanging posts instead of waiting them out.
    assert!(d.stop().success());
}

#[test]
fn events_are_queued_and_delivered_from_a_postgresql_store() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("notify_e2e");
    let rx = Receiver::start(free_port(), Mode::Fail);
    let d = Daemon::start_with(Some(&url), &notify_config(rx.port, r#"["*"]"#, "5s"));
    let r = d.create_request(ALICE, "cache", "30m");
    let id = r["id"].as_str().unwrap();
    ok(
        d.post(
            &format!("/v1/requests/{id}/deny"),
            Some(CAROL),
            r#"{"reason":"no"}"#,
        ),
        200,
    );
    wait_for("failed attempts for both events", || rx.hits().len() >= 4);
    rx.set(Mode::Ok);
    wait_for("both events", || rx.delivered().len() >= 2);
    let mut events: Vec<_> = rx
        .delivered()
        .iter()
        .map(|v| v["event"].as_str().unwrap().to_string())
        .collect();
    events.sort();
    assert_eq!(events, ["request.created", "request.denied"]);
    rx.hits().iter().for_each(assert_signed);
}

// ------------------------------------------------------- leases, both stores

struct To(Vec<String>);

impl Routing for To {
    fn receivers(&self, _event: &str) -> Vec<String> {
        self.0.clone()
    }
    fn instance(&self) -> String {
        "lease-test".into()
    }
}

/// Two store handles (as two instances would have) drain one outbox
/// concurrently: every row is claimed exactly once.
async fn two_workers_never_claim_the_same_row(a: Store, b: Store) {
    let routing = Arc::new(To(vec!["http://r1/".into(), "http://r2/".into()]));
    a.set_routing(routing.clone());
    let now = jitgate::clock::now_ms();
    for i in 0..100 {
        let e = Event {
            id: format!("evt_{i}"),
            name: "user.locked",
            at_ms: now,
            fields: Default::default(),
        };
        assert_eq!(a.enqueue_event(&e).await.unwrap(), 2);
        // Queueing an event twice keeps one row per receiver.
        a.enqueue_event(&e).await.unwrap();
    }
    assert_eq!(a.outbox_len().await.unwrap(), 200);
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (n, s) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let claimed = claimed.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker{n}");
            loop {
                let mut got = 0;
                for r in ["http://r1/", "http://r2/"] {
                    let now = jitgate::clock::now_ms();
                    let rows = s
                        .claim_outbox(r, &owner, now, now + 60_000, 7)
                        .await
                        .unwrap();
                    got += rows.len();
                    for row in rows {
                        assert_eq!(row.attempts, 1);
                        assert!(s.finish_outbox(&row.id, &owner).await.unwrap());
                        claimed.lock().unwrap().push(row.id);
                    }
                }
                if got == 0 {
                    return;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let claimed = claimed.lock().unwrap().clone();
    let unique: BTreeSet<_> = claimed.iter().collect();
    assert_eq!((claimed.len(), unique.len()), (200, 200));
    assert_eq!(b.outbox_len().await.unwrap(), 0);

    // A lapsed lease is claimable again; the old owner's late update is not
    // applied over the new owner's.
    let e = Event {
        id: "evt_lapse".into(),
        name: "user.locked",
        at_ms: now,
        fields: Default::default(),
    };
    a.enqueue_event(&e).await.unwrap();
    let t0 = jitgate::clock::now_ms();
    let first = a
        .claim_outbox("http://r1/", "old", t0, t0 + 1, 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let t1 = t0 + 2;
    let second = b
        .claim_outbox("http://r1/", "new", t1, t1 + 60_000, 1)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempts, 2);
    assert!(!a.finish_outbox(&first[0].id, "old").await.unwrap());
    assert!(!a
        .retry_outbox(&first[0].id, "old", t1, "late")
        .await
        .unwrap());
    assert_eq!(b.release_outbox("new").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_leases_hold_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/j.db", dir.path().display());
    let a = Store::connect(&url, 4).await.unwrap();
    let b = Store::connect(&url, 4).await.unwrap();
    two_workers_never_claim_the_same_row(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_leases_hold_on_postgres() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("outbox");
    let a = Store::connect(&url, 4).await.unwrap();
    let b = Store::connect(&url, 4).await.unwrap();
    two_workers_never_claim_the_same_row(a, b).await;
}

/// The audit witness: a receiver naming `audit.checkpoint` gets each signed
/// checkpoint, whose signature it can check with the published key (that
/// `*` does not subscribe to it: `src/config/types.rs` unit test).
#[test]
fn signed_audit_checkpoints_reach_a_witness_that_names_them() {
    let witness = Receiver::start(free_port(), Mode::Ok);
    let extra = notify_config(witness.port, r#"["audit.checkpoint"]"#, "5s");
    let d = Daemon::start_with(None, &extra);
    for _ in 0..200 {
        let v = ok(d.get("/v1/audit/verify", Some(DAVE)), 200);
        if v["events"].as_i64().unwrap_or(0) >= 110 {
            break;
        }
        d.create_request(ALICE, "auto-web", "5m");
    }
    wait_for("the checkpoint at seq 100", || {
        witness
            .delivered_event("audit.checkpoint")
            .iter()
            .any(|v| v["seq"] == 100)
    });
    let key = ok(d.get("/v1/audit/public-key", Some(DAVE)), 200);
    let key = jitgate::audit_anchor::parse_public_key(key["public_key"].as_str().unwrap()).unwrap();
    let got = witness.delivered_event("audit.checkpoint");
    let c = got.iter().find(|v| v["seq"] == 100).unwrap();
    let hashes: Vec<String> = serde_json::from_value(c["hashes"].clone()).unwrap();
    assert_eq!(hashes.len(), 100);
    let msg = jitgate::audit_anchor::message(
        100,
        c["from_seq"].as_i64().unwrap(),
        c["at_ms"].as_i64().unwrap(),
        c["signed_by"].as_str().unwrap(),
        c["head"].as_str().unwrap(),
        &hashes,
    );
    let sig = hex::decode(c["signature"].as_str().unwrap()).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(&msg, &sig)
        .expect("the witness can check the signature");
    assert!(
        witness
            .delivered()
            .iter()
            .all(|v| v["event"] == "audit.checkpoint"),
        "{:?}",
        witness.delivered()
    );
}
