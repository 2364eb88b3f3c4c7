//! A PostgreSQL login paused after SCRAM server-first, across a reload that
//! takes the target out of the engineer's policy: completing the login must
//! not give a session (the admission made before authentication is checked
//! again as the session enters the table).

use crate::common;

use bytes::BytesMut;
use common::daemon::*;
use common::pgproxy::*;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn read_msg(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 5];
    s.read_exact(&mut h)
        .expect("a message before the read deadline");
    let len = i32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).expect("the message body");
    (h[0], body)
}

/// The text fields of an ErrorResponse body: (SQLSTATE, message).
fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    for f in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let v = String::from_utf8_lossy(&f[1..]).into_owned();
        match f[0] {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
    }
    (code, msg)
}

#[test]
fn a_login_paused_across_a_reload_that_removes_the_target_gets_no_session() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_gid, secret) = bob_grant(&p);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut b = BytesMut::new();
    frontend::startup_message([("user", "bob@auto-db"), ("database", &p.db)], &mut b).unwrap();
    s.write_all(&b).unwrap();
    assert_eq!(read_msg(&mut s).0, b'R', "SASL offered");
    let mut scram = ScramSha256::new(secret.as_bytes(), ChannelBinding::unsupported());
    b.clear();
    frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut b).unwrap();
    s.write_all(&b).unwrap();
    let (tag, body) = read_msg(&mut s);
    assert_eq!(tag, b'R', "server-first");
    scram.update(&body[4..]).unwrap();

    // Paused here: the reload takes auto-db out of every policy bob has.
    let text = std::fs::read_to_string(&p.d.config).unwrap();
    let changed = text.replace("targets = [\"auto-*\"]", "targets = [\"auto-web\"]");
    assert_ne!(text, changed, "the test config has the auto policy");
    std::fs::write(&p.d.config, changed).unwrap();
    let r = p.d.post("/v1/admin/reload", Some(DAVE), "").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions_terminated"], 0, "{}", r.body);

    b.clear();
    frontend::sasl_response(scram.message(), &mut b).unwrap();
    s.write_all(&b).unwrap();
    // Whatever comes before it, the login must end in an error, never in
    // ReadyForQuery.
    loop {
        let (tag, body) = read_msg(&mut s);
        assert_ne!(
            tag, b'Z',
            "ReadyForQuery: the reloaded config's forbidden session started"
        );
        if tag == b'E' {
            let (code, msg) = error_fields(&body);
            assert_eq!(code, "28000", "{msg}");
            assert!(msg.contains("no longer allows"), "{msg}");
            break;
        }
    }
    let sessions = p.d.get("/v1/sessions", Some(DAVE)).unwrap().json();
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(0),
        "{sessions}"
    );
    assert!(
        p.backends().is_empty(),
        "no upstream backend: {:?}",
        p.backends()
    );
}
