//! `jitgate audit --verify` against a server that lies: a tiny HTTP server
//! replays a real daemon's events, checkpoints and public key, then invents
//! a continuation: events past the real end, correctly hash-chained (anyone
//! can compute the chain), page after page without end. The CLI must not
//! take that answer: it stops reading where no checkpoint signed with the
//! pinned key can vouch for more, and reports the unsigned run.

use crate::common;

use common::daemon::*;
use common::wait::{OutputWithin, HANG};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake server knows: the real daemon's answers, and whether it
/// invents events after them.
struct Script {
    events: Vec<Value>,
    checkpoints: Value,
    public_key: Value,
    forge: bool,
    /// Invented events so far, chained after the real last one.
    forged: Vec<Value>,
    /// The highest `after` asked for: how far the CLI read.
    furthest: i64,
}

impl Script {
    fn audit_page(&mut self, after: i64, limit: usize) -> Value {
        self.furthest = self.furthest.max(after);
        let mut page: Vec<Value> = self
            .events
            .iter()
            .filter(|e| e["seq"].as_i64().unwrap() > after)
            .take(limit)
            .cloned()
            .collect();
        if self.forge && page.len() < limit {
            let real_last = self.events.len() as i64;
            let want = after.max(real_last) + (limit - page.len()) as i64;
            while real_last + (self.forged.len() as i64) < want {
                let prev = self.forged.last().unwrap_or(self.events.last().unwrap());
                let seq = prev["seq"].as_i64().unwrap() + 1;
                let mut e = prev.clone();
                let at = e["at_ms"].as_i64().unwrap() + 1;
                let detail = r#"{"note":"invented by the server"}"#;
                let hash = jitgate::audit::hash_event(
                    prev["hash"].as_str().unwrap(),
                    seq,
                    at,
                    e["actor"].as_str().unwrap(),
                    e["action"].as_str().unwrap(),
                    e["subject"].as_str().unwrap(),
                    detail,
                );
                e["seq"] = json!(seq);
                e["at_ms"] = json!(at);
                e["detail_raw"] = json!(detail);
                e["prev_hash"] = prev["hash"].clone();
                e["hash"] = json!(hash);
                self.forged.push(e);
            }
            page.extend(
                self.forged
                    .iter()
                    .filter(|e| e["seq"].as_i64().unwrap() > after)
                    .take(limit - page.len())
                    .cloned(),
            );
        }
        json!({ "events": page })
    }

    fn answer(&mut self, path: &str) -> Value {
        let (route, q) = path.split_once('?').unwrap_or((path, ""));
        let arg = |k: &str| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse::<i64>().ok())
        };
        match route {
            "/v1/audit" => {
                let after = arg("after").unwrap_or(0);
                let limit = arg("limit").unwrap_or(100) as usize;
                self.audit_page(after, limit)
            }
            "/v1/audit/checkpoints" => {
                let after = arg("after").unwrap_or(0);
                let list: Vec<Value> = self.checkpoints["checkpoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["seq"].as_i64().unwrap() > after)
                    .cloned()
                    .collect();
                json!({ "checkpoints": list })
            }
            "/v1/audit/public-key" => self.public_key.clone(),
            // The server's own verdict: all is well.
            "/v1/audit/verify" => json!({"ok": true, "events": self.events.len()}),
            _ => json!({"error": {"code": "not_found", "message": path}}),
        }
    }
}

fn serve_one(s: TcpStream, script: &Mutex<Script>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 || h == "\r\n" {
                break;
            }
        }
        let body = script.lock().unwrap().answer(&path).to_string();
        let mut w = &s;
        write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
}

/// The fake server's URL.
fn lying_server(script: Arc<Mutex<Script>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let script = script.clone();
            std::thread::spawn(move || {
                let _ = serve_one(s, &script);
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A real daemon's chain (a few events, the checkpoint written at start and
/// at shutdown) and its public key.
fn real_chain() -> (Vec<Value>, Value, Value) {
    let mut d = Daemon::start();
    for _ in 0..3 {
        d.create_request(ALICE, "auto-web", "5m");
    }
    assert!(d.stop().success(), "{}", d.logs());
    d.spawn();
    let events = d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().json()["events"]
        .as_array()
        .unwrap()
        .clone();
    let checkpoints = d
        .get("/v1/audit/checkpoints?limit=1000", Some(DAVE))
        .unwrap()
        .json();
    let key = d.get("/v1/audit/public-key", Some(DAVE)).unwrap().json();
    assert!(!events.is_empty() && key["public_key"].is_string(), "{key}");
    (events, checkpoints, key)
}

fn verify_against(url: &str, key: &Value) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["audit", "--verify"])
        .env("JITGATE_URL", url)
        .env("JITGATE_TOKEN", DAVE)
        .env("JITGATE_AUDIT_PUBKEY", key["public_key"].as_str().unwrap())
        .output_within(HANG)
}

#[test]
fn an_invented_continuation_is_not_read_forever_and_is_reported() {
    let (events, checkpoints, key) = real_chain();
    let last = events.len() as i64;
    let script = |forge| {
        Arc::new(Mutex::new(Script {
            events: events.clone(),
            checkpoints: checkpoints.clone(),
            public_key: key.clone(),
            forge,
            forged: Vec::new(),
            furthest: 0,
        }))
    };
    // The honest replay verifies: the fake server answers as the daemon does.
    let honest = script(false);
    let o = verify_against(&lying_server(honest), &key);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains(&format!("{last} events verified")), "{out}");

    // The same with an endless, well-chained continuation: reported, and
    // not read past what the checkpoints could ever vouch for.
    let lying = script(true);
    let o = verify_against(&lying_server(lying.clone()), &key);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!("audit chain BROKEN at seq {}", last + 1))
            && out.contains("no valid signed checkpoint covers events"),
        "{out}"
    );
    let furthest = lying.lock().unwrap().furthest;
    assert!(
        furthest < last + 100 + 1000,
        "the CLI read on to seq {furthest}"
    );
}
