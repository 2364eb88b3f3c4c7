//! The TCP tunnel end to end: real upstream servers, the real `jitgate
//! connect`, and the daemon ending sessions when their grant ends, whatever
//! ends it.

use crate::common;

use common::daemon::*;
use common::free_port;
use common::tunnel::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

#[test]
fn revoking_a_grant_closes_the_tunneled_session_and_records_it() {
    let t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let mut c = t.connect("auto-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"hello through the tunnel");

    let sessions = t.d.get("/v1/sessions", Some(DAVE)).unwrap().json();
    let live = sessions["sessions"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{sessions}");
    assert_eq!(live[0]["user"], "bob");
    assert_eq!(live[0]["kind"], "tcp");
    assert_eq!(live[0]["grant_id"], gid.as_str());
    let left = live[0]["remaining_seconds"].as_i64().unwrap();
    assert!((1..=300).contains(&left), "{left}");

    let r =
        t.d.post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"INC-42 closed"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["sessions_terminated"],
        1,
        "revoke returns after the session is closed"
    );

    // The engineer's local socket is closed, and `connect` says why and exits 1.
    assert!(closed_by_peer(&mut s), "socket still open after revoke");
    assert_eq!(c.wait_exit(), Some(1));
    let said = c.said();
    assert!(
        said.contains("access to auto-echo ended: grant revoked by dave (INC-42 closed)"),
        "{said}"
    );

    let m = t.d.metrics();
    for sample in [
        r#"jitgate_sessions_started_total{kind="tcp",target="auto-echo"} 1"#,
        r#"jitgate_sessions_ended_total{kind="tcp",reason="revoked"} 1"#,
        r#"jitgate_termination_seconds_count{cause="revoked"} 1"#,
        r#"jitgate_sessions_active{kind="tcp",target="auto-echo"} 0"#,
    ] {
        assert!(m.contains(sample), "{sample} missing in\n{m}");
    }
    assert!(
        t.metric(r#"jitgate_bytes_total{direction="in",kind="tcp"}"#) >= 24.0,
        "{m}"
    );
    wait_for("session audit events", || {
        let a = t.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
        a.contains("session.started")
            && a.contains("session.ended")
            && a.contains(r#""reason":"revoked""#)
            && a.contains(r#""bytes_in":24"#)
    });
}

/// Which of two sockets the proxy closed: the other still echoes. (A
/// closed one answers at once; the bound only has to outlast a loaded
/// machine's echo on the live one, which must not read as closed.)
fn closed_one(a: &mut std::net::TcpStream, b: &mut std::net::TcpStream) -> (bool, bool) {
    let probe = |s: &mut std::net::TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(b"?");
        let mut one = [0u8; 1];
        !matches!(s.read(&mut one), Ok(1))
    };
    (probe(a), probe(b))
}

#[test]
fn terminate_and_lock_from_the_cli_close_sessions_and_say_how_many() {
    let t = Tunnel::start();
    let (_gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let mut c = t.connect("auto-echo", &secret);
    let (mut a, mut b) = (c.open(), c.open());
    echo(&mut a, b"a");
    echo(&mut b, b"b");
    assert_eq!(t.live_sessions(), 2);

    let list = t.d.cli(DAVE, &["sessions", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let sid = list["sessions"][0]["id"].as_str().unwrap().to_string();
    let out =
        t.d.cli(DAVE, &["terminate", &sid, "--reason", "runaway query"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 session(s) closed"), "{said}");

    let (a_closed, b_closed) = closed_one(&mut a, &mut b);
    assert!(
        a_closed ^ b_closed,
        "exactly one session ends: {a_closed} {b_closed}"
    );
    assert_eq!(t.live_sessions(), 1);
    wait_for("connect to report the termination", || {
        c.said()
            .contains("access to auto-echo ended: session terminated by dave (runaway query)")
    });
    assert!(
        c.child.try_wait().unwrap().is_none(),
        "a terminated session leaves the grant usable, so connect keeps running"
    );

    let out = t.d.cli(DAVE, &["lock", "bob", "--reason", "laptop stolen"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("locked bob: 1 grant(s) revoked, 1 session(s) closed"),
        "{said}"
    );
    let mut survivor = if a_closed { b } else { a };
    assert!(closed_by_peer(&mut survivor));
    assert_eq!(c.wait_exit(), Some(1));
    assert!(
        c.said()
            .contains("ended: user locked by dave (laptop stolen)"),
        "{}",
        c.said()
    );
    assert_eq!(t.live_sessions(), 0);

    // The lock revoked the grant; its secret no longer works, and says why.
    let (_, reply) = t.raw("auto-echo", &secret);
    assert_eq!(reply.status, LOCKED, "{reply:?}");
    assert!(reply.message.contains("user bob is locked"), "{reply:?}");
}

#[test]
fn a_short_grant_is_closed_when_it_expires() {
    let t = Tunnel::start();
    // Short, yet long enough for `connect` to start and relay before the
    // end on a loaded machine (a process start can take seconds there).
    let (gid, secret) = t.grant(BOB, "auto-echo", "12s");
    let grant =
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json();
    let expires = grant["expires_at"].as_str().unwrap().to_string();
    let end = common::lifecycle::ms(&grant["expires_at"]);
    let mut c = t.connect("auto-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"still allowed");
    assert!(closed_by_peer(&mut s), "the session outlived its grant");
    // A generous bound that catches a timer that never fires; the exact
    // instant is held by tests/control/deadline.rs (on a paused clock) and
    // its latency measured by benches/tunnel.
    let late = common::lifecycle::now_ms() - end;
    assert!(late < 10_000, "closed {late} ms after the grant's end");
    assert_eq!(c.wait_exit(), Some(1));
    assert!(
        c.said()
            .contains("access to auto-echo ended: grant expired"),
        "{}",
        c.said()
    );
    // The session's own timer closes it; the grant's timer records the
    // grant's end in the store a moment later.
    let state = || {
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json()
    };
    wait_for("the grant to be expired", || state()["state"] == "expired");
    let g = state();
    assert_eq!(g["expires_at"], expires.as_str());
    assert_eq!(
        t.metric(r#"jitgate_termination_seconds_count{cause="expired"}"#),
        1.0
    );
}

#[test]
fn an_idle_session_is_closed_but_the_grant_stays_usable() {
    let t = Tunnel::start();
    let (_gid, secret) = t.grant(BOB, "idle-echo", "5m");
    let mut c = t.connect("idle-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"x");
    assert!(closed_by_peer(&mut s), "idle session not closed");
    wait_for("connect to report the idle timeout", || {
        c.said().contains("access to idle-echo ended: idle timeout")
    });
    assert!(c.child.try_wait().unwrap().is_none(), "grant still active");
    let mut again = c.open();
    echo(&mut again, b"back");
    assert_eq!(
        t.metric(r#"jitgate_sessions_ended_total{kind="tcp",reason="idle"}"#),
        1.0
    );
}

#[test]
fn max_sessions_per_grant_refuses_the_extra_session_only() {
    let t = Tunnel::start();
    let (_gid, secret) = t.grant(ALICE, "few-echo", "5m");
    let (mut one, r1) = t.raw("few-echo", &secret);
    let (_two, r2) = t.raw("few-echo", &secret);
    assert_eq!((r1.status, r2.status), (OK, OK), "{r1:?} {r2:?}");
    assert!(r1.session_id.starts_with("ses_"), "{r1:?}");
    echo(&mut one, b"one");
    let (_, r3) = t.raw("few-echo", &secret);
    assert_eq!(r3.status, MAX_SESSIONS, "{r3:?}");
    assert!(r3.message.contains('2'), "{r3:?}");
    assert_eq!(
        t.metric(r#"jitgate_connections_rejected_total{kind="tcp",reason="max_sessions"}"#),
        1.0
    );
    one.conn.send_close_notify();
    let _ = one.flush();
    drop(one);
    wait_for("the closed session to leave the table", || {
        t.live_sessions() == 1
    });
    let (_, r4) = t.raw("few-echo", &secret);
    assert_eq!(r4.status, OK, "{r4:?}");
}

#[test]
fn typed_refusals_for_bad_secret_unknown_target_wrong_target_and_ended_grant() {
    let t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let cases = [
        (
            "auto-echo",
            "jgc_not_a_real_secret",
            BAD_SECRET,
            "not valid",
        ),
        // Answered as a bad secret: an unauthenticated client does not
        // learn which targets exist.
        (
            "no-such-target",
            "jgc_not_a_real_secret",
            BAD_SECRET,
            "not valid",
        ),
        // A valid secret authenticates: its holder is told the truth.
        (
            "no-such-target",
            secret.as_str(),
            UNKNOWN_TARGET,
            "unknown target",
        ),
        (
            "auto-count",
            secret.as_str(),
            NO_GRANT,
            "belongs to a grant for auto-echo",
        ),
    ];
    for (target, s, want, words) in cases {
        let (_, r) = t.raw(target, s);
        assert_eq!(r.status, want, "{target}: {r:?}");
        assert!(r.message.contains(words), "{target}: {r:?}");
        assert!(r.session_id.is_empty());
    }
    t.d.post(
        &format!("/v1/grants/{gid}/revoke"),
        Some(DAVE),
        r#"{"reason":"INC-7"}"#,
    )
    .unwrap();
    // The ended grant's secret is recognised, and the answer says why.
    let (_, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, NO_GRANT, "{r:?}");
    assert!(
        r.message.contains(&format!(
            "grant {gid} has ended: grant revoked by dave (INC-7)"
        )),
        "{r:?}"
    );
    assert_eq!(
        t.metric(r#"jitgate_connections_rejected_total{kind="tcp",reason="auth_failed"}"#),
        1.0
    );
    assert_eq!(
        t.metric(r#"jitgate_connections_rejected_total{kind="tcp",reason="no_grant"}"#),
        4.0
    );
    assert!(!t.d.logs().contains(&secret), "the secret was logged");
}

#[test]
fn upstream_refusing_or_closing_is_reported() {
    let t = Tunnel::start();
    let (_g, secret) = t.grant(BOB, "auto-refused", "5m");
    let (_, r) = t.raw("auto-refused", &secret);
    assert_eq!(r.status, UPSTREAM_UNREACHABLE, "{r:?}");
    assert!(r.message.contains("cannot reach auto-refused"), "{r:?}");
    assert_eq!(
        t.metric(r#"jitgate_connections_rejected_total{kind="tcp",reason="upstream_error"}"#),
        1.0
    );

    let (_g, secret) = t.grant(BOB, "auto-closing", "5m");
    let (mut s, r) = t.raw("auto-closing", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "clean EOF from the target"
    );
    s.conn.send_close_notify();
    let _ = s.flush();
    wait_for("the session to end", || {
        t.metric(r#"jitgate_sessions_ended_total{kind="tcp",reason="upstream_closed"}"#) == 1.0
    });
}

#[test]
fn half_close_passes_through_both_ways() {
    let t = Tunnel::start();
    let (_g, secret) = t.grant(BOB, "auto-count", "5m");
    let c = t.connect("auto-count", &secret);
    let mut s = c.open();
    let payload = vec![7u8; 300_000];
    s.write_all(&payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "got 300000 bytes");
}

#[test]
fn shutdown_ends_sessions_and_grants_survive_a_restart() {
    let mut t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let c = t.connect("auto-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"before");
    let st = t.d.stop();
    assert!(st.success(), "{st}");
    assert!(closed_by_peer(&mut s));
    assert!(
        t.d.logs().contains("session ended: proxy shutting down"),
        "{}",
        t.d.logs()
    );
    t.d.spawn();
    let g =
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json();
    assert_eq!(g["state"], "active", "{g}");
    let a = t.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
    assert!(
        a.contains(r#""reason":"shutdown""#),
        "session end not audited: {a}"
    );
    // The same `connect` process and secret work against the restarted proxy.
    let mut again = c.open();
    echo(&mut again, b"after");
}

#[test]
fn one_revoke_ends_a_thousand_sessions_and_counts_them_exactly() {
    const N: usize = 1000;
    let t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let mut c = t.connect("auto-echo", &secret);
    let mut socks: Vec<_> = (0..N).map(|_| c.open()).collect();
    for s in socks.iter_mut() {
        echo(s, b"k");
    }
    assert_eq!(t.live_sessions(), N);
    let r =
        t.d.post(&format!("/v1/grants/{gid}/revoke"), Some(DAVE), "{}")
            .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions_terminated"], N);
    assert_eq!(t.live_sessions(), 0);
    for s in socks.iter_mut() {
        assert!(closed_by_peer(s));
    }
    assert_eq!(c.wait_exit(), Some(1));
    assert_eq!(
        t.metric(r#"jitgate_termination_seconds_count{cause="revoked"}"#),
        N as f64
    );
}

#[test]
fn a_rotated_secret_replaces_the_old_one() {
    let t = Tunnel::start();
    let (gid, old) = t.grant(BOB, "auto-echo", "5m");
    // A second secret leaves the first valid...
    let r =
        t.d.post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
            .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.json()["secret"].as_str().unwrap().to_string();
    let (mut s, r) = t.raw("auto-echo", &old);
    assert_eq!(r.status, OK, "the first secret stopped working: {r:?}");
    echo(&mut s, b"first");
    let (mut s, r) = t.raw("auto-echo", &second);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"second");
    // ...and a rotation retires every earlier one.
    let r =
        t.d.post(
            &format!("/v1/grants/{gid}/secret"),
            Some(BOB),
            r#"{"rotate":true}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.json()["secret"].as_str().unwrap().to_string();
    assert_ne!(old, new);
    for retired in [&old, &second] {
        let (_, r) = t.raw("auto-echo", retired);
        assert_eq!(
            r.status, BAD_SECRET,
            "a rotated-out secret still works: {r:?}"
        );
    }
    let (mut s, r) = t.raw("auto-echo", &new);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"rotated");
}

#[test]
fn connect_checks_target_secret_proxy_and_pin_before_listening() {
    let t = Tunnel::start();
    let (_g, secret) = t.grant(BOB, "auto-echo", "5m");
    let wrong_pin = format!("sha256:{}", "00".repeat(32));
    let cases: [(&str, &str, &str, u16, &str); 4] = [
        ("a mistyped target", "auto-ecko", &secret, t.port, "refused"),
        (
            "a wrong secret",
            "auto-echo",
            "jgc_not_a_secret",
            t.port,
            "refused",
        ),
        (
            "a wrong proxy port",
            "auto-echo",
            &secret,
            free_port(),
            "cannot reach the proxy",
        ),
        (
            "a wrong pin",
            "auto-echo",
            &secret,
            t.port,
            "TLS with the proxy failed",
        ),
    ];
    for (what, target, secret, port, says) in cases {
        let pin = if what == "a wrong pin" {
            wrong_pin.as_str()
        } else {
            t.fingerprint.as_str()
        };
        let mut c = t.connect_with(target, secret, pin, port);
        assert_eq!(c.wait_exit(), Some(1), "{what}: {}", c.said());
        let said = c.said();
        assert!(said.contains(says), "{what}: {said}");
        assert!(!said.contains("forwarding"), "{what}: it listened: {said}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", c.local)).is_err(),
            "{what}: the local port was bound"
        );
    }
    // Checks open no session and are not counted as one.
    assert_eq!(t.live_sessions(), 0);
}

#[test]
fn connect_warns_before_the_end_and_exits_when_the_grant_expires() {
    let t = Tunnel::start();
    // Long enough for `connect` to be watching before the warning (2 s
    // before the end) on a loaded machine.
    let (gid, secret) = t.grant(BOB, "warn-echo", "12s");
    let mut c = t.connect("warn-echo", &secret);
    assert!(c.said().contains(&gid), "{}", c.said());
    let mut s = c.open();
    echo(&mut s, b"before the warning");
    wait_for("the warning on stderr", || {
        c.said().contains("access to warn-echo ends in 2s")
    });
    // The session is still relaying after the warning.
    echo(&mut s, b"after the warning");
    assert_eq!(c.wait_exit(), Some(1), "{}", c.said());
    let said = c.said();
    assert!(said.contains("ended"), "{said}");
}
