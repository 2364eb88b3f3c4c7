//! A recording that cannot be written (SPEC "Recording", on_failure): a
//! disk that fills up under `[recording] dir` mid-session ends the session
//! with reason `error` and says why (`refuse`), or lets it run and audits
//! `recording.failed` (`continue`); a full disk at the start refuses the
//! session. Needs a tmpfs mount (root); skipped loudly otherwise.

use crate::common;

use common::recording::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::e2e_skip("cannot mount a tmpfs for the recording disk test (needs root and mount)");
        return None;
    }
    Some(Tmpfs(dir.to_path_buf()))
}

fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
}

/// Output well past the tmpfs's size, a line at a time.
const LOUD: &str = "for i in $(seq 1 300); do head -c 4000 /dev/zero | tr '\\0' x; echo; sleep 0.005; done; echo all-done";

fn proxy(on_failure: &str) -> Option<(SshProxy, Tmpfs, tempfile::TempDir)> {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec");
    let m = mount(&rec, "256k")?;
    let cfg = format!(
        "\n[recording]\ndir = \"{}\"\nssh = \"terminal\"\non_failure = \"{on_failure}\"\n",
        rec.display()
    );
    let p = SshProxy::start_with(&cfg)?;
    Some((p, m, tmp))
}

#[test]
fn a_disk_filling_up_ends_the_session_with_refuse_and_is_audited_with_continue() {
    let Some((p, m, _tmp)) = proxy("refuse") else {
        return;
    };
    p.grant("auto-host");
    let o = p.ssh("auto-host", &["-tt", LOUD]).output_within(HANG);
    let (so, se) = out(&o);
    assert!(
        !o.status.success(),
        "the session must not run to its end unrecorded"
    );
    assert!(!so.contains("all-done"));
    assert!(
        se.contains("could not be recorded"),
        "the farewell says why: {se}"
    );
    let mut events = Vec::new();
    wait_for("session.ended", || {
        events = ended_events(&p.audit());
        !events.is_empty()
    });
    assert_eq!(detail(&events[0])["reason"], "error", "{}", events[0]);
    assert!(p
        .d
        .metrics()
        .contains("jitgate_recording_failures_total{kind=\"ssh\"} 1"));
    // Full from the start: refused before anything runs.
    fill(&m.0);
    let o = p
        .ssh("auto-host", &["echo should-not-run"])
        .output_within(HANG);
    let (so, se) = out(&o);
    assert!(!so.contains("should-not-run"), "{so}");
    assert!(se.contains("cannot be recorded"), "{se}");
    drop(p);

    let Some((p, _m, _tmp)) = proxy("continue") else {
        return;
    };
    p.grant("auto-host");
    let o = p.ssh("auto-host", &["-tt", LOUD]).output_within(HANG);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert!(so.contains("all-done"));
    wait_for("recording.failed audited", || {
        p.audit().contains("\"recording.failed\"")
    });
    let mut events = Vec::new();
    wait_for("session.ended", || {
        events = ended_events(&p.audit());
        !events.is_empty()
    });
    let d = detail(&events[0]);
    assert_eq!(d["reason"], "client_closed", "{d}");
    assert!(
        d["recording_sha256"].is_null(),
        "a broken recording is not sealed as whole: {d}"
    );
}
