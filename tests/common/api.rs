//! The admin API calls tests make over and over (request, approve, revoke,
//! terminate, lock, reload), and the documented error shape.

use super::daemon::{Daemon, Resp, DAVE};
use serde_json::{json, Value};

impl Daemon {
    /// POST /v1/requests as `token`; the answer, whatever its status.
    pub fn request(&self, token: &str, target: &str, duration: &str, reason: &str) -> Resp {
        let body = json!({"target": target, "duration": duration, "reason": reason});
        self.post("/v1/requests", Some(token), &body.to_string())
            .expect("POST /v1/requests")
    }

    /// POST /v1/requests/{id}/approve as `token`; the answer.
    pub fn approve(&self, id: &str, token: &str) -> Resp {
        self.post(&format!("/v1/requests/{id}/approve"), Some(token), "{}")
            .expect("POST approve")
    }

    /// Revokes grant `gid` as dave with `reason`; asserts 200 and returns the
    /// number of sessions the revoke confirmed closed.
    pub fn revoke(&self, gid: &str, reason: &str) -> u64 {
        let body = json!({ "reason": reason }).to_string();
        let r = self
            .post(&format!("/v1/grants/{gid}/revoke"), Some(DAVE), &body)
            .expect("POST revoke");
        assert_eq!(r.status, 200, "revoke {gid}: {}", r.body);
        r.json()["sessions_terminated"]
            .as_u64()
            .unwrap_or_else(|| panic!("no sessions_terminated: {}", r.body))
    }

    /// Terminates session `sid` as dave; asserts 200.
    pub fn terminate(&self, sid: &str, reason: &str) -> Value {
        let body = json!({ "reason": reason }).to_string();
        let r = self
            .post(&format!("/v1/sessions/{sid}/terminate"), Some(DAVE), &body)
            .expect("POST terminate");
        assert_eq!(r.status, 200, "terminate {sid}: {}", r.body);
        r.json()
    }

    /// Locks `user` as dave; asserts 200 and returns the answer
    /// (`grants_revoked`, `sessions_terminated`).
    pub fn lock(&self, user: &str, reason: &str) -> Value {
        let body = json!({ "reason": reason }).to_string();
        let r = self
            .post(&format!("/v1/users/{user}/lock"), Some(DAVE), &body)
            .expect("POST lock");
        assert_eq!(r.status, 200, "lock {user}: {}", r.body);
        r.json()
    }

    /// POST /v1/admin/reload as dave; asserts 200.
    pub fn reload(&self) -> Value {
        let r = self
            .post("/v1/admin/reload", Some(DAVE), "")
            .expect("POST reload");
        assert_eq!(r.status, 200, "reload: {}", r.body);
        r.json()
    }

    /// The live sessions' ids (as dave).
    pub fn session_ids(&self) -> Vec<String> {
        self.get("/v1/sessions", Some(DAVE))
            .expect("GET sessions")
            .json()["sessions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Asserts `r` is the documented error: `status`, and a body that is only
/// `{"error": {"code": CODE, "message": non-empty, ...}}`. Returns the body.
pub fn assert_api_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {}", r.body));
    assert_eq!(v["error"]["code"], code, "{}", r.body);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message must be a non-empty string: {}",
        r.body
    );
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(1),
        "only the error object: {}",
        r.body
    );
    v
}
