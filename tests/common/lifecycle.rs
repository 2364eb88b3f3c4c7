//! Grant lifecycle calls the front-end tests share: extending a grant as
//! its owner and reading its end.

use super::daemon::{Daemon, DAVE};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch of an RFC 3339 string in `v`.
pub fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    humantime::parse_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64
}

/// The grant's `expires_at`, as dave sees it.
pub fn grant_end(d: &Daemon, gid: &str) -> i64 {
    let r = d
        .get(&format!("/v1/grants/{gid}"), Some(DAVE))
        .expect("GET grant");
    assert_eq!(r.status, 200, "{}", r.body);
    ms(&r.json()["expires_at"])
}

/// Extends `gid` by `duration` as its owner `token`, under a policy that
/// needs no approval; asserts it applied and returns the new end.
pub fn extend_now(d: &Daemon, token: &str, gid: &str, duration: &str) -> i64 {
    let body = json!({"duration": duration, "reason": "INC-77 more time"}).to_string();
    let r = d
        .post(&format!("/v1/grants/{gid}/extend"), Some(token), &body)
        .expect("POST extend");
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["state"], "approved", "{v}");
    ms(&v["grant"]["expires_at"])
}

/// Sleeps until `at_ms` (wall clock) plus `margin`.
pub fn sleep_past(at_ms: i64, margin: Duration) {
    let left = (at_ms - now_ms()).max(0) as u64;
    std::thread::sleep(Duration::from_millis(left) + margin);
}

/// Polls `ok` for up to `bound`.
pub fn wait_until(what: &str, bound: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + bound;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A scheduled grant for `token` on `target` (a policy needing no approval)
/// starting `in_ms` from now, and its connect secret; with its start.
pub fn scheduled_grant(
    d: &Daemon,
    token: &str,
    target: &str,
    in_ms: i64,
    duration: &str,
) -> (String, String, i64) {
    let start = jitgate::clock::rfc3339(now_ms() + in_ms);
    let body = json!({"target": target, "duration": duration, "reason": "INC-8 planned", "starts_at": start});
    let r = d
        .post("/v1/requests", Some(token), &body.to_string())
        .expect("POST /v1/requests");
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["grant"]["state"], "scheduled", "{v}");
    let gid = v["grant"]["id"].as_str().expect("grant id").to_string();
    let s = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(token), "")
        .expect("POST secret");
    assert_eq!(s.status, 200, "{}", s.body);
    let secret = s.json()["secret"].as_str().expect("secret").to_string();
    (gid, secret, ms(&v["grant"]["starts_at"]))
}
