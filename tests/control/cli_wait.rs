//! `jitgate request ... --wait`: the command waits while the request is
//! pending, and prints the grant once another user approves it; a denial
//! exits 1 with the approver's reason; no decision in time exits 1 and
//! leaves the request pending.

use crate::common;

use common::client_home::ClientHome;
use common::daemon::*;
use common::wait::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Starts `jitgate request cache ... --wait` as alice; returns the child and
/// the id of the request it made (once the daemon lists it).
fn start_waiting(d: &Daemon, home: &ClientHome, extra: &[&str]) -> (std::process::Child, String) {
    let mut args = vec![
        "request", "cache", "--for", "10m", "--reason", "INC-9", "--wait",
    ];
    args.extend_from_slice(extra);
    let mut child = home
        .cli(d, ALICE, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    match pending_id(d) {
        Some(id) => (child, id),
        None => {
            kill_and_reap(&mut child);
            panic!("the request never appeared");
        }
    }
}

/// The id of the one pending request, once the daemon lists it.
fn pending_id(d: &Daemon) -> Option<String> {
    let deadline = Instant::now() + HANG;
    while Instant::now() < deadline {
        let r = d.get("/v1/requests?state=pending", Some(CAROL)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        if let Some(id) = v["requests"][0]["id"].as_str() {
            return Some(id.to_string());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn request_wait_prints_the_grant_once_approved() {
    let d = Daemon::start();
    let home = ClientHome::new();
    let (child, id) = start_waiting(&d, &home, &[]);
    // Still waiting while pending (it has not exited on its own).
    std::thread::sleep(Duration::from_millis(1500));
    let r = d
        .post(&format!("/v1/requests/{id}/approve"), Some(CAROL), "{}")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let grant = r.json()["grant_id"].as_str().unwrap().to_string();
    let o = wait_output(child, HANG);
    let (so, se) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{so}{se}");
    assert!(
        se.contains(&format!("waiting for approval of request {id}")),
        "{se}"
    );
    assert!(
        so.starts_with(&format!(
            "request {id} approved: grant {grant} for cache active until "
        )),
        "{so}"
    );
}

#[test]
fn request_wait_exits_1_when_denied_or_undecided() {
    let d = Daemon::start();
    let home = ClientHome::new();
    let (child, id) = start_waiting(&d, &home, &[]);
    let r = d
        .post(
            &format!("/v1/requests/{id}/deny"),
            Some(ERIN),
            r#"{"reason": "use the staging cache"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let o = wait_output(child, HANG);
    let se = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert_eq!(text(&o.stdout), "");
    assert!(
        se.contains(&format!(
            "request {id} was denied by erin: use the staging cache"
        )),
        "{se}"
    );

    // No decision within --wait-timeout: exit 1, the request stays pending.
    let (child, id) = start_waiting(&d, &home, &["--wait-timeout", "2s"]);
    let o = wait_output(child, HANG);
    let se = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(
        se.contains(&format!("no decision on request {id} within 2s")),
        "{se}"
    );
    let r = d
        .get(&format!("/v1/requests/{id}"), Some(ALICE))
        .unwrap()
        .json();
    assert_eq!(r["state"], "pending");
}
