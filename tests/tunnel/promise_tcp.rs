//! The TCP tunnel closes the UPSTREAM socket, not only the client's, when
//! access ends: for revoke, terminate, lock and a reload removing the
//! target, the target server sees its connection closed (EOF or reset),
//! and the audit records why.

use crate::common;

use common::causes::{ended_reasons, Cause, ALL};
use common::daemon::*;
use common::free_port;
use common::tunnel::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(60);

/// A target server that hands every accepted connection to the test.
fn watched_server() -> (u16, mpsc::Receiver<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn upstream_is_closed_by(cause: Cause) {
    let (watched, accepted) = watched_server();
    let up = Upstreams::start();
    let port = free_port();
    let extra = up.config(port)
        + &format!(
            "\n[[targets]]\nname = \"auto-watched\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{watched}\"\n"
        );
    let d = Daemon::start_with(None, &extra);
    let fingerprint = d.get("/v1/whoami", Some(BOB)).unwrap().json()["tcp_tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Tunnel {
        d,
        port,
        up,
        fingerprint,
    };
    let (gid, secret) = t.grant(BOB, "auto-watched", "5m");
    let (mut client, reply) = t.raw("auto-watched", &secret);
    assert_eq!(reply.status, OK, "{reply:?}");
    let mut upstream = accepted
        .recv_timeout(BOUND)
        .expect("no upstream connection");
    upstream.set_read_timeout(Some(BOUND)).unwrap();
    // The session relays both ways.
    client.write_all(b"ping").unwrap();
    client.flush().unwrap();
    let mut b = [0u8; 4];
    upstream.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    upstream.write_all(b"pong").unwrap();
    client.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");

    if let Some(n) = cause.apply(&t.d, "bob", &gid, "auto-watched") {
        assert_eq!(n, 1, "{cause:?}");
    }
    assert!(
        closed_by_peer(&mut upstream),
        "{cause:?}: the upstream socket stayed open"
    );
    assert!(
        closed_by_peer(&mut client),
        "{cause:?}: the client socket stayed open"
    );
    wait_for("the session's end to be audited", || {
        !ended_reasons(&t.d).is_empty()
    });
    assert_eq!(ended_reasons(&t.d), [cause.reason()], "{cause:?}");
}

#[test]
fn every_way_of_ending_access_closes_the_upstream_socket() {
    for cause in ALL {
        upstream_is_closed_by(cause);
    }
}
