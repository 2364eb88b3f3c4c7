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
    let (gid, secret) = t.grant(BOB, "warn-echo", "5s");
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
