//! Hostile input on the SSH listener: garbage instead of a banner, a key
//! exchange that never finishes, and a brute force of unknown keys. Each is
//! cut off within a bound, counted in jitgate_connections_rejected_total,
//! and leaves the proxy serving.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::sshd::*;
use common::sshproxy::*;
use common::tunnel::{closed_by_peer, wait_for};
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn metric(p: &SshProxy, sample: &str) -> f64 {
    p.d.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn raw(p: &SshProxy) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

fn still_serves(p: &SshProxy) {
    p.grant("auto-host");
    let o = p.ssh("auto-host", &["echo alive"]).output_within(HANG);
    assert_eq!(out(&o).0, "alive\n", "{:?}", out(&o));
}

const PROTOCOL_ERRORS: &str =
    r#"jitgate_connections_rejected_total{kind="ssh",reason="protocol_error"}"#;
const AUTH_FAILED: &str = r#"jitgate_connections_rejected_total{kind="ssh",reason="auth_failed"}"#;

#[test]
fn garbage_instead_of_a_banner_is_cut_off() {
    let Some(p) = SshProxy::start() else { return };
    // An HTTP request, then a megabyte without a line end.
    let mut s = raw(&p);
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(closed_by_peer(&mut s), "left open after an HTTP request");
    let mut s = raw(&p);
    let _ = s.write_all(&vec![b'A'; 1 << 20]);
    assert!(closed_by_peer(&mut s), "left open after an endless line");
    // A banner with a binary tail and an unknown protocol version.
    let mut s = raw(&p);
    let _ = s.write_all(b"SSH-1.5-ancient\r\n\x00\xff\x00\xff");
    assert!(closed_by_peer(&mut s), "left open after a bad version");
    wait_for("the rejections to be counted", || {
        metric(&p, PROTOCOL_ERRORS) == 3.0
    });
    still_serves(&p);
    // Each refusal counted once, and the good login not at all.
    assert_eq!(metric(&p, PROTOCOL_ERRORS), 3.0, "{}", p.d.metrics());
}

#[test]
fn a_key_exchange_that_never_finishes_is_cut_off() {
    let Some(p) = SshProxy::start() else { return };
    let mut s = raw(&p);
    s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").unwrap();
    // Then silence: no KEXINIT. The login limit is 30 s.
    let t0 = Instant::now();
    assert!(closed_by_peer(&mut s), "never closed");
    assert!(t0.elapsed() < Duration::from_secs(50), "{:?}", t0.elapsed());
    still_serves(&p);
}

#[test]
fn a_brute_force_of_unknown_keys_is_rate_limited_and_audited() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let stranger = p.d.dir.join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    let attempt = |key: &std::path::Path| {
        Command::new("ssh")
            .args(ssh_opts(key))
            .args(["-p", &p.port.to_string(), "auto-host@127.0.0.1", "echo in"])
            .output_within(HANG)
    };
    for _ in 0..8 {
        let o = attempt(&stranger);
        assert_eq!(o.status.code(), Some(255), "{:?}", out(&o));
        assert!(out(&o).1.contains("Permission denied"), "{:?}", out(&o));
    }
    // The source is blocked now: even bob's key, with a grant, is refused.
    let o = attempt(&p.key);
    assert_eq!(o.status.code(), Some(255), "{:?}", out(&o));
    assert!(out(&o).1.contains("Permission denied"), "{:?}", out(&o));
    // One per connection: eight unknown keys and bob's blocked one.
    wait_for("the refusals to be counted", || {
        metric(&p, AUTH_FAILED) == 9.0
    });
    // Audited up to the block, then no more: the limit bounds the log too.
    // (Refusals are audited off the connection's task, so wait for them.)
    let failed = || -> Vec<String> {
        let audit: serde_json::Value = serde_json::from_str(&p.audit()).unwrap();
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "auth.failed")
            .filter_map(|e| e["detail"]["reason"].as_str().map(str::to_string))
            .collect()
    };
    wait_for("the refusals before the block audited", || {
        failed().len() >= 5
    });
    let failed = failed();
    assert_eq!(failed.len(), 5, "{failed:?}");
    assert!(failed.iter().all(|r| r.starts_with("unknown key SHA256:")));
    assert!(failed[4].ends_with("source blocked"), "{failed:?}");
}
