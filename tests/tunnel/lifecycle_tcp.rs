//! Extension in place through the real `jitgate connect`: a tunneled
//! session outlives its grant's first end on the same socket, `connect`
//! says until when, and the session is closed at the new end.

use crate::common;

use common::daemon::*;
use common::lifecycle::{extend_now, grant_end, now_ms, sleep_past};
use common::tunnel::{echo, wait_for, Tunnel};
use std::time::Duration;

#[test]
fn a_tunneled_session_outlives_its_first_end_on_the_same_socket_and_ends_at_the_new_one() {
    let t = Tunnel::start();
    // Long enough for `connect`, the first echo and the extension to be
    // done before the first end on a loaded machine.
    let (gid, secret) = t.grant(BOB, "warn-echo", "12s");
    let first_end = grant_end(&t.d, &gid);
    let mut c = t.connect("warn-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"before the extension");
    let sessions = t.d.session_ids();
    assert_eq!(sessions.len(), 1, "{sessions:?}");

    let new_end = extend_now(&t.d, BOB, &gid, "4s");
    assert_eq!(new_end, first_end + 4_000);
    wait_for("connect to report the extension", || {
        c.said().contains("access to warn-echo extended until")
    });

    // Past the first end: the same local socket, the same session, relaying.
    sleep_past(first_end, Duration::from_millis(700));
    echo(&mut s, b"after the first end");
    assert_eq!(
        t.d.session_ids(),
        sessions,
        "the same session, not a new one"
    );

    // Closed at the new end: connect exits, the socket reads EOF.
    assert_eq!(c.wait_exit(), Some(1), "{}", c.said());
    assert!(now_ms() >= new_end, "closed before its new end");
    assert!(c.said().contains("ended"), "{}", c.said());
    assert!(common::tunnel::closed_by_peer(&mut s));
}

#[test]
fn a_scheduled_grant_is_refused_with_its_start_then_relays_after_it_across_a_restart() {
    let mut t = Tunnel::start();
    // Everything up to the restart's check must happen before the start; a
    // loaded machine may take longer than the first lead (a restart, a
    // client process), and an attempt that ends after the start proves
    // nothing: it is made again on a grant starting twice as far out.
    let mut lead = 8_000;
    let (gid, secret, start, before) = loop {
        let (gid, secret, start) =
            common::lifecycle::scheduled_grant(&t.d, BOB, "auto-echo", lead, "5m");
        let before = refused_across_a_restart(&mut t, &secret);
        if now_ms() < start {
            break (gid, secret, start, before);
        }
        assert!(
            lead < 64_000,
            "no attempt ended before the start, {lead} ms ahead"
        );
        eprintln!("the attempt ended after the start ({lead} ms ahead): again, later");
        t.d.revoke(&gid, "a later start for the test");
        lead *= 2;
    };
    let until = jitgate::clock::rfc3339(start);
    let (first, said, after_restart) = before;
    assert_eq!(first.status, common::tunnel::NO_GRANT, "{first:?}");
    assert!(
        first.message.contains(&format!("starts at {until}")),
        "{first:?}"
    );
    // `jitgate connect` says the same and exits.
    assert_eq!(said.0, Some(1), "{}", said.1);
    assert!(said.1.contains(&format!("starts at {until}")), "{}", said.1);
    // After a restart before the start (the start timer is rebuilt from
    // the store), still refused.
    assert_eq!(
        after_restart.status,
        common::tunnel::NO_GRANT,
        "{after_restart:?}"
    );

    sleep_past(start, Duration::from_millis(300));
    let (mut tls, reply) = t.raw("auto-echo", &secret);
    assert_eq!(reply.status, common::tunnel::OK, "{reply:?}");
    echo(&mut tls, b"after the start");
    common::lifecycle::wait_until("the grant to be active", Duration::from_secs(60), || {
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .map(|r| r.json()["state"] == "active")
            .unwrap_or(false)
    });
    let g =
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json();
    assert_eq!(
        common::lifecycle::ms(&g["expires_at"]),
        start + 5 * 60_000,
        "{g}"
    );
    let audit = t.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
    assert!(audit.contains("grant.activated"), "{audit}");
}

/// Before a scheduled grant's start: a raw tunnel client's reply, what
/// `jitgate connect` exits with and says, a clean restart of the daemon,
/// then a raw client's reply again.
fn refused_across_a_restart(
    t: &mut Tunnel,
    secret: &str,
) -> (
    common::tunnel::Reply,
    (Option<i32>, String),
    common::tunnel::Reply,
) {
    let (_, first) = t.raw("auto-echo", secret);
    let mut c = t.connect_with("auto-echo", secret, &t.fingerprint, t.port);
    let said = (c.wait_exit(), c.said());
    let st = t.d.stop();
    assert!(st.success(), "{st}");
    t.d.spawn();
    let (_, after) = t.raw("auto-echo", secret);
    (first, said, after)
}
