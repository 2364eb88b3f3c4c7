//! Running under systemd: readiness and stop notifications over the real
//! `$NOTIFY_SOCKET` protocol, and the unit file checked by the real
//! `systemd-analyze` (skipped loudly where it is missing).

use crate::common;

use common::daemon::*;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn recv(rx: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = rx
        .recv(&mut buf)
        .expect("a notification before the timeout");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn has_line(msg: &str, want: &str) -> bool {
    msg.lines().any(|l| l == want)
}

#[test]
fn ready_is_sent_once_the_daemon_answers_and_stopping_on_sigterm() {
    // An abstract socket name, as systemd itself uses.
    let name = format!("jitgate-notify-test-{}", std::process::id());
    let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();

    let mut d = Daemon::configured(None, "", "");
    d.env.push(("NOTIFY_SOCKET".into(), format!("@{name}")));
    d.launch();
    let first = recv(&rx);
    assert!(has_line(&first, "READY=1"), "{first:?}");
    // Sent only once the daemon serves: no polling here.
    let r = d.get("/readyz", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.get("/v1/whoami", Some(DAVE)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);

    // A reload is bracketed by RELOADING=1 and READY=1.
    let r = d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(recv(&rx), "RELOADING=1");
    assert_eq!(recv(&rx), "READY=1");

    let st = d.stop();
    assert!(st.success(), "{st}");
    let last = recv(&rx);
    assert!(has_line(&last, "STOPPING=1"), "{last:?}");
}

fn unit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/jitgate.service")
}

fn systemd_analyze() -> Option<&'static str> {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::e2e_skip("systemd-analyze is not installed");
        return None;
    }
    Some("systemd-analyze")
}

#[test]
fn the_unit_has_an_exposure_of_at_most_2_0() {
    let Some(sa) = systemd_analyze() else { return };
    // --threshold is on the 0..100 scale of the printed 0.0..10.0 level.
    let out = Command::new(sa)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(unit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default();
    eprintln!("{overall}");
    assert!(
        out.status.success(),
        "exposure above 2.0: {overall}\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(sa) = systemd_analyze() else { return };
    // The same unit with ExecStart pointing at the binary under test, since
    // verify checks that the command exists.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("jitgate.service");
    let text = std::fs::read_to_string(unit()).unwrap();
    assert!(text.contains("/usr/local/bin/jitgate "), "{text}");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/jitgate ", &format!("{BIN} ")),
    )
    .unwrap();
    let out = Command::new(sa).arg("verify").arg(&copy).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("jitgate.service"), "{said}");
}
