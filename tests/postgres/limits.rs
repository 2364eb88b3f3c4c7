//! Per-source limits on unauthenticated connections: one source holding
//! idle connections (slowloris: connect, send nothing) gets its cap of
//! slots, then as many waiting connections as allowed, and the rest is
//! closed at once, while the listener keeps serving other sources; the
//! source gets its slots back once its connections go.
//! Linux routes all of 127/8 to lo, so 127.0.0.2 is a second source.

use crate::common;

use common::daemon::*;
use common::free_port;
use common::pgproxy::PgProxy;
use common::tunnel::*;
use jitgate::proxy::sources::{MAX_UNAUTHENTICATED_PER_SOURCE, MAX_WAITING_PER_SOURCE};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const CAP: usize = MAX_UNAUTHENTICATED_PER_SOURCE;
const WAITING: usize = MAX_WAITING_PER_SOURCE;
const EXCESS: usize = 8;

/// A TCP connection to `port` from `source`.
fn connect_from(source: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        sock.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Idle connections from 127.0.0.1: the first `CAP` hold slots, the next
/// `WAITING` wait, the next `EXCESS` must be closed without a byte.
fn flood(port: u16) -> Vec<TcpStream> {
    let held: Vec<TcpStream> = (0..CAP + WAITING)
        .map(|_| connect_from("127.0.0.1", port))
        .collect();
    let mut excess: Vec<TcpStream> = (0..EXCESS)
        .map(|_| connect_from("127.0.0.1", port))
        .collect();
    for (i, s) in excess.iter_mut().enumerate() {
        assert_closed_without_a_byte(s, &format!("excess connection {i}"));
    }
    held
}

/// The held and waiting connections were not closed: the excess went for
/// being past the bounds, not through the handshake timeout.
/// The peer closed `s` (EOF or reset) before sending anything; a read that
/// timed out means it was left open, which is not a close.
fn assert_closed_without_a_byte(s: &mut TcpStream, what: &str) {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!("{what} got {n} bytes instead of a close"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{what} was left open ({e})"
        ),
    }
}

fn still_open(held: &[TcpStream]) {
    for (i, s) in held.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        match (&*s).read(&mut b) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("held connection {i} was closed: {other:?}"),
        }
        s.set_nonblocking(false).unwrap();
    }
}

fn tls_from(t: &Tunnel, source: &str) -> TlsClient {
    let cfg = jitgate::proxy::tcp::verify::client_config(None, Some(&t.fingerprint)).unwrap();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, connect_from(source, t.port));
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

fn session_from(t: &Tunnel, source: &str) {
    let (_g, secret) = t.grant(BOB, "auto-echo", "5m");
    let mut tls = tls_from(t, source);
    tls.write_all(&hello(1, "auto-echo", &secret, "")).unwrap();
    let r = read_reply(&mut tls);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut tls, b"from another source");
}

const TCP_PROTOCOL_ERRORS: &str =
    r#"jitgate_connections_rejected_total{kind="tcp",reason="protocol_error"}"#;

#[test]
fn tcp_idle_flood_over_the_per_source_cap_is_closed_and_others_still_connect() {
    let t = Tunnel::start();
    let held = flood(t.port);
    wait_for("the refusals to be counted", || {
        t.metric(TCP_PROTOCOL_ERRORS) == EXCESS as f64
    });
    // Another source completes a whole session while the flood holds.
    session_from(&t, "127.0.0.2");
    still_open(&held);
    // The flooding source is still refused while it holds its cap...
    let mut more = connect_from("127.0.0.1", t.port);
    assert!(closed_by_peer(&mut more));
    // ...and gets its slots back once its connections are gone.
    drop(held);
    wait_for("the source's slots to come back", || {
        let (_g, secret) = t.grant(BOB, "auto-echo", "5m");
        let mut tls = tls_from(&t, "127.0.0.1");
        tls.write_all(&hello(1, "auto-echo", &secret, "")).is_ok()
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_reply(&mut tls)))
                .is_ok_and(|r| r.status == OK)
    });
}

#[test]
fn authenticated_sessions_do_not_count_against_the_source_cap() {
    let t = Tunnel::start();
    // More live sessions from one source than its unauthenticated cap.
    let sessions: Vec<TlsClient> = (0..CAP + 2)
        .map(|_| {
            let (_g, secret) = t.grant(BOB, "auto-echo", "5m");
            let (s, r) = t.raw("auto-echo", &secret);
            assert_eq!(r.status, OK, "{r:?}");
            s
        })
        .collect();
    assert_eq!(t.live_sessions(), CAP + 2);
    assert_eq!(t.metric(TCP_PROTOCOL_ERRORS), 0.0);
    drop(sessions);
}

#[test]
fn postgres_idle_flood_over_the_per_source_cap_is_closed_and_others_still_connect() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let held = flood(p.port);
    let sample = r#"jitgate_connections_rejected_total{kind="postgres",reason="protocol_error"}"#;
    wait_for("the refusals to be counted", || {
        p.d.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse::<f64>().ok())
            == Some(EXCESS as f64)
    });
    // Another source is answered: SSLRequest gets its one-byte reply.
    let mut other = connect_from("127.0.0.2", p.port);
    other
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    let mut b = [0u8; 1];
    other.read_exact(&mut b).expect("an answer to SSLRequest");
    assert!(matches!(b[0], b'S' | b'N'), "{b:?}");
    still_open(&held);
}

/// A daemon with only the SSH listener; no sshd is needed, as these tests
/// never get past the handshake.
fn ssh_daemon() -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(
        None,
        &format!("\n[listeners.ssh]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    (d, port)
}

/// The SSH server speaks first, so a held connection reads the banner and a
/// refused one reads nothing but the close.
#[test]
fn ssh_idle_flood_over_the_per_source_cap_is_closed_and_others_still_connect() {
    let (_d, port) = ssh_daemon();
    let held: Vec<TcpStream> = (0..CAP).map(|_| connect_from("127.0.0.1", port)).collect();
    for s in &held {
        let mut b = [0u8; 8];
        (&*s).read_exact(&mut b).expect("the SSH banner");
        assert_eq!(&b, b"SSH-2.0-");
    }
    let waiting: Vec<TcpStream> = (0..WAITING)
        .map(|_| connect_from("127.0.0.1", port))
        .collect();
    for i in 0..EXCESS {
        let mut s = connect_from("127.0.0.1", port);
        assert_closed_without_a_byte(&mut s, &format!("excess connection {i}"));
    }
    // The waiting ones have been neither served nor closed.
    still_open(&waiting);
    let mut other = connect_from("127.0.0.2", port);
    let mut b = [0u8; 8];
    other.read_exact(&mut b).expect("the SSH banner");
    assert_eq!(&b, b"SSH-2.0-");
    // Freed slots go to the waiting connections, first come first served.
    drop(held);
    let mut first = &waiting[0];
    first
        .read_exact(&mut b)
        .expect("the SSH banner once a slot is free");
    assert_eq!(&b, b"SSH-2.0-");
}

/// SSH has no such test in tests/ssh/ssh.rs: a client that never sends its
/// version line is cut off by the authentication timeout (30 s).
#[test]
fn ssh_client_that_never_finishes_the_handshake_is_closed() {
    let (_d, port) = ssh_daemon();
    let mut silent = connect_from("127.0.0.1", port);
    silent
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    assert!(
        closed_by_peer(&mut silent),
        "the silent client was never closed"
    );
}

/// 300 silent connections from one source: the first `CAP` get slots, the
/// rest queue. Every one must be closed within the listener's handshake
/// timeout counted from its accept, whatever its place in the queue (the
/// generous margin only absorbs a loaded machine; a deadline counted from
/// the slot would close the last ones several timeouts late).
fn silent_flood_is_closed_in_time(port: u16, timeout: Duration) {
    const SILENT: usize = 300;
    let conns: Vec<TcpStream> = (0..SILENT)
        .map(|_| connect_from("127.0.0.1", port))
        .collect();
    let deadline = std::time::Instant::now() + timeout + Duration::from_secs(5);
    for (i, mut s) in conns.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut b = [0u8; 256];
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                // The SSH server speaks first; anything else is served bytes.
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("silent connection {i} of {SILENT} was still open past its handshake timeout ({timeout:?})")
                }
                Err(_) => break,
            }
        }
    }
}

#[test]
fn tcp_silent_connections_queued_past_the_source_cap_are_closed_within_the_handshake_timeout() {
    let t = Tunnel::start();
    silent_flood_is_closed_in_time(t.port, jitgate::proxy::tcp::server::HANDSHAKE_TIMEOUT);
}

#[test]
fn postgres_silent_connections_queued_past_the_source_cap_are_closed_within_the_handshake_timeout()
{
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    silent_flood_is_closed_in_time(p.port, jitgate::proxy::postgres::server::STARTUP_TIMEOUT);
}

#[test]
fn ssh_silent_connections_queued_past_the_source_cap_are_closed_within_the_handshake_timeout() {
    let (_d, port) = ssh_daemon();
    silent_flood_is_closed_in_time(port, jitgate::proxy::ssh::server::AUTH_TIMEOUT);
}
