//! A recording survives its daemon's crash up to its last flush, and
//! recordings past `retention` are deleted, each deletion audited.

use crate::common;

use common::recording::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use serde_json::Value;

#[test]
fn kill_9_mid_session_leaves_a_readable_recording() {
    let Some(mut p) = SshProxy::start_with(&section("terminal", "refuse")) else {
        return;
    };
    p.grant("auto-host");
    let mut c = p
        .ssh("auto-host", &["-tt", "echo before-kill; sleep 60"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rec = dir(&p.d.dir);
    let file = || {
        std::fs::read_dir(&rec)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|f| f.extension().is_some_and(|x| x == "cast"))
    };
    // Flushed while the session runs, without any end.
    wait_for("the output flushed to the recording", || {
        file().is_some_and(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains("before-kill")
        })
    });
    let mut daemon = p.d.child.take().unwrap();
    daemon.kill().unwrap();
    let _ = daemon.wait();
    kill_and_reap(&mut c);
    let f = file().unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.ends_with('\n'), "every line written whole: {text:?}");
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let (header, _) = cast(&f);
    assert_eq!(header["version"], 2);
    assert!(cast_output(&f).contains("before-kill"));
}

#[test]
fn recordings_past_retention_are_deleted_and_audited() {
    let cfg = "\n[recording]\nssh = \"terminal\"\nretention = \"2s\"\n";
    let Some(p) = SshProxy::start_with(cfg) else {
        return;
    };
    p.grant("auto-host");
    let o = p
        .ssh("auto-host", &["-tt", "echo kept-for-a-while"])
        .output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    let mut sid = String::new();
    wait_for("session.ended", || {
        let e = ended_events(&p.audit());
        if let Some(e) = e.first() {
            sid = e["subject"].as_str().unwrap().to_string();
        }
        !sid.is_empty()
    });
    let file = dir(&p.d.dir).join(format!("{sid}.cast"));
    assert!(file.exists() || p.audit().contains("recording.deleted"));
    wait_for("recording.deleted", || {
        let a: Value = serde_json::from_str(&p.audit()).unwrap();
        a["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "recording.deleted" && e["subject"] == sid.as_str())
    });
    assert!(!file.exists());
    assert!(!dir(&p.d.dir).join(format!("{sid}.json")).exists());
    // The chain still verifies: a deleted recording is not "missing".
    let o = p.d.cli(common::daemon::DAVE, &["audit", "--verify"]);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so} {se}");
    assert!(so.contains("1 deleted by retention"), "{so}");
}
