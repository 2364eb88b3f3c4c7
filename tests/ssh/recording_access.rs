//! Who sees recordings, and what seals them (SPEC "Recording"): the
//! engineer is refused, an approver of the grant's policy and an admin
//! list, fetch and replay them, every fetch audited; `audit --verify`
//! checks each recording against the digest the chain sealed, and names
//! an altered or missing one; a live session is watched as it runs.

use crate::common;

use common::daemon::*;
use common::recording::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};

/// A target whose grants need one approval from the leads (carol, erin).
const APPROVED: &str = r#"
[[policies]]
name = "recpol"
requesters = ["group:oncall"]
targets = ["rec-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "10m"
"#;

fn start() -> Option<SshProxy> {
    SshProxy::start_with_targets(
        &(APPROVED.to_string() + &section("terminal", "refuse")),
        &["rec-host"],
    )
}

/// bob's grant on rec-host, approved by carol.
fn approved_grant(p: &SshProxy) {
    let r = p.d.request(BOB, "rec-host", "5m", "INC-1");
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let a = p.d.approve(&id, CAROL);
    assert_eq!(a.status, 200, "{}", a.body);
}

fn ended(p: &SshProxy) -> Value {
    let mut got = Vec::new();
    wait_for("session.ended", || {
        got = ended_events(&p.audit());
        !got.is_empty()
    });
    got.remove(0)
}

#[test]
fn approvers_and_admins_see_recordings_the_engineer_does_not_and_verify_catches_an_edit() {
    let Some(p) = start() else { return };
    approved_grant(&p);
    let o = p
        .ssh("rec-host", &["-tt", "echo recorded-output"])
        .output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    let e = ended(&p);
    let sid = e["subject"].as_str().unwrap().to_string();
    let sealed = detail(&e)["recording_sha256"].as_str().unwrap().to_string();

    // Listing: by visibility.
    let list =
        |token: &str| p.d.get("/v1/recordings", Some(token)).unwrap().json()["recordings"].clone();
    assert_eq!(list(BOB), serde_json::json!([]), "the engineer lists none");
    assert_eq!(
        list(ALICE),
        serde_json::json!([]),
        "a requester who approves nothing lists none"
    );
    for token in [CAROL, DAVE] {
        let rows = list(token);
        assert_eq!(rows[0]["id"], sid.as_str(), "{rows}");
        assert_eq!(rows[0]["sha256"], sealed.as_str());
        assert_eq!(rows[0]["instance"], "test");
        assert_eq!(rows[0]["kind"], "ssh");
    }
    // Fetching: the engineer is refused; the approver gets the file.
    let path = format!("/v1/sessions/{sid}/recording");
    assert_eq!(p.d.get(&path, Some(BOB)).unwrap().status, 403);
    let r = p.d.get(&path, Some(CAROL)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        hex::encode(jitgate::secrets::sha256(r.body.as_bytes())),
        sealed
    );
    assert_eq!(
        p.d.get("/v1/sessions/ses_nope/recording", Some(DAVE))
            .unwrap()
            .status,
        404
    );
    wait_for("recording.fetched audited", || {
        p.audit().contains("\"recording.fetched\"")
    });
    // Replay and listing through the CLI.
    let o = p.d.cli(CAROL, &["play", &sid, "--speed", "1000"]);
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("recorded-output"));
    let o = p.d.cli(DAVE, &["recordings", "--target", "rec-host"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&sid),
        "{:?}",
        out(&o)
    );

    // The chain seals the file: intact, edited, gone.
    let o = p.d.cli(DAVE, &["audit", "--verify"]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so} {se}");
    assert!(
        so.contains("recordings: 1 match their sealed digest"),
        "{so}"
    );
    let file = dir(&p.d.dir).join(format!("{sid}.cast"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("recorded-output", "innocent-output")).unwrap();
    let o = p.d.cli(DAVE, &["audit", "--verify"]);
    let (so, _) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{so}");
    assert!(
        so.contains(&format!("recording ALTERED: session {sid}")),
        "{so}"
    );
    std::fs::remove_file(&file).unwrap();
    let o = p.d.cli(DAVE, &["audit", "--verify"]);
    let (so, _) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{so}");
    assert!(
        so.contains(&format!("recording MISSING: session {sid}")),
        "{so}"
    );
}

#[test]
fn a_live_session_is_watched_while_its_command_runs() {
    let Some(p) = start() else { return };
    approved_grant(&p);
    let flag = p.sshd.work.join("rec-live-flag");
    let cmd = format!(
        "echo first-part; while [ ! -e {} ]; do sleep 0.1; done; echo second-part",
        flag.display()
    );
    let mut session = p
        .ssh("rec-host", &["-tt", &cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sid = String::new();
    wait_for("the live session", || {
        let s = p.d.get("/v1/sessions", Some(DAVE)).unwrap().json();
        match s["sessions"][0]["id"].as_str() {
            Some(id) => {
                sid = id.to_string();
                true
            }
            None => false,
        }
    });
    // The engineer may not watch.
    let o = p.d.cli(BOB, &["watch", &sid]);
    assert_eq!(o.status.code(), Some(1), "{:?}", out(&o));
    let mut watcher = Command::new(BIN)
        .args(["watch", &sid])
        .env("JITGATE_URL", p.d.url())
        .env("JITGATE_TOKEN", CAROL)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // The first part reaches the watcher while the command still runs
    // (it waits for the flag this test creates only afterwards).
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + HANG;
    while !String::from_utf8_lossy(&seen).contains("first-part") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let chunk = rx
            .recv_timeout(left)
            .expect("the watcher shows the live output");
        seen.extend(chunk);
    }
    // (The exec marker names the command, "second-part" included; the
    // output's line starts at a line start.)
    assert!(!String::from_utf8_lossy(&seen).contains("\nsecond-part"));
    std::fs::write(&flag, b"").unwrap();
    assert!(wait_status(&mut session, HANG).success());
    let st = wait_status(&mut watcher, HANG);
    while let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_secs(5)) {
        seen.extend(chunk);
    }
    assert!(st.success(), "the watch ends with the session's end event");
    assert!(String::from_utf8_lossy(&seen).contains("\nsecond-part"));
    wait_for("recording.watched audited", || {
        p.audit().contains("\"recording.watched\"")
    });
}
