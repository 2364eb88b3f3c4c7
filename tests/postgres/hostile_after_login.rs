//! Hostile input past the first gate: PostgreSQL frames after a successful
//! login (a 1 GiB length prefix, a length past the frame limit), a second
//! SSLRequest, a CancelRequest with a forged key; and garbage and slowloris
//! on the metrics listener.

use crate::common;

use bytes::BytesMut;
use common::daemon::*;
use common::pg_activity::wait_active;
use common::pgproxy::*;
use common::pgraw::RawSession;
use common::tunnel::closed_by_peer;
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(60);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

fn daemon_pid(p: &PgProxy) -> u32 {
    p.d.child.as_ref().expect("running").id()
}

/// A new session still works end to end.
fn still_serves(p: &PgProxy, secret: &str) {
    let mut s = RawSession::login(p, "bob@auto-db", secret, &[]);
    assert_eq!(s.query("SELECT 41 + 1"), Ok(vec!["42".to_string()]));
}

/// After login, a Query whose length says 512 MiB and whose body streams
/// in: the proxy relays frames as they come and must neither allocate what
/// the length announces nor buffer the body (96 MiB of it are sent, more
/// than the 64 MiB the daemon's RSS may grow by), and goes on serving.
/// (PostgreSQL itself takes messages up to 1 GiB - 1 and reads this one.)
#[test]
fn a_huge_frame_after_login_is_streamed_not_buffered() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, secret) = bob_grant(&p);
    let pid = daemon_pid(&p);
    let mut s = RawSession::login(&p, "bob@auto-db", &secret, &[]);
    let before = rss_kib(pid);
    let mut frame = vec![b'Q'];
    frame.extend_from_slice(&(1i32 << 29).to_be_bytes());
    s.s.write_all(&frame).unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..96 {
        s.s.write_all(&chunk).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "daemon RSS grew from {before} KiB to {after} KiB on a 512 MiB frame"
    );
    drop(s);
    still_serves(&p, &secret);
}

/// A length past the frame limit (2 GiB - 1) after login ends the session:
/// the connection is closed, nothing is allocated, the proxy goes on.
#[test]
fn a_length_past_the_frame_limit_after_login_closes_the_session() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, secret) = bob_grant(&p);
    let pid = daemon_pid(&p);
    let mut s = RawSession::login(&p, "bob@auto-db", &secret, &[]);
    let before = rss_kib(pid);
    let mut frame = vec![b'Q'];
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    frame.extend_from_slice(b"SELECT 1");
    s.s.write_all(&frame).unwrap();
    s.s.set_read_timeout(Some(BOUND)).unwrap();
    assert!(closed_by_peer(&mut s.s), "the session stayed open");
    let after = rss_kib(pid);
    assert!(after < before + 64 * 1024, "{before} -> {after} KiB");
    common::tunnel::wait_for("the session to end", || p.d.session_ids().is_empty());
    still_serves(&p, &secret);
}

fn ssl_request() -> [u8; 8] {
    [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
}

/// A second SSLRequest (after the first was answered) is not answered
/// again: it is not a TLS ClientHello and not a startup packet, so the
/// connection ends, with an error at most.
#[test]
fn a_second_ssl_request_is_refused() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    s.write_all(&ssl_request()).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    assert!(matches!(b[0], b'S' | b'N'), "{b:?}");
    s.write_all(&ssl_request()).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        !matches!(rest.first(), Some(b'S' | b'N')),
        "a second SSLRequest was answered: {rest:?}"
    );
    let mut again = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    again.set_read_timeout(Some(BOUND)).unwrap();
    again.write_all(&ssl_request()).unwrap();
    again.read_exact(&mut b).unwrap();
    assert!(
        matches!(b[0], b'S' | b'N'),
        "the listener stopped answering"
    );
}

/// Sends a CancelRequest for (pid, key) on a new plaintext connection.
fn cancel(port: u16, pid: i32, key: [u8; 4]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    let mut b = BytesMut::new();
    frontend::cancel_request(pid, i32::from_be_bytes(key), &mut b);
    s.write_all(&b).unwrap();
    // The server answers a CancelRequest with nothing but the close.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
}

/// A CancelRequest with the right pid and a wrong key cancels nothing; the
/// right key (the control) cancels the query.
#[test]
fn a_forged_cancel_key_cancels_nothing() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, secret) = bob_grant(&p);
    let mut s = RawSession::login(&p, "bob@auto-db", &secret, &[]);
    let (pid, key, port) = (s.pid, s.key, p.port);
    let forged = [key[0] ^ 0x5a, key[1], key[2], key[3] ^ 0x01];
    let cluster = p.cluster;
    // Each cancel is sent once its query runs: one that reaches an idle
    // backend cancels nothing, whatever its key.
    let t = std::thread::spawn(move || {
        wait_active(cluster, pid, "SELECT pg_sleep(3), 'done'");
        cancel(port, pid, forged);
    });
    let t0 = Instant::now();
    assert_eq!(
        s.query("SELECT pg_sleep(3), 'done'").map(|_| ()),
        Ok(()),
        "the forged cancel stopped the query"
    );
    assert!(t0.elapsed() >= Duration::from_secs(3));
    t.join().unwrap();
    // The real key does cancel: the test above could fail.
    let t = std::thread::spawn(move || {
        wait_active(cluster, pid, "SELECT pg_sleep(30)");
        cancel(port, pid, key);
    });
    let e = s.query("SELECT pg_sleep(30)").expect_err("not cancelled");
    t.join().unwrap();
    assert!(e.iter().any(|(k, v)| *k == 'C' && v == "57014"), "{e:?}");
}

/// Reads until the peer closes or `bound` passes; (bytes, closed).
fn read_until_close(s: &mut TcpStream, bound: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + bound;
    let mut all = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (all, false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut b) {
            Ok(0) => return (all, true),
            Ok(n) => all.extend_from_slice(&b[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (all, false)
            }
            Err(_) => return (all, true),
        }
    }
}

fn metrics_ok(d: &Daemon) -> bool {
    d.metrics().contains("jitgate_")
}

#[test]
fn garbage_and_slowloris_on_the_metrics_listener() {
    let d = Daemon::start();
    // Garbage: an error or a close, never a hang.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        &[0u8; 4096][..],
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", d.metrics_port)).unwrap();
        let _ = s.write_all(junk);
        let (got, closed) = read_until_close(&mut s, BOUND);
        assert!(closed, "{junk:?}: left open");
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
            "{junk:?}: {text}"
        );
    }
    // Slowloris: headers that never finish, and a connection that says
    // nothing, are both cut off; meanwhile /metrics still answers.
    let mut half = TcpStream::connect(("127.0.0.1", d.metrics_port)).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut mute = TcpStream::connect(("127.0.0.1", d.metrics_port)).unwrap();
    assert!(metrics_ok(&d), "/metrics did not answer beside a slowloris");
    let (got, closed) = read_until_close(&mut half, BOUND);
    assert!(closed, "unfinished headers held open for {BOUND:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
    let (_, closed) = read_until_close(&mut mute, BOUND);
    assert!(closed, "a silent connection held open for {BOUND:?}");
    assert!(metrics_ok(&d));
}
